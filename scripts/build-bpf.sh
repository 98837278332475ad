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
# refuses the object outright on any cmpxchg or xchg in them) must have none.
OBJDUMP=${OBJDUMP:-$(command -v llvm-objdump-16 || command -v llvm-objdump || true)}
if [ -n "$OBJDUMP" ]; then
  for sec in fexit/inet_sendmsg fexit/inet6_sendmsg fexit/inet_recvmsg fexit/inet6_recvmsg \
    tp_btf/net_dev_start_xmit tp_btf/netif_receive_skb cgroup/sock_create cgroup/bind4 cgroup/bind6 cgroup/sock_release; do
    if "$OBJDUMP" -d --section="$sec" build-bpf/net.bpf.o | grep -qE 'cmpxchg|xchg'; then
      echo "build-bpf: $sec in net.bpf.o uses a BPF atomic other than add (Linux >= 5.12): kernels from 5.10 load it" >&2
      exit 1
    fi
  done
fi
