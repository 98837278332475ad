/**
 * Containers of a real runtime (Debian's docker.io: Docker 20.10, containerd,
 * runc, cgroupfs driver), on the tests' own daemon (test/helpers/docker.ts).
 *
 * A short-lived container (`docker run --rm` that makes one TCP connection,
 * one DNS lookup over UDP, and exits) must keep its container: its records are
 * read only after the container, its processes and its cgroup directory are
 * all gone. The agent is stopped (SIGSTOP) before the container is made and
 * let go (SIGCONT) once its cgroup directory is removed, so its records wait
 * in the kernel's ring buffer and flow table meanwhile: neither
 * /proc/PID/cgroup nor a walk of the cgroup tree can name the cgroup then.
 * Only the kernel's report of the cgroup's making (cgroup:cgroup_mkdir) can.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TraceAgent } from '../helpers/agent.js';
import { BRIDGE_ADDR, Docker, dockerCgroupDir, dockerMissing, readCidFile, TEST_LABEL } from '../helpers/docker.js';
import { CGROUP2_ROOT } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { until } from '../helpers/until.js';
import type { DnsRecord, TcpRecord, UdpRecord } from '../../src/events/records.js';

const IN_CI = process.env.CI === 'true';
const SKIP = KERNEL_SKIP || (!IN_CI && dockerMissing()) || false;

describe('containers of a real runtime (docker.io)', { skip: SKIP }, () => {
  let docker: Docker;
  let image: string;
  let agent: TraceAgent;
  let tcpServer: net.Server;
  let dnsServer: dgram.Socket;
  let tcpPort = 0;
  /** a container started before the agent */
  let older = '';
  /** what the DNS server got from and sent to each client (address:port) */
  const dnsSeen = new Map<string, { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number }>();
  const work = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-test-containers-'));

  before(async () => {
    docker = await Docker.start();
    image = await docker.busyboxImage();
    // the containers' peer, on the bridge: reads everything, answers 321 bytes, closes
    tcpServer = net.createServer((s) => {
      s.on('data', () => {});
      s.on('end', () => s.end(Buffer.alloc(321, 'y')));
    });
    await new Promise<void>((r) => tcpServer.listen(0, BRIDGE_ADDR, r));
    tcpPort = (tcpServer.address() as net.AddressInfo).port;
    // a DNS server on the bridge (busybox nslookup asks port 53): short-job.test is 10.251.0.77
    dnsServer = dgram.createSocket('udp4');
    dnsServer.on('message', (m, rinfo) => {
      const q = dnsPacket.decode(m);
      const answer = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.AUTHORITATIVE_ANSWER,
        questions: q.questions,
        answers: (q.questions ?? []).filter((x) => x.type === 'A').map((x) => ({ name: x.name, type: 'A' as const, ttl: 60, data: '10.251.0.77' })),
      });
      const key = `${rinfo.address}:${rinfo.port}`;
      const seen = dnsSeen.get(key) ?? { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 };
      dnsSeen.set(key, { packetsIn: seen.packetsIn + 1, bytesIn: seen.bytesIn + m.length, packetsOut: seen.packetsOut + 1, bytesOut: seen.bytesOut + answer.length });
      dnsServer.send(answer, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => dnsServer.bind(53, BRIDGE_ADDR, r));
    older = await docker.must(['run', '-d', '--label', TEST_LABEL, image, 'sleep', '300']);
    agent = new TraceAgent(['--interval', '500ms']);
    await agent.ready;
  });

  after(async () => {
    if (agent) agent.child.kill('SIGCONT');
    const exit = await agent?.stop();
    tcpServer?.close();
    dnsServer?.close();
    await docker?.stop();
    rmSync(work, { recursive: true, force: true });
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.equal(exit!.summary!['lossCgroupRingbufFull'], 0);
  });

  test('docker run --rm: one connection and one DNS lookup, then gone before its records are read; every record names the container', async () => {
    assert.ok(CGROUP2_ROOT, 'a cgroup v2 hierarchy is mounted');
    const cidfile = path.join(work, 'short.cid');
    // nothing of the agent runs from before the container's cgroup is made until after it is removed
    agent.child.kill('SIGSTOP');
    let cgroupIno: number;
    let cid: string;
    let ran: { code: number; stdout: string; stderr: string };
    try {
      const running = docker.cli([
        'run', '--rm', '--label', TEST_LABEL, '--cidfile', cidfile, image,
        // long enough for the test to see the cgroup directory, then one connection and one lookup
        'sh', '-c',
        `sleep 1; head -c 1234 /dev/zero | nc ${BRIDGE_ADDR} ${tcpPort} | wc -c; ` +
          `nslookup -type=a short-job.test ${BRIDGE_ADDR} | grep -c 10.251.0.77; grep '^0::' /proc/self/cgroup`,
      ]);
      cid = await readCidFile(cidfile);
      const dir = dockerCgroupDir(CGROUP2_ROOT, cid);
      await until(() => existsSync(dir) || undefined, `cgroup ${dir}`, 20_000, 20);
      cgroupIno = statSync(dir).ino;
      ran = await running;
      assert.equal(ran.code, 0, ran.stderr);
      // the container's own view: the bytes it got back, and its cgroup
      assert.deepEqual(ran.stdout.trim().split(/\s+/), ['321', '1', `0::/docker/${cid}`]);
      await until(() => !existsSync(dir) || undefined, `removal of ${dir}`, 20_000, 20);
    } finally {
      agent.child.kill('SIGCONT');
    }

    const [c] = await agent.waitFor((r: TcpRecord) => r.direction === 'outbound' && r.remote.port === tcpPort && r.local.cgroupId === cgroupIno);
    assert.deepEqual(
      { comm: c!.local.comm, containerId: c!.local.containerId, containerRuntime: c!.local.containerRuntime, bytes: [c!.bytesSent, c!.bytesReceived], outcome: c!.outcome },
      { comm: 'nc', containerId: cid, containerRuntime: 'docker', bytes: [1234, 321], outcome: 'closed' },
    );
    assert.equal(c!.local.exe, undefined, 'the process was gone: no executable');

    const named = { containerId: cid, containerRuntime: 'docker' };
    const [lookup] = await agent.waitForDns((r: DnsRecord) => r.query === 'short-job.test' && r.local.cgroupId === cgroupIno);
    assert.deepEqual(
      { containerId: lookup!.local.containerId, containerRuntime: lookup!.local.containerRuntime, rcode: lookup!.rcode, answers: lookup!.answers.map((a) => a.data) },
      { ...named, rcode: 'NOERROR', answers: ['10.251.0.77'] },
    );

    const client = `${lookup!.local.addr}:${lookup!.local.port}`;
    const want = dnsSeen.get(client);
    assert.ok(want, `the DNS server saw ${client}`);
    const udp = (): UdpRecord[] => agent.udp((r) => r.direction === 'outbound' && r.remote.port === 53 && r.local.port === lookup!.local.port && r.local.cgroupId === cgroupIno);
    const total = (k: 'packetsSent' | 'bytesSent' | 'packetsReceived' | 'bytesReceived'): number => udp().reduce((a, r) => a + r[k], 0);
    await agent.until(() => (total('packetsReceived') >= want.packetsOut ? true : undefined), "the container's UDP flow");
    assert.deepEqual(
      [total('packetsSent'), total('bytesSent'), total('packetsReceived'), total('bytesReceived')],
      [want.packetsIn, want.bytesIn, want.packetsOut, want.bytesOut],
      'exactly what the server got and sent',
    );
    for (const r of udp()) assert.deepEqual({ containerId: r.local.containerId, containerRuntime: r.local.containerRuntime }, named);
  });

  test('a container started before the agent: named by the walk of the cgroup tree at start', async () => {
    // exec'd, it connects and exits at once: gone before its record is read, like the containers above
    const r = await docker.cli(['exec', older, 'sh', '-c', `head -c 99 /dev/zero | nc ${BRIDGE_ADDR} ${tcpPort} | wc -c`]);
    assert.equal(r.stdout.trim(), '321', r.stderr);
    const [c] = await agent.waitFor((x: TcpRecord) => x.direction === 'outbound' && x.remote.port === tcpPort && x.bytesSent === 99);
    assert.deepEqual([c!.local.containerId, c!.local.containerRuntime, c!.bytesReceived], [older, 'docker', 321]);
  });
});
