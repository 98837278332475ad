/**
 * Every attach mode the agent can fall back to is exercised for real: the
 * same loopback exchange must give the same exact records in each.
 */
import { describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';

describe('attach modes', { skip: KERNEL_SKIP }, () => {
  let port = 29000 + (process.pid % 100) * 4; // below the ephemeral range
  for (const mode of ['tp_btf', 'raw_tp', 'tracepoint'] as const) {
    test(`--attach ${mode}: loopback exchange traced on both ends`, async () => {
      const agent = new TraceAgent(['--attach', mode]);
      try {
        const ready = await agent.ready;
        assert.equal(ready['attach'], mode);
        const p = port++;
        const server = new Peer('tsrv-mode', ['server', '--host', '127.0.0.1', '--port', String(p), '--send', '1001']);
        await server.waitFor('listening');
        const client = new Peer('tcli-mode', ['client', '--host', '127.0.0.1', '--port', String(p), '--send', '2002']);
        const { localPort } = await client.waitFor('connected');
        await client.waitFor('done');
        const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.port === localPort && r.remote.port === p);
        const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.port === p && r.remote.port === localPort);
        assert.deepEqual(
          [c!.local.pid, c!.local.comm, c!.bytesSent, c!.bytesReceived, c!.outcome],
          [client.pid, 'tcli-mode', 2002, 1001, 'closed'],
        );
        assert.deepEqual(
          [s!.local.pid, s!.local.comm, s!.bytesSent, s!.bytesReceived, s!.outcome],
          [server.pid, 'tsrv-mode', 1001, 2002, 'closed'],
        );
      } finally {
        const exit = await agent.stop();
        assert.equal(exit.code, 0, exit.stderr);
      }
      // closing the agent detached and unloaded everything it loaded
      const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as Array<{ name?: string }>;
      const ours = new Set(['btf_state', 'raw_state', 'tp_state', 'btf_xmit', 'sock_create', 'udp_send', 'udp_recv', 'udp4_sendmsg', 'udp4_recvmsg', 'udp4_bind', 'udp_release', 'dns_xmit', 'dns_receive']);
      const left = progs.filter((p) => p.name && ours.has(p.name));
      // another agent may run concurrently only outside this file; here none should remain
      assert.deepEqual(left, [], 'programs left loaded after the agent exited');
    });
  }
});
