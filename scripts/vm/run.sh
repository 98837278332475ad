#!/usr/bin/env bash
# Run one command as root in a Debian distribution kernel under qemu, with the
# host's root visible (read-only over 9p, writes kept in a tmpfs in the
# guest), in the current directory; print its output; exit with its status.
#   bash scripts/vm/run.sh [--kernel 5.10|6.1|6.12] [--cpus N] [--mem SIZE] [--timeout SECONDS] -- COMMAND...
# Guests run under qemu's TCG emulator, not KVM: /dev/kvm on this project's
# machines is a nested hypervisor in which stock kernels fail. TCG is roughly
# 30x slower than the host. Exit status 124: the guest ran out of time; 125:
# the guest never ran the command (see its console output).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
kernel=6.1 cpus=2 mem=3G timeout=1800
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: run.sh [--kernel K] [--cpus N] [--mem SIZE] [--timeout S] -- COMMAND..." >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "vm: qemu-system-x86_64 not found: apt-get install qemu-system-x86" >&2; exit 2; }
dir=$(bash "$here/fetch-kernel.sh" "$kernel")
kver=$(basename "$dir")
share=$(mktemp -d "${TMPDIR:-/tmp}/bpfagent-vm.XXXXXX")
console=$(mktemp "${TMPDIR:-/tmp}/bpfagent-vm-console.XXXXXX")
trap 'rm -rf "$share" "$console"' EXIT
printf '%q ' "$@" > "$share/cmd"
{
  printf 'VM_CWD=%q\n' "$PWD"
  # what the guest's command sees of this environment
  for v in CI HOME TERM NODE_OPTIONS $(compgen -e | grep -E '^(BPFAGENT_|TEST_)' || true); do
    [ -n "${!v:-}" ] && printf '%s=%q\n' "$v" "${!v}"
  done
} > "$share/env"
set +e
timeout --foreground -k 10 "$timeout" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
  -nodefaults -no-reboot -display none -monitor none -serial "file:$console" -serial stdio \
  -kernel "$dir/vmlinuz" -initrd "$dir/initramfs.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 bpfagent_vm.kver=$kver bpfagent_vm.modules=$dir/modules/$kver bpfagent_vm.init=$here/guest-init.sh" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$share,mount_tag=share,security_model=none,multidevs=remap" </dev/null
status=$?
set -e
if [ $status -eq 124 ] || [ ! -s "$share/rc" ]; then
  echo "vm: $kver: the guest's console:" >&2
  tail -n 40 "$console" >&2
  [ $status -eq 124 ] && { echo "vm: $kver: no answer within ${timeout}s" >&2; exit 124; }
  echo "vm: $kver: the guest did not run the command (qemu exit $status)" >&2
  exit 125
fi
exit "$(cat "$share/rc")"
