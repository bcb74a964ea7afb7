#!/bin/busybox sh
# isobox guest init: PID 1 of every isobox VM, run by the kernel from the initramfs (busybox-static).
#
# 1. loads the virtio modules (list in /etc/isobox/modules, dependency order, made by initramfs.py);
# 2. reads the per-VM run script from fw_cfg (opt/isobox/run, written by guest_script.py on the host;
#    QEMU docs: docs/specs/fw_cfg.rst), which sets ISOBOX_HOSTNAME and defines isobox_workload;
# 3. mounts the VM's root disk (/dev/vda, ext4 on its own qcow2 overlay, so read-write) at /root;
# 4. starts the agent (exec and signals, see agent.sh) and runs the workload with its stdout and
#    stderr on two virtio-serial ports, which QEMU writes to files on the host (no host process needed);
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
                    /dev/port-isobox.agent /dev/port-isobox.ctl "$RUN_SCRIPT"; do
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
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm"
hostname "$ISOBOX_HOSTNAME"
echo "$ISOBOX_HOSTNAME" > /proc/sys/kernel/hostname
[ -n "$ISOBOX_CWD" ] && mkdir -p "$ROOT$ISOBOX_CWD"

. /etc/isobox/agent.sh
agent_exec_loop &
agent_ctl_loop &

isobox_workload < /dev/null > /dev/port-isobox.stdout 2> /dev/port-isobox.stderr &
echo $! > /run/workload.pid
wait $!
status=$?
echo "$status" > /dev/port-isobox.status

# Flush the guest page cache to the disk before QEMU goes away, so a restart sees a clean file system.
sync
umount "$ROOT/dev/shm" "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2>/dev/null
mount -o remount,ro "$ROOT" 2>/dev/null
sync
poweroff -f
