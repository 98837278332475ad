/**
 * UDP flows are read from the kernel's flow table at each interval's end,
 * not from the ring buffer that reports cgroups as they are made
 * (bpf/cgroup.bpf.c). A flow of a container made, used and removed between
 * two reads of the ring must still name its container: the interval's end
 * reads the ring up to its drain of the table before it enriches the flows.
 *
 * Here the agent reads its ring every 5 s (records wait in the kernel
 * meanwhile) and ends a UDP interval every second. Right after one read of
 * the ring (a TCP record has just arrived), a "container" (a docker-layout
 * cgroup) is made, one process in it exchanges one datagram each way and
 * exits, and the cgroup is removed: its flow is drained at the next
 * interval's end, seconds before the next read of the ring would have
 * brought the report of its making. Neither /proc nor a walk of the tree can
 * name it then.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync } from 'node:fs';
import { TraceAgent } from '../helpers/agent.js';
import { CGROUP2_ROOT } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import type { UdpRecord } from '../../src/events/records.js';

describe('a UDP flow of a cgroup made and removed between two reads of the ring', { skip: KERNEL_SKIP }, () => {
  test('names its container: the ring is read up to the flow table drain first', async () => {
    assert.ok(CGROUP2_ROOT, 'a cgroup v2 hierarchy is mounted');
    const agent = new TraceAgent(['--poll-interval', '5s', '--interval', '1s']);
    const top = `${CGROUP2_ROOT}/bpfagent-test-${process.pid}-order`;
    const ctr = 'fade'.repeat(16);
    const cg = `${top}/docker/${ctr}`;
    try {
      await agent.ready;
      const udpServer = new Peer('uord-srv', ['server', '--host', '127.0.0.1', '--port', '0', '--expect', '1', '--reply-sizes', '7'], { script: 'udp-peer' });
      const udpPort = (await udpServer.waitFor('listening')).port as number;
      // a TCP record arrives right after a read of the ring
      const tcpServer = new Peer('uord-tsrv', ['server', '--host', '127.0.0.1', '--port', '0', '--send', '1']);
      const tcpPort = (await tcpServer.waitFor('listening')).port as number;
      const tcpClient = new Peer('uord-tcli', ['client', '--host', '127.0.0.1', '--port', String(tcpPort), '--send', '1']);
      await tcpClient.exited;
      await agent.waitFor((r) => r.direction === 'outbound' && r.remote.port === tcpPort);

      mkdirSync(cg, { recursive: true });
      const client = new Peer('uord-cli', ['client', '--to', `127.0.0.1:${udpPort}`, '--sizes', '321', '--expect-replies', '1'], { cgroup: cg, script: 'udp-peer' });
      const done = await client.waitFor('done');
      await client.exited;
      for (const d of [cg, `${top}/docker`, top]) rmdirSync(d);
      await udpServer.exited;

      const flows = (): UdpRecord[] => agent.udp((r) => r.direction === 'outbound' && r.local.port === done.localPort && r.remote.port === udpPort);
      const [flow] = await agent.until(() => (flows().length ? flows() : undefined), 'the flow of the removed cgroup', 15_000);
      assert.deepEqual(
        {
          pid: flow!.local.pid,
          containerId: flow!.local.containerId,
          containerRuntime: flow!.local.containerRuntime,
          counts: [flow!.packetsSent, flow!.bytesSent, flow!.packetsReceived, flow!.bytesReceived],
        },
        { pid: client.pid, containerId: ctr, containerRuntime: 'docker', counts: [1, 321, 1, 7] },
      );
      assert.equal(flows().length, 1, 'one record for the flow');
    } finally {
      for (const d of [cg, `${top}/docker`, top]) {
        try {
          rmdirSync(d);
        } catch {
          // removed above, or never made
        }
      }
      const exit = await agent.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
  });
});
