#!/bin/bash
# PID 1 of the VM once the host's root is mounted (see scripts/vm/init): mount
# what the agent and its tests use (tracefs, debugfs, bpffs, cgroup v2, a
# fresh /tmp), run the command left in the share as root in the host's
# working directory (output on ttyS1), write its exit status next to it, power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
share=/run/bpfagent-vm
set -a
. "$share/env"
set +a
# A working directory under /tmp (CI's clean clone) would be hidden by the guest's fresh /tmp: it is moved
# aside before that tmpfs is mounted and back to its path after.
case "$VM_CWD/" in
  /tmp/*) mkdir -p /run/bpfagent-cwd && mount --bind "$VM_CWD" /run/bpfagent-cwd ;;
esac
mount -t tmpfs -o mode=1777 tmp /tmp
case "$VM_CWD/" in
  /tmp/*) mkdir -p "$VM_CWD" && mount --move /run/bpfagent-cwd "$VM_CWD" ;;
esac
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 run-netns /run/netns 2>/dev/null || { mkdir -p /run/netns && mount -t tmpfs run-netns /run/netns; }
echo 1 > /proc/sys/kernel/sysrq
ip link set lo up
hostname "bpfagent-vm-$(uname -r | cut -d- -f1)"
ulimit -n 65536
cd "$VM_CWD" || echo "vm: cannot cd to $VM_CWD" >&2
# the command's output on the second serial port (the host's stdout), the kernel's on the first
stty -F /dev/ttyS1 raw -echo
bash "$share/cmd" < /dev/null > /dev/ttyS1 2>&1
echo $? > "$share/rc"
sync
echo o > /proc/sysrq-trigger
sleep 10
