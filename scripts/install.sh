#!/usr/bin/env bash
# Install everything bpfagent needs on Debian 12 (as root), then build it:
# system packages, npm dependencies, the native addon and the BPF objects.
#   bash scripts/install.sh          what the agent needs
#   bash scripts/install.sh --test   plus what the tests and benchmarks need
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(clang-16 llvm-16 libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool make g++ python3)
if [ "${1:-}" = "--test" ]; then
  # iproute2: test hosts in network namespaces; util-linux: setpriv (dropping
  # capabilities); libbpf-tools: the peer tools benchmarked against;
  # nftables: DNAT rules as kube-proxy sets them; prometheus: the server that
  # scrapes `bpfagent run` in its test (started by the test, not as a service);
  # chromium: the browser the web UI's test drives (through playwright-core);
  # qemu-system-x86, busybox-static, cpio, kmod (depmod), xz-utils, zstd: the
  # kernel matrix's VMs (scripts/vm/: Debian's kernels under qemu).
  # docker.io: the container runtime of the container tests (Docker 20.10, containerd, runc; started
  # by the tests on a daemon of their own, never as a service); busybox-static: their small image;
  # debootstrap: the Debian root file system the agent's image is built on (test/helpers/images.ts);
  # kubernetes-client: kubectl kustomize, to render deploy/kubernetes (unless a kubectl is there).
  # libfaketime: a wall clock the clock-step test sets back and forward for the
  # agent alone (never the machine's).
  pkgs+=(iproute2 util-linux libbpf-tools gcc nftables clickhouse-server clickhouse-client prometheus chromium libfaketime)
  pkgs+=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd)
  pkgs+=(docker.io debootstrap)
  command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  # no package starts a service here (docker.io would start a dockerd that sets the host's firewall)
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

command -v node >/dev/null || { echo "install: Node.js 20 or newer is required (node not found)" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  { echo "install: Node.js 20 or newer is required (found $(node --version))" >&2; exit 1; }

# npm ci runs the package's install script (node-gyp: native addon;
# scripts/build-bpf.sh: vmlinux.h from this kernel's BTF, CO-RE objects)
# and prepare (tsc).
npm ci --no-audit --no-fund
