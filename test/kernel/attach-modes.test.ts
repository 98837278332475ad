/**
 * Every attach mode the agent can fall back to is exercised for real: the
 * same loopback exchange must give the same exact records in each.
 */
import { describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { CGROUP2_ROOT } from '../helpers/hosts.js';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';

/** Ids of the BPF programs a process holds, through program and link descriptors (their fdinfo names them). */
function programsHeldBy(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const m = /^prog_id:\s*(\d+)$/m.exec(info);
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

describe('attach modes', { skip: KERNEL_SKIP }, () => {
  let port = 29000 + (process.pid % 100) * 4; // below the ephemeral range
  for (const mode of ['tp_btf', 'raw_tp', 'tracepoint'] as const) {
    test(`--attach ${mode}: loopback exchange traced on both ends`, async () => {
      const agent = new TraceAgent(['--attach', mode]);
      let held = new Set<number>();
      try {
        const ready = await agent.ready;
        held = programsHeldBy(agent.child.pid!);
        assert.equal(ready['attach'], mode);
        // cgroups made are reported in the flavour of the mode: classic tracepoint, else raw tracepoint
        assert.equal(ready['cgroupMkdir'], mode === 'tracepoint' ? 'tp_cg_mkdir' : 'raw_cg_mkdir');
        const p = port++;
        const server = new Peer('tsrv-mode', ['server', '--host', '127.0.0.1', '--port', String(p), '--send', '1001']);
        await server.waitFor('listening');
        // the client in a "container" made and removed while the agent is stopped: named only by the report of its making
        const ctr = 'c0ffee'.repeat(10) + mode.length.toString(16).padStart(4, '0');
        const top = `${CGROUP2_ROOT}/bpfagent-test-${process.pid}-${mode}`;
        const cg = `${top}/docker/${ctr}`;
        agent.child.kill('SIGSTOP');
        let localPort = 0;
        let clientPid = 0;
        try {
          mkdirSync(cg, { recursive: true });
          const client = new Peer('tcli-mode', ['client', '--host', '127.0.0.1', '--port', String(p), '--send', '2002'], { cgroup: cg });
          localPort = (await client.waitFor('connected')).localPort as number;
          clientPid = client.pid;
          await client.waitFor('done');
          await client.exited;
          for (const d of [cg, `${top}/docker`, top]) rmdirSync(d);
        } finally {
          agent.child.kill('SIGCONT');
        }
        const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.port === localPort && r.remote.port === p);
        const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.port === p && r.remote.port === localPort);
        assert.deepEqual(
          [c!.local.pid, c!.local.comm, c!.bytesSent, c!.bytesReceived, c!.outcome],
          [clientPid, 'tcli-mode', 2002, 1001, 'closed'],
        );
        assert.deepEqual([c!.local.containerId, c!.local.containerRuntime], [ctr, 'docker']);
        assert.deepEqual(
          [s!.local.pid, s!.local.comm, s!.bytesSent, s!.bytesReceived, s!.outcome],
          [server.pid, 'tsrv-mode', 1001, 2002, 'closed'],
        );
      } finally {
        const exit = await agent.stop();
        assert.equal(exit.code, 0, exit.stderr);
      }
      // closing the agent detached and unloaded everything it loaded: none of
      // the programs it held is still in the kernel (by id, so that other
      // agents running on the machine meanwhile are not taken for leftovers)
      assert.ok(held.size >= 5, `the ready agent holds its programs (${[...held].join(', ')})`);
      const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as Array<{ id: number; name?: string }>;
      const left = progs.filter((p) => held.has(p.id));
      assert.deepEqual(left, [], 'programs left loaded after the agent exited');
    });
  }
});
