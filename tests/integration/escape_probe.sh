#!/bin/sh
# Run inside a default container as root. Prints one line per attempt: "blocked <what>" or "ESCAPED <what>".
check() { # $1 = what, rest = command that must FAIL
  what="$1"; shift
  if "$@" >/dev/null 2>&1; then echo "ESCAPED $what"; else echo "blocked $what"; fi
}
capeff=$(grep CapEff /proc/self/status | awk '{print $2}')
has_cap() { [ $(( 0x$capeff >> $1 & 1 )) -eq 1 ]; }

check mount sh -c 'mkdir -p /mnt && mount -t tmpfs none /mnt'
check remount-proc mount -o remount,rw /proc/sys
check write-proc-sys sh -c 'echo 1 > /proc/sys/kernel/sysrq'
check write-sys sh -c 'echo x > /sys/kernel/uevent_helper'
check sysrq-trigger sh -c 'echo h > /proc/sysrq-trigger'
check hostname hostname isobox-escaped
check raw-disk-node sh -c 'mknod /tmp/vda b 253 0 && head -c 1 /tmp/vda'
check raw-disk-node-sda sh -c 'mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda'
check dev-mem sh -c 'mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem'
check kcore head -c 1 /proc/kcore
check load-module has_cap 16
check ptrace-cap has_cap 19
check sys-admin-cap has_cap 21
check host-pid-visible test -d "/proc/$HOST_PID"
check unshare-user unshare -U true
check chroot-escape sh -c 'mkdir -p /x && chroot /x /bin/true'
check disk-in-dev sh -c 'ls /dev | grep -E "^(sd|vd|nvme|xvd)"'
count=$(ls -d /proc/[0-9]* | wc -l)
if [ "$count" -lt 10 ]; then echo "blocked host-pids ($count visible)"; else echo "ESCAPED host-pids ($count visible)"; fi
