#!/usr/bin/env bash
# Compile the kernel programs once (CO-RE): against bpf/vmlinux/ARCH/vmlinux.h,
# the types of Debian trixie's 6.12 kernel (scripts/vm/gen-vmlinux.sh), not
# the build host's: the objects are the same on every build host and
# relocate themselves at load time to the running kernel, 5.10 and later.
# An architecture without a committed header uses the build host's BTF.
#
# clang: clang-16 (Debian bookworm's newest), the one the kernel matrix is
# proven with: the objects' instructions are the compiler's, and the
# verifier of each kernel judges those; CLANG overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-$(command -v clang-16 || command -v clang || true)}
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
[ -n "$CLANG" ] || { echo "build-bpf: clang not found: apt-get install clang-16" >&2; exit 1; }
case "$(uname -m)" in
  x86_64) arch=x86 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;;
esac
mkdir -p build-bpf
if [ -r "bpf/vmlinux/$arch/vmlinux.h" ]; then
  cp "bpf/vmlinux/$arch/vmlinux.h" build-bpf/vmlinux.h
else
  BTF=${BTF:-/sys/kernel/btf/vmlinux}
  [ -x "$BPFTOOL" ] || { echo "build-bpf: bpftool not found: apt-get install bpftool" >&2; exit 1; }
  [ -r "$BTF" ] || { echo "build-bpf: no bpf/vmlinux/$arch/vmlinux.h and kernel BTF not readable at $BTF (needs CONFIG_DEBUG_INFO_BTF=y)" >&2; exit 1; }
  "$BPFTOOL" btf dump file "$BTF" format c > build-bpf/vmlinux.h.tmp
  mv build-bpf/vmlinux.h.tmp build-bpf/vmlinux.h
fi
for src in bpf/*.bpf.c; do
  obj=build-bpf/$(basename "${src%.c}").o
  "$CLANG" -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$arch \
    -Ibuild-bpf -Ibpf -c "$src" -o "$obj"
  echo "build-bpf: $obj"
done

# The programs kernels before 5.12 load (no BPF atomics but add: the verifier
# refuses the object outright on any cmpxchg or xchg in them) must have none:
# every program of every object but the tp_btf UDP variant's (sock_send_length
# and its cgroup sock_addr programs need Linux 6.3), so that a program added
# later is checked without being listed here.
NEWER_ONLY=" tp_btf/sock_send_length tp_btf/sock_recv_length cgroup/sendmsg4 cgroup/sendmsg6 cgroup/recvmsg4 cgroup/recvmsg6 "
OBJDUMP=${OBJDUMP:-$(command -v llvm-objdump-16 || command -v llvm-objdump || true)}
if [ -n "$OBJDUMP" ]; then
  for obj in build-bpf/*.bpf.o; do
    # one disassembly per object: the program sections that have one
    bad=$("$OBJDUMP" -d "$obj" | awk -v skip="$NEWER_ONLY" '
      /^Disassembly of section / { sec = substr($4, 1, length($4) - 1) }
      /cmpxchg|xchg/ && index(skip, " " sec " ") == 0 { print sec }' | sort -u)
    for sec in $bad; do
      echo "build-bpf: $sec in $obj uses a BPF atomic other than add (Linux >= 5.12): kernels from 5.10 load it" >&2
    done
    [ -z "$bad" ] || exit 1
  done
fi
