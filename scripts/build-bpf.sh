#!/usr/bin/env bash
# Compile the kernel programs once (CO-RE): vmlinux.h is generated from the
# running kernel's BTF, the objects relocate themselves at load time.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-$(command -v clang-16 || command -v clang || true)}
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
BTF=${BTF:-/sys/kernel/btf/vmlinux}
[ -n "$CLANG" ] || { echo "build-bpf: clang not found: apt-get install clang-16" >&2; exit 1; }
[ -x "$BPFTOOL" ] || { echo "build-bpf: bpftool not found: apt-get install bpftool" >&2; exit 1; }
[ -r "$BTF" ] || { echo "build-bpf: kernel BTF not readable at $BTF (needs CONFIG_DEBUG_INFO_BTF=y)" >&2; exit 1; }
mkdir -p build-bpf
"$BPFTOOL" btf dump file "$BTF" format c > build-bpf/vmlinux.h.tmp
mv build-bpf/vmlinux.h.tmp build-bpf/vmlinux.h
case "$(uname -m)" in
  x86_64) arch=x86 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;;
esac
for src in bpf/*.bpf.c; do
  obj=build-bpf/$(basename "${src%.c}").o
  "$CLANG" -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$arch \
    -Ibuild-bpf -Ibpf -c "$src" -o "$obj"
  echo "build-bpf: $obj"
done
