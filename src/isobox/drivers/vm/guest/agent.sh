# isobox guest agent, sourced by init.sh: two loops over two virtio-serial ports.
#
# Why a busybox sh agent and not qemu-guest-agent: the guest has only the initramfs (busybox-static)
# and an arbitrary image root; qemu-ga is a dynamically linked glib program that would have to be
# copied in with its libraries, and its guest-exec returns output only after the process ends
# anyway. This agent is ~40 lines, needs nothing but busybox, and runs outside the image root so it
# works for images without a shell.
#
# Protocol (one line per message, fields separated by one space; host side: drivers/vm/agent.py):
#   exec port  host -> guest  "ID SCRIPT_BASE64 [SESSION]"  run the script with sh, output captured to
#                                                   files; stdin: /dev/null, or with SESSION the input
#                                                   port's stream after its line "isobox-input SESSION"
#              guest -> host  "ID out B64" "ID err B64" "ID rc N"   (B64 unwrapped, possibly empty)
#   ctl port   host -> guest  "ID signal N" | "ID ping" | "ID tty SESSION ROWS COLS SCRIPT_BASE64"
#                             | "ID resize tty|exec ROWS COLS" (the workload's terminal, or exec's)
#              guest -> host  "ID rc N"     | "ID pong" | "ID rc N" (0: the exec -t session started)
# exec -t runs on the exec console (ISOBOX_EXEC_TTY, a virtconsole: a real terminal) and ends with
# "ESC ] isobox;SESSION;STATUS BEL" written on that terminal, after "ESC ] isobox;SESSION;ready BEL"
# once the terminal is set up (host side: drivers/vm/exec_tty.py).
# A virtio console port can be opened by one process at a time (drivers/char/virtio_console.c,
# port_fops_open), so each loop opens its port once, read-write, on fd 3.

agent_exec_loop() {
    exec 3<>/dev/port-isobox.agent
    while IFS=' ' read -r id script input <&3; do
        [ -n "$id" ] || continue
        dir=/tmp/exec.$id
        mkdir -p "$dir"
        echo "$script" | base64 -d > "$dir/script" 2>/dev/null
        if [ -n "$input" ]; then
            agent_with_input "$input" sh "$dir/script" > "$dir/out" 2> "$dir/err"
        else
            sh "$dir/script" < /dev/null > "$dir/out" 2> "$dir/err"
        fi
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
            tty) agent_tty_start $arg; echo "$id rc $?" >&3 ;;
            resize) agent_resize $arg; echo "$id rc $?" >&3 ;;
            *) echo "$id rc 127" >&3 ;;
        esac
    done
}

# exec -t: the command runs in a session of its own whose controlling terminal is the exec console,
# so ^C, job control and echo work as over ssh. It is started by start-stop-daemon -b (like the
# loops above: a job started with & would ignore SIGINT) and the ctl loop answers at once.
agent_tty_start() {  # SESSION ROWS COLS SCRIPT_BASE64
    [ -c "$ISOBOX_EXEC_TTY" ] || return 2
    # The host runs one session at a time: one still here lost its host side (isobox was killed).
    for old in /tmp/exec.*/leader; do
        [ -f "$old" ] && kill -HUP -"$(cat "$old")" 2>/dev/null
    done
    dir=/tmp/exec.$1
    mkdir -p "$dir" && echo "$4" | base64 -d > "$dir/script" || return 1
    start-stop-daemon -S -b -m -p "$dir/pid" -x /bin/sh -- \
        -c '. /etc/isobox/agent.sh && agent_tty_session "$@"' isobox-exec "$1" "$2" "$3"
}

agent_tty_session() {  # SESSION ROWS COLS
    dir=/tmp/exec.$1
    # setsid makes the command a session leader (this shell is not a group leader, so setsid does not
    # fork) and -c gives it the console as controlling terminal; the end marker follows its output.
    # The size is set from inside: a terminal nobody holds open forgets it.
    setsid -c sh -c 'echo $$ > "$3"; stty sane rows "$4" cols "$5" 2>/dev/null
                     printf "\033]isobox;%s;ready\007" "$2"; sh "$1"; printf "\033]isobox;%s;%s\007" "$2" "$?"' \
        isobox-exec "$dir/script" "$1" "$dir/leader" "$2" "$3" < "$ISOBOX_EXEC_TTY" > "$ISOBOX_EXEC_TTY" 2>&1
    rm -rf "$dir"
}

# exec -i: COMMAND reads the host's stream on the input port. The host connects, writes the line
# "isobox-input SESSION", its input, then disconnects: the guest reads that as end-of-file. Whatever
# precedes the line (input an earlier session's command left unread) is skipped; a read that ends at
# once means the host's connection has not reached the port yet, so it is tried again (bounded).
agent_with_input() (  # SESSION COMMAND...
    want="isobox-input $1"
    shift
    exec 5< /dev/port-isobox.input || exit 126
    waited=0
    while :; do
        if read -r line <&5; then
            [ "$line" = "$want" ] && break
        else
            waited=$((waited + 1))
            [ "$waited" -gt 500 ] && exit 126
            usleep 10000
        fi
    done
    exec "$@" <&5 5<&-
)

# A new size for a terminal someone holds open (a terminal nobody holds open forgets it); the kernel
# sends SIGWINCH to the terminal's foreground processes. stty runs in a child, which is no session
# leader: the console does not become this loop's controlling terminal. The workload's size is also
# kept in a file, which init applies once the workload holds its terminal (a size sent while the VM
# still boots would be lost otherwise).
agent_resize() {  # tty|exec ROWS COLS
    case "$1" in
        tty) echo "rows $2 cols $3" > /run/isobox-tty-size; dev=/dev/hvc0 ;;
        exec) dev=$ISOBOX_EXEC_TTY ;;
        *) return 2 ;;
    esac
    stty -F "$dev" rows "$2" cols "$3" 2>/dev/null
    return 0
}
