#!/bin/busybox sh
# isobox guest init: PID 1 of every isobox VM, run by the kernel from the initramfs (busybox-static).
#
# 1. loads the virtio modules (list in /etc/isobox/modules, dependency order, made by initramfs.py);
# 2. reads the per-VM run script from fw_cfg (opt/isobox/run, written by guest_script.py on the host;
#    QEMU docs: docs/specs/fw_cfg.rst), which sets ISOBOX_* and defines isobox_network and
#    isobox_workload;
# 3. mounts the VM's root disk (/dev/vda, ext4 on its own qcow2 overlay, so read-write) at /root,
#    sets the hostname, configures the network, writes /etc/hosts and /etc/resolv.conf;
# 4. starts the agent (exec and signals, see agent.sh) and runs the workload with its stdout and
#    stderr on two virtio-serial ports, which QEMU writes to files on the host (no host process
#    needed), its stdin on a third (-i) or /dev/null; with -t all three are the terminal /dev/hvc0;
# 5. writes the exit status to the status port, syncs, and powers off; QEMU then exits.
# Any failure before the workload runs is reported on the status port as "init-error: ..." instead.

export PATH=/bin
ROOT=/root

fail() {
    echo "isobox init: $*" >&2
    [ -e /dev/port-isobox.status ] && echo "init-error: $*" > /dev/port-isobox.status
    sync
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
    insmod "/lib/modules/$module" || fail "cannot load module $module"
done < /etc/isobox/modules

# virtio-serial ports are announced by the host through the control queue after the driver is up,
# so they appear a little later than the PCI devices; wait for all of them (bounded).
wait_devices() {
    tries=0
    while :; do
        for port in /sys/class/virtio-ports/*; do
            [ -r "$port/name" ] || continue
            name=$(cat "$port/name")
            [ -n "$name" ] && [ ! -e "/dev/port-$name" ] && ln -s "/dev/${port##*/}" "/dev/port-$name"
        done
        ready=1
        for need in /dev/vda /dev/port-isobox.stdout /dev/port-isobox.stderr /dev/port-isobox.status \
                    /dev/port-isobox.agent /dev/port-isobox.ctl /dev/port-isobox.stdin "$RUN_SCRIPT"; do
            [ -e "$need" ] || ready=0
        done
        [ "$ready" = 1 ] && return 0
        tries=$((tries + 1))
        [ "$tries" -gt 1000 ] && return 1
        usleep 10000
    done
}

RUN_SCRIPT=/sys/firmware/qemu_fw_cfg/by_name/opt/isobox/run/raw
wait_devices || fail "virtio devices did not appear (need /dev/vda, isobox ports, fw_cfg run script)"
. "$RUN_SCRIPT" || fail "cannot read the run script"

# noinit_itable: the image was made by mkfs.ext4 with lazy inode tables; zeroing them in the guest
# (ext4lazyinit) would cost CPU under TCG and grow the qcow2 overlay for nothing (ext4(5)).
mount -t ext4 -o noinit_itable /dev/vda "$ROOT" || fail "cannot mount the root disk /dev/vda"
for dir in proc sys dev tmp; do [ -d "$ROOT/$dir" ] || mkdir -p "$ROOT/$dir"; done
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount -t devtmpfs devtmpfs "$ROOT/dev"
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts"
# --shm-size: the size of /dev/shm (without it, tmpfs's default: half the guest's RAM).
mount -t tmpfs -o "mode=1777${ISOBOX_SHM_SIZE:+,size=$ISOBOX_SHM_SIZE}" shm "$ROOT/dev/shm"

# Volumes, bind mounts and tmpfs (isobox_mounts, from drivers/vm/volumes.py). Each is mounted on a
# staging directory first: a new, empty volume gets what the image has at its target, as Docker
# copies image content into a new volume; then it is moved over the target.
# Devices appear some time after their driver loaded: the sysfs entry matching GLOB whose file ATTR
# reads VALUE is printed once it exists, waiting up to 5 s.
isobox_sysfs_find() {  # GLOB ATTR VALUE
    tries=0
    while [ "$tries" -le 500 ]; do
        for entry in $1; do
            [ "$(cat "$entry/$2" 2>/dev/null)" = "$3" ] && echo "$entry" && return 0
        done
        tries=$((tries + 1))
        usleep 10000
    done
    return 1
}
isobox_modules() {
    [ -e "/run/isobox-modules-$1" ] && return 0
    while read -r module; do
        insmod "/lib/modules/$module" || return 1
    done < "/etc/isobox/modules-$1"
    : > "/run/isobox-modules-$1"
}
isobox_empty() {
    [ -z "$(ls -A "$1" 2>/dev/null | grep -v '^lost+found$')" ]
}
isobox_place() {  # STAGING TARGET OPTIONS: copy image content into an empty volume, then move it
    mkdir -p "$ROOT$2" || return 1
    if [ "$3" != ro ] && isobox_empty "$1" && ! isobox_empty "$ROOT$2"; then
        cp -a "$ROOT$2/." "$1/" || return 1
    fi
    mount --move "$1" "$ROOT$2"
}
isobox_virtiofs() {  # TAG TARGET ro|rw
    isobox_modules virtiofs || return 1
    mkdir -p "/run/mnt/$1" && mount -t virtiofs -o "$3" "$1" "/run/mnt/$1" && isobox_place "/run/mnt/$1" "$2" "$3"
}
isobox_disk() {  # SERIAL TARGET ro|rw
    block=$(isobox_sysfs_find '/sys/block/vd*' serial "$1") || return 1
    mkdir -p "/run/mnt/$1" || return 1
    mount -t ext4 -o "$3,noinit_itable" "/dev/${block##*/}" "/run/mnt/$1" || return 1
    isobox_place "/run/mnt/$1" "$2" "$3"
}
isobox_tmpfs() {  # TARGET OPTIONS
    mkdir -p "$ROOT$1" && mount -t tmpfs -o "$2" tmpfs "$ROOT$1"
}
isobox_mounts || fail "cannot mount the volumes"
hostname "$ISOBOX_HOSTNAME"
echo "$ISOBOX_HOSTNAME" > /proc/sys/kernel/hostname
[ -n "$ISOBOX_CWD" ] && mkdir -p "$ROOT$ISOBOX_CWD"

# Network: each NIC is found by the MAC isobox gave it, renamed to its name in the plan (eth0 ...),
# addressed, and the first one carries the default route. hosts and resolv.conf go into the image
# root (a symlink there would point into the initramfs, so it is replaced by a file).
isobox_link() {  # MAC NAME ADDRESS/PREFIX
    dev=$(isobox_sysfs_find '/sys/class/net/*' address "$1") || return 1
    [ "${dev##*/}" = "$2" ] || ip link set "${dev##*/}" name "$2" || return 1
    ip addr add "$3" dev "$2" && ip link set "$2" up
}
ip link set lo up
isobox_network || fail "cannot configure the network"
write_etc() {
    [ -n "$2" ] || return 0
    mkdir -p "$ROOT/etc"
    [ -L "$ROOT/etc/$1" ] && rm -f "$ROOT/etc/$1"
    printf '%s' "$2" > "$ROOT/etc/$1"
}
write_etc hosts "$ISOBOX_HOSTS"
write_etc resolv.conf "$ISOBOX_RESOLV"

# The agent loops are daemonized by start-stop-daemon -b, not started with &: what they run (exec)
# must not inherit the ignored SIGINT/SIGQUIT of a background job (see the workload below). The
# pid files only make -S start them (it starts nothing when a matching process exists).
# exec -t sessions use the exec console: the second virtio console with -t (the first is the workload's
# terminal), else the only one (qemu_args.build adds them in that order).
if [ "$ISOBOX_TTY" = 1 ]; then ISOBOX_EXEC_TTY=/dev/hvc1; else ISOBOX_EXEC_TTY=/dev/hvc0; fi
export ISOBOX_EXEC_TTY
for loop in exec ctl; do
    start-stop-daemon -S -b -m -p "/run/isobox-agent-$loop.pid" -x /bin/sh -- \
        -c ". /etc/isobox/agent.sh && agent_${loop}_loop"
done

stdin=$ISOBOX_STDIN stdout=/dev/port-isobox.stdout stderr=/dev/port-isobox.stderr
if [ "$ISOBOX_TTY" = 1 ]; then
    # -t: the workload's terminal is the virtio console /dev/hvc0 (see qemu_args.terminal).
    tries=0
    while [ ! -e /dev/hvc0 ] && [ "$tries" -lt 500 ]; do usleep 10000; tries=$((tries + 1)); done
    [ -e /dev/hvc0 ] || fail "the terminal /dev/hvc0 did not appear"
    stdin=/dev/hvc0 stdout=/dev/hvc0 stderr=/dev/hvc0
fi
# The workload runs in the foreground of init, not with &: a shell without job control starts
# background commands with SIGINT and SIGQUIT ignored (POSIX, Shell Command Language 2.11), and the
# workload would inherit that (no ^C, no `kill -s INT`). A child shell records its own pid for the
# agent's signals, then becomes the workload (exec keeps the pid).
# With -t the size is set once the terminal is held open (it would be forgotten before): the caller's, if
# the agent received it already (agent_resize), else 24x80.
sh -c '. "$1" && echo $$ > /run/workload.pid &&
       { [ "$ISOBOX_TTY" != 1 ] || stty $(cat /run/isobox-tty-size 2>/dev/null || echo rows 24 cols 80) || :; } 2>/dev/null &&
       isobox_workload' isobox-workload "$RUN_SCRIPT" < "$stdin" > "$stdout" 2> "$stderr"
status=$?
echo "$status" > /dev/port-isobox.status

# Flush the guest page cache to the disk before QEMU goes away, so a restart sees a clean file system.
sync
umount "$ROOT/dev/shm" "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2>/dev/null
# Volumes, children first (/proc/mounts lists them in mount order).
for target in $(awk -v root="$ROOT/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$target" 2>/dev/null
done
mount -o remount,ro "$ROOT" 2>/dev/null
sync
poweroff -f
