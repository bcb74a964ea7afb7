# isobox guest agent, sourced by init.sh: two loops over two virtio-serial ports.
#
# Why a busybox sh agent and not qemu-guest-agent: the guest has only the initramfs (busybox-static)
# and an arbitrary image root; qemu-ga is a dynamically linked glib program that would have to be
# copied in with its libraries, and its guest-exec returns output only after the process ends
# anyway. This agent is ~40 lines, needs nothing but busybox, and runs outside the image root so it
# works for images without a shell.
#
# Protocol (one line per message, fields separated by one space; host side: drivers/vm/agent.py):
#   exec port  host -> guest  "ID SCRIPT_BASE64"    run the script with sh, output captured to files
#              guest -> host  "ID out B64" "ID err B64" "ID rc N"   (B64 unwrapped, possibly empty)
#   ctl port   host -> guest  "ID signal N" | "ID ping"
#              guest -> host  "ID rc N"     | "ID pong"
# A virtio console port can be opened by one process at a time (drivers/char/virtio_console.c,
# port_fops_open), so each loop opens its port once, read-write, on fd 3.

agent_exec_loop() {
    exec 3<>/dev/port-isobox.agent
    while IFS=' ' read -r id script <&3; do
        [ -n "$id" ] || continue
        dir=/tmp/exec.$id
        mkdir -p "$dir"
        echo "$script" | base64 -d > "$dir/script" 2>/dev/null
        sh "$dir/script" < /dev/null > "$dir/out" 2> "$dir/err"
        rc=$?
        {
            printf '%s out ' "$id"; base64 -w 0 "$dir/out"
            printf '\n%s err ' "$id"; base64 -w 0 "$dir/err"
            printf '\n%s rc %s\n' "$id" "$rc"
        } >&3
        rm -rf "$dir"
    done
}

agent_ctl_loop() {
    exec 3<>/dev/port-isobox.ctl
    while IFS=' ' read -r id verb arg <&3; do
        case "$verb" in
            signal) kill -"$arg" "$(cat /run/workload.pid)" 2>/dev/null; echo "$id rc $?" >&3 ;;
            ping) echo "$id pong" >&3 ;;
            *) echo "$id rc 127" >&3 ;;
        esac
    done
}
