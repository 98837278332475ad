# Shared by the VM scripts (sourced).
# Downloads and prepared kernels are cached outside the checkout.
VM_CACHE=${BPFAGENT_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bpfagent-vm}

# The kernels of the matrix: Debian suite of each.
vm_suite() {
  case "$1" in
    5.10 | bullseye) echo bullseye ;;
    6.1 | bookworm) echo bookworm ;;
    6.12 | trixie) echo trixie ;;
    *) echo "$1" ;;
  esac
}

# The Debian archive the host's apt uses (not its security archive).
vm_mirror() {
  if [ -n "${BPFAGENT_VM_MIRROR:-}" ]; then echo "$BPFAGENT_VM_MIRROR"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^URIs: *//p' -e 's/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' | tr ' ' '\n' |
    grep -v -e security -e '^$' | grep '/debian/\?$' | head -1)
  [ -n "$uri" ] || { echo "vm: no Debian archive in the host's apt sources: set BPFAGENT_VM_MIRROR" >&2; return 1; }
  echo "${uri%/}"
}
