#!/usr/bin/env bash
# Build the initramfs of one fetched kernel: busybox (static, from Debian's
# busybox-static), the modules needed to mount the host's root (virtio PCI,
# 9p, overlay: each with what modules.dep says it needs, decompressed, in load
# order) and scripts/vm/init.
#   bash scripts/vm/make-initramfs.sh KERNEL_DIR KVER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1 kver=$2
mods=$dir/modules/$kver
busybox=/bin/busybox # busybox-static's, with insmod and switch_root
if ! "$busybox" --list 2>/dev/null | grep -qx switch_root; then
  echo "make-initramfs: no static busybox: apt-get install busybox-static" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,mnt,modules}
cp "$busybox" "$work/bin/busybox"
for app in sh mount umount mkdir insmod switch_root sleep cat echo poweroff ln; do ln -s busybox "$work/bin/$app"; done

# modules.dep lines: "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz"
declare -A seen=()
order=()
add() {
  local path=$1 deps dep
  [ -n "${seen[$path]:-}" ] && return
  seen[$path]=1
  deps=$(grep -E "^$path:" "$mods/modules.dep" | cut -d: -f2)
  for dep in $deps; do add "$dep"; done
  order+=("$path")
}
for name in virtio_pci virtio_blk 9pnet_virtio 9p overlay; do
  path=$(grep -E "^([^:]*/)?${name}\.ko(\.[a-z]+)?:" "$mods/modules.dep" | cut -d: -f1 || true)
  if [ -z "$path" ]; then
    grep -qE "/${name}\.ko$" "$mods/modules.builtin" || { echo "make-initramfs: $kver has no module $name" >&2; exit 1; }
    continue # built in
  fi
  add "$path"
done
: > "$work/modules/order"
for path in "${order[@]}"; do
  base=$(basename "$path")
  case "$base" in
    *.xz) xz -dc "$mods/$path" > "$work/modules/${base%.xz}" ;;
    *.zst) zstd -qdc "$mods/$path" > "$work/modules/${base%.zst}" ;;
    *.gz) gzip -dc "$mods/$path" > "$work/modules/${base%.gz}" ;;
    *) cp "$mods/$path" "$work/modules/$base" ;;
  esac
  echo "${base%.ko*}.ko" >> "$work/modules/order"
done
cp "$here/init" "$work/init"
chmod +x "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/initramfs.gz"
echo "make-initramfs: $dir/initramfs.gz ($(tr '\n' ' ' < "$work/modules/order"))"
