#!/usr/bin/env bash
# Fetch one Debian distribution kernel for the VM kernel matrix and prepare it
# to boot: vmlinuz, its modules, and a small busybox initramfs (scripts/vm/init)
# that mounts the host's root over 9p. Prints the kernel's directory.
#   bash scripts/vm/fetch-kernel.sh 5.10|6.1|6.12|SUITE
#
# The package comes through a private apt configuration (its own sources list,
# lists and archive cache under the cache directory): the host's apt sources
# and state are not touched. The mirror is the one the host's apt uses
# (BPFAGENT_VM_MIRROR overrides it). The generic -amd64 flavour is used: it
# has BTF, kprobes, fentry and 9p (the -cloud-amd64 flavour has no 9p).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

suite=$(vm_suite "${1:?usage: fetch-kernel.sh 5.10|6.1|6.12|SUITE}")
apt_root=$VM_CACHE/apt/$suite
mkdir -p "$apt_root"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
  "$apt_root"/var/lib/apt/lists/partial "$apt_root"/var/cache/apt/archives/partial "$apt_root"/var/lib/dpkg
: > "$apt_root/var/lib/dpkg/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(vm_mirror) $suite main" \
  > "$apt_root/etc/apt/sources.list"
cat > "$apt_root/apt.conf" <<CONF
Dir "$apt_root/";
Dir::State::status "$apt_root/var/lib/dpkg/status";
Dir::Etc::main "$apt_root/apt.conf";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Debug::NoLocking "true";
APT::Sandbox::User "root";
CONF
export APT_CONFIG=$apt_root/apt.conf

# refresh the suite's lists at most once a day
lists_stamp=$apt_root/var/lib/apt/lists/.updated
if [ ! -e "$lists_stamp" ] || [ -n "$(find "$lists_stamp" -mmin +1440)" ]; then
  apt-get update -qq >&2
  touch "$lists_stamp"
fi

# linux-image-amd64 depends on the suite's current kernel, e.g. linux-image-6.1.0-41-amd64
pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)\( .*\)\?$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "fetch-kernel: no linux-image-*-amd64 in $suite" >&2; exit 1; }
kver=${pkg#linux-image-}
kver=${kver%-unsigned}
dir=$VM_CACHE/kernels/$kver
if [ ! -e "$dir/.ready" ]; then
  debs=$apt_root/debs
  mkdir -p "$debs"
  (cd "$debs" && apt-get download -qq "$pkg" >&2)
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/root"
  dpkg-deb -x "$debs/${pkg}_"*.deb "$dir.tmp/root"
  cp "$dir.tmp/root/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
  # merged /usr (trixie) or not (bullseye); modules.dep is made by depmod, as the package's postinst does
  [ -d "$dir.tmp/root/lib/modules" ] || { mkdir -p "$dir.tmp/root/lib" && mv "$dir.tmp/root/usr/lib/modules" "$dir.tmp/root/lib/"; }
  depmod -b "$dir.tmp/root" "$kver"
  mv "$dir.tmp/root/lib/modules" "$dir.tmp/modules"
  rm -rf "$dir.tmp/root"
  echo "$suite $(dpkg-deb -f "$debs/${pkg}_"*.deb Version)" > "$dir.tmp/source"
  rm -f "$debs/${pkg}_"*.deb
  bash "$here/make-initramfs.sh" "$dir.tmp" "$kver" >&2
  touch "$dir.tmp/.ready"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # the modules directory is bind-mounted over /lib/modules/$kver in the guest
fi
echo "$dir"
