#!/usr/bin/python3
"""
The tests' OCI runtime: runc, with capabilities added that Docker 20.10
cannot name.

Docker 20.10 (Debian 12's docker.io) predates CAP_PERFMON and CAP_BPF (Linux
5.8): `docker run --cap-add BPF` is refused ("unknown capability"), although
its runc (1.1) and the kernel know them. Kubernetes asks containerd for them
by name (securityContext.capabilities.add: [BPF, PERFMON]), which puts them
in the container's OCI configuration; this wrapper does the same for the
tests' docker daemon (registered there as the runtime `bpfagent-caps`, see
docker.ts), so that the agent's image runs with exactly the DaemonSet's
capabilities.

Which capabilities: the container's environment variable
BPFAGENT_TEST_OCI_CAP_ADD (comma-separated CAP_ names), read from the bundle's
config.json on `create` and removed from the process's environment there.
They go into the bounding, effective and permitted sets, as Docker does for
--cap-add (no inheritable or ambient ones). The same for the process of a
`docker exec` (`runc exec --process FILE`), whose environment is the
container's, as a `kubectl exec` gets the container's capabilities.
Anything else is runc's, unchanged.
"""
import json
import os
import re
import sys

VAR = 'BPFAGENT_TEST_OCI_CAP_ADD'
RUNC = '/usr/bin/runc'


def add_to_process(proc: dict) -> None:
    """The capabilities the process's environment names, into its sets; the variable out of it."""
    env = proc.get('env', [])
    wanted = [e.split('=', 1)[1] for e in env if e.startswith(VAR + '=')]
    if not wanted:
        return
    caps = [c for c in wanted[-1].split(',') if c]
    bad = [c for c in caps if not re.fullmatch(r'CAP_[A-Z_]+', c)]
    if bad:
        sys.stderr.write(f'oci-caps-runtime: {VAR}: not capability names: {", ".join(bad)}\n')
        sys.exit(1)
    proc['env'] = [e for e in env if not e.startswith(VAR + '=')]
    sets = proc.setdefault('capabilities', {})
    for s in ('bounding', 'effective', 'permitted'):
        sets[s] = sorted(set(sets.get(s) or []) | set(caps))


def rewrite(path: str, edit) -> None:
    with open(path) as f:
        doc = json.load(f)
    edit(doc)
    with open(path + '.tmp', 'w') as f:
        json.dump(doc, f)
    os.replace(path + '.tmp', path)


def main() -> None:
    args = sys.argv[1:]
    if 'create' in args and '--bundle' in args:
        rewrite(os.path.join(args[args.index('--bundle') + 1], 'config.json'), lambda spec: add_to_process(spec.setdefault('process', {})))
    elif 'exec' in args and '--process' in args:
        # docker exec's process (its environment is the container's): the same capabilities,
        # as a kubectl exec gets the container's
        rewrite(args[args.index('--process') + 1], add_to_process)
    os.execv(RUNC, [RUNC] + args)


main()
