/**
 * The agent's image (the project's Dockerfile, built on a Debian trixie base
 * made here: test/helpers/images.ts) run by a real container runtime
 * (Debian's docker.io, the tests' own daemon) with exactly the security
 * context, host PID namespace, mounts, configuration and limits of the
 * DaemonSet in deploy/kubernetes, as kustomize renders it and
 * test/helpers/agent-pod.ts translates it: not privileged, all capabilities
 * dropped but BPF, PERFMON and NET_ADMIN, seccomp unconfined, read-only root
 * file system, the host's cgroup tree read-only. It must trace a connection
 * between two other containers, each end attributed to its container, with
 * exact bytes; with each needed capability dropped (or Docker's default
 * seccomp profile) it must stop, or go on without UDP, with one line naming
 * what is missing.
 *
 * The first run on a machine builds the base images (debootstrap, ~150 MB
 * from Debian's mirror) and the image (apt-get and npm ci in its build
 * stage): some minutes; later runs reuse Docker's layer cache.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import {
  dockerRunOf,
  findObject,
  kubectlMissing,
  podSecurityOf,
  podSpecOf,
  PROVEN_POD_SECURITY,
  renderManifests,
  type K8sObject,
} from '../helpers/agent-pod.js';
import { Docker, DOCKER_CLI, dockerMissing, readCidFile, TEST_LABEL } from '../helpers/docker.js';
import { buildAgentImage } from '../helpers/images.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { until } from '../helpers/until.js';

const IN_CI = process.env.CI === 'true';
const SKIP = KERNEL_SKIP || (!IN_CI && (dockerMissing() ?? kubectlMissing())) || false;
const NODE_NAME = 'image-test-node';

interface Conn {
  direction: string;
  local: { addr: string; port: number; pid: number; comm: string; containerId?: string; containerRuntime?: string };
  remote: { addr: string; port: number };
  bytesSent: number;
  bytesReceived: number;
  outcome: string;
}

describe('the agent image, run as the DaemonSet says (docker.io)', { skip: SKIP }, () => {
  let docker: Docker;
  let image: string;
  let busybox: string;
  let objects: K8sObject[];
  let daemonSet: K8sObject;
  const work = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-test-image-'));
  let runs = 0;

  before(
    async () => {
      objects = renderManifests();
      daemonSet = findObject(objects, 'DaemonSet', 'bpfagent');
      docker = await Docker.start();
      busybox = await docker.busyboxImage();
      image = await buildAgentImage(docker);
    },
    { timeout: 1_800_000 },
  );

  after(async () => {
    await docker?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The DaemonSet (or a variant of it) as a container of this daemon: its id. */
  async function runAgent(ds: K8sObject): Promise<string> {
    const run = dockerRunOf(ds, objects, { nodeName: NODE_NAME, scratch: path.join(work, `agent-${++runs}`) });
    return docker.must(['run', '-d', '--label', TEST_LABEL, ...run.flags, image, ...run.args]);
  }

  /** A variant of the DaemonSet: `edit` changes its container's securityContext. */
  function variant(edit: (sc: NonNullable<ReturnType<typeof podSpecOf>['containers'][0]['securityContext']>) => void): K8sObject {
    const ds = structuredClone(daemonSet);
    edit(podSpecOf(ds).containers[0]!.securityContext!);
    return ds;
  }

  const ipOf = async (id: string): Promise<string> => docker.must(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', id]);
  const logsOf = async (id: string): Promise<string> => {
    const r = await docker.cli(['logs', id]);
    return r.stdout + r.stderr;
  };

  /** An HTTP GET the way the kubelet probes: the container's address, the probe's port. */
  async function probe(ip: string, port: number, pathname: string): Promise<number | undefined> {
    try {
      return (await fetch(`http://${ip}:${port}${pathname}`, { signal: AbortSignal.timeout(2000) })).status;
    } catch {
      return undefined;
    }
  }

  /** GET on the agent's API, which listens on the container's loopback only: from inside it. */
  async function api(id: string, pathname: string): Promise<unknown> {
    const js = `fetch('http://127.0.0.1:9745${pathname}').then(async (r) => { if (!r.ok) throw new Error(r.status + ' ' + await r.text()); process.stdout.write(await r.text()); })`;
    return JSON.parse(await docker.must(['exec', id, 'node', '-e', js]));
  }

  /** The exit code once the container has stopped by itself. */
  async function exited(id: string): Promise<number> {
    return until(async () => {
      const [running, code] = (await docker.must(['inspect', '--format', '{{.State.Running}} {{.State.ExitCode}}', id])).split(' ');
      return running === 'false' ? Number(code) : undefined;
    }, `container ${id.slice(0, 12)} to exit`);
  }

  const metricsPort = (): number => podSpecOf(daemonSet).containers[0]!.ports!.find((p) => p.name === 'metrics')!.containerPort;

  test('the DaemonSet grants what this test proves: the capabilities, host PID namespace and mounts recorded', () => {
    assert.deepEqual(podSecurityOf(daemonSet), PROVEN_POD_SECURITY);
  });

  test('a connection between two other containers: each end named by its container, exact bytes; probes, metrics and a clean stop', async () => {
    const agent = await runAgent(daemonSet);
    const agentIp = await ipOf(agent);
    const ready = await until(async () => ((await probe(agentIp, metricsPort(), '/readyz')) === 200 ? true : undefined), 'the agent ready (/readyz 200)').catch(
      async (e: Error) => assert.fail(`${e.message}; its log:\n${await logsOf(agent)}`),
    );
    assert.ok(ready);
    assert.equal(await probe(agentIp, metricsPort(), '/healthz'), 200);
    // the API and the UI are not on the pod's address
    assert.equal(await probe(agentIp, 9745, '/api/status'), undefined, 'nothing listens on the pod address but the metrics');
    const log = await logsOf(agent);
    const readyLine = JSON.parse(log.split('\n').find((l) => l.includes('"msg":"ready'))!) as Record<string, unknown>;
    assert.deepEqual(readyLine['missing'], [], log);
    assert.deepEqual(
      { udp: readyLine['udp'], dns: readyLine['dns'], attach: readyLine['attach'], cgroups: (readyLine['hooks'] as Record<string, unknown>)['cgroups'] },
      { udp: true, dns: true, attach: 'tp_btf', cgroups: 'raw_tp cgroup:cgroup_mkdir' },
      log,
    );

    // the basis of the DaemonSet's memory request (docs/fleet.md#resources): `run` alone, ready
    const mem = await docker.must(['stats', '--no-stream', '--format', '{{.MemUsage}}', agent]);
    console.log(`# the agent container's memory once ready: ${mem}`);

    // `bpfagent trace` in the same container (an exec joins its namespaces, capabilities and
    // seccomp profile): both ends' records, where the API keeps the client's of a merged edge
    const trace = spawn(DOCKER_CLI, ['exec', agent, 'timeout', '-s', 'INT', '120', 'node', '/opt/bpfagent/bin/bpfagent.js', 'trace', '--json'], { env: docker.env });
    const traced: Conn[] = [];
    let traceErr = '';
    createInterface({ input: trace.stdout! }).on('line', (l) => traced.push(JSON.parse(l) as Conn));
    trace.stderr!.on('data', (d: Buffer) => (traceErr += d.toString()));
    try {
      await until(async () => (traceErr.includes('"msg":"ready') ? true : undefined), 'trace ready in the agent container').catch((e: Error) => assert.fail(`${e.message}: ${traceErr}`));

      // the server counts what it gets, then sends 4321 bytes and closes; the client sends 1234 and counts what it gets
      const server = await docker.must(['run', '-d', '--label', TEST_LABEL, busybox, 'nc', '-l', '-p', '7000', '-e', 'sh', '-c', 'wc -c >&2; head -c 4321 /dev/zero']);
      const serverIp = await ipOf(server);
      const cidfile = path.join(work, 'client.cid');
      const client = await until(async () => {
        const r = await docker.cli(['run', '--rm', '--label', TEST_LABEL, '--cidfile', cidfile, busybox, 'sh', '-c', `head -c 1234 /dev/zero | nc ${serverIp} 7000 | wc -c`]);
        if (r.stdout.trim() === '4321') return readCidFile(cidfile);
        rmSync(cidfile, { force: true }); // refused: the server not listening yet
        return undefined;
      }, 'the client to get its 4321 bytes');
      assert.equal(await exited(server), 0);
      assert.equal((await logsOf(server)).trim(), '1234');

      const [out, inb] = await until(async () => {
        const o = traced.filter((c) => c.direction === 'outbound' && c.remote?.addr === serverIp && c.remote.port === 7000);
        const i = traced.filter((c) => c.direction === 'inbound' && c.local?.addr === serverIp && c.local.port === 7000);
        return o.length && i.length ? ([o, i] as const) : undefined;
      }, 'both ends traced');
      assert.equal(out.length, 1, JSON.stringify(out));
      assert.equal(inb.length, 1, JSON.stringify(inb));
      assert.deepEqual(
        { containerId: out[0]!.local.containerId, runtime: out[0]!.local.containerRuntime, comm: out[0]!.local.comm, bytes: [out[0]!.bytesSent, out[0]!.bytesReceived], outcome: out[0]!.outcome },
        { containerId: client, runtime: 'docker', comm: 'nc', bytes: [1234, 4321], outcome: 'closed' },
      );
      assert.deepEqual(
        { containerId: inb[0]!.local.containerId, runtime: inb[0]!.local.containerRuntime, remote: inb[0]!.remote.port, bytes: [inb[0]!.bytesSent, inb[0]!.bytesReceived], outcome: inb[0]!.outcome },
        { containerId: server, runtime: 'docker', remote: out[0]!.local.port, bytes: [4321, 1234], outcome: 'closed' },
      );

      // and `bpfagent run`, the DaemonSet's process: the edge with its bytes, the client's record named by its container
      type Graph = { edges: Array<{ id: string; port: number; bytesSent: number; bytesReceived: number; connections: number }> };
      const [edge, conns] = await until(async () => {
        const g = (await api(agent, '/api/graph?window=5m&proto=tcp')) as Graph;
        const e = g.edges.find((x) => x.port === 7000);
        if (!e) return undefined;
        const c = ((await api(agent, `/api/edges/${e.id}/connections?window=5m`)) as { connections: Conn[] }).connections;
        return c.length ? ([e, c] as const) : undefined;
      }, 'the connection in the API');
      assert.deepEqual([edge.connections, edge.bytesSent, edge.bytesReceived], [1, 1234, 4321]);
      assert.deepEqual(
        conns.map((c) => [c.direction, c.local.containerId, c.local.port, c.remote.addr, c.bytesSent, c.bytesReceived]),
        [['outbound', client, out[0]!.local.port, serverIp, 1234, 4321]],
      );
    } finally {
      trace.kill('SIGINT');
    }

    // metrics on the pod's address, as Prometheus scrapes them
    const metrics = await (await fetch(`http://${agentIp}:${metricsPort()}/metrics`)).text();
    assert.match(metrics, /^bpfagent_/m);

    // SIGTERM, as the kubelet stops it: a clean stop within the grace period
    await docker.must(['stop', '--time', '30', agent]);
    assert.equal(await exited(agent), 0, await logsOf(agent));
    assert.match(await logsOf(agent), /summary: /);
  });

  for (const cap of ['BPF', 'PERFMON']) {
    test(`without ${cap}: it stops, exit 2, with one line naming CAP_${cap}`, async () => {
      const agent = await runAgent(variant((sc) => (sc.capabilities!.add = sc.capabilities!.add!.filter((c) => c !== cap))));
      assert.equal(await exited(agent), 2);
      const lines = (await logsOf(agent)).trim().split('\n');
      const errors = lines.filter((l) => l.startsWith('bpfagent: '));
      assert.equal(errors.length, 1, lines.join('\n'));
      assert.match(errors[0]!, new RegExp(`^bpfagent: missing capabilities CAP_${cap}: .*securityContext\\.capabilities\\.add: \\[${cap}\\]`));
    });
  }

  test('without NET_ADMIN: it runs, TCP alone, saying CAP_NET_ADMIN is missing for UDP and DNS', async () => {
    const agent = await runAgent(variant((sc) => (sc.capabilities!.add = sc.capabilities!.add!.filter((c) => c !== 'NET_ADMIN'))));
    const ip = await ipOf(agent);
    await until(async () => ((await probe(ip, metricsPort(), '/readyz')) === 200 ? true : undefined), 'the agent ready');
    const log = await logsOf(agent);
    assert.match(log, /"level":40,[^\n]*"msg":"missing capability CAP_NET_ADMIN [^\n]*: UDP flows and DNS are off"/);
    const readyLine = JSON.parse(log.split('\n').find((l) => l.includes('"msg":"ready'))!) as Record<string, unknown>;
    assert.deepEqual([readyLine['udp'], readyLine['dns'], readyLine['attach']], [false, false, 'tp_btf']);
    await docker.must(['stop', '--time', '30', agent]);
    assert.equal(await exited(agent), 0);
  });

  test("with Docker's default seccomp profile (RuntimeDefault here): it stops, exit 2, with one line saying seccomp blocks bpf()", async () => {
    const agent = await runAgent(variant((sc) => (sc.seccompProfile = { type: 'RuntimeDefault' })));
    assert.equal(await exited(agent), 2);
    const lines = (await logsOf(agent)).trim().split('\n');
    const errors = lines.filter((l) => l.startsWith('bpfagent: '));
    assert.equal(errors.length, 1, lines.join('\n'));
    assert.match(errors[0]!, /^bpfagent: the bpf\(\) system call was refused although CAP_BPF \(or CAP_SYS_ADMIN\) is held: this process's seccomp filter blocks it .*seccompProfile\.type: Unconfined/);
  });
});
