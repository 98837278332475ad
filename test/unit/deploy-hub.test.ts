/**
 * deploy/kubernetes/hub.yaml against what the hub does with it: its
 * ConfigMap is a configuration the hub loads (the Secret's variable sets the
 * ClickHouse password), the Deployment's ports, probes, scrape annotations
 * and Service agree with that configuration, and the hub runs as the
 * Deployment runs it (its arguments and file, user 65534, no capabilities):
 * ready on the metrics port once ClickHouse answers, the map on the
 * Service's port.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { envName, loadConfig } from '../../src/config/load.js';
import { AgentProcess } from '../helpers/agent.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';
import { shipOneConnection } from '../helpers/hub-fixtures.js';
import { freePort } from '../helpers/listen.js';
import { AGENT_JS } from '../helpers/processes.js';
import { until } from '../helpers/until.js';

const FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../deploy/kubernetes/hub.yaml');

interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  name: string;
  image: string;
  args: string[];
  env: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }>;
  ports: Array<{ name: string; containerPort: number }>;
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop?: string[]; add?: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  readinessProbe: Probe;
  livenessProbe: Probe;
}
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: {
        automountServiceAccountToken?: boolean;
        securityContext: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
        containers: Container[];
        volumes: Array<{ name: string; configMap?: { name: string }; secret?: { secretName: string; optional?: boolean } }>;
      };
    };
    ports?: Array<{ name: string; port: number; targetPort: string }>;
  };
}

const objects = parseAllDocuments(readFileSync(FILE, 'utf8')).map((d) => d.toJS() as Obj);
const of = (kind: string): Obj => {
  const o = objects.find((x) => x.kind === kind);
  assert.ok(o, `a ${kind} in ${FILE}`);
  return o;
};
const configMap = of('ConfigMap');
const deployment = of('Deployment');
const service = of('Service');
const pod = deployment.spec!.template!;
const hub = pod.spec.containers[0]!;
const portOf = (name: string): number => hub.ports.find((p) => p.name === name)!.containerPort;

/** The ConfigMap key and the directory it is mounted at, from the container's --config argument. */
function configMount(): { key: string; dir: string } {
  const file = hub.args[hub.args.indexOf('--config') + 1]!;
  const mount = hub.volumeMounts.find((m) => file.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `--config ${file} is on a mounted volume`);
  assert.equal(pod.spec.volumes.find((v) => v.name === mount.name)?.configMap?.name, configMap.metadata.name, 'the volume is the ConfigMap');
  return { key: file.slice(mount.mountPath.length + 1), dir: mount.mountPath };
}

describe('deploy/kubernetes/hub.yaml', () => {
  let dir: string;
  let configPath: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-hub-deploy-'));
    const { key } = configMount();
    assert.ok(configMap.data?.[key], `the ConfigMap has ${key}`);
    mkdirSync(path.join(dir, 'etc'));
    configPath = path.join(dir, 'etc', key);
    writeFileSync(configPath, configMap.data[key]);
    // readable by the Deployment's user, as a ConfigMap volume is
    chmodSync(dir, 0o755);
    chmodSync(path.join(dir, 'etc'), 0o755);
    chmodSync(configPath, 0o644);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a ConfigMap, a Deployment and a Service, one set of labels', () => {
    assert.deepEqual(objects.map((o) => `${o.apiVersion} ${o.kind}/${o.metadata.name}`), ['v1 ConfigMap/bpfagent-hub', 'apps/v1 Deployment/bpfagent-hub', 'v1 Service/bpfagent-hub']);
    const labels = { 'app.kubernetes.io/name': 'bpfagent', 'app.kubernetes.io/component': 'hub' };
    for (const o of objects) assert.deepEqual(o.metadata.labels, labels, o.kind);
    assert.deepEqual(deployment.spec!.selector!.matchLabels, labels);
    assert.deepEqual(pod.metadata.labels, labels);
    assert.deepEqual({ ...service.spec!.selector }, labels, "the Service selects the Deployment's pods");
  });

  test("the ConfigMap is the hub's configuration; ports, probes, annotations and the Service agree with it", () => {
    const { config } = loadConfig({ file: configPath, env: {} });
    assert.deepEqual([config.listen.port, config.metrics.listen?.port], [portOf('http'), portOf('metrics')]);
    assert.deepEqual([config.listen.host, config.metrics.listen?.host], ['0.0.0.0', '0.0.0.0'], "on the pod's address");
    assert.equal(config.hub.clickhouse.password, undefined);
    assert.deepEqual(config.hub.pricePerGB, { sameHost: null, sameZone: null, crossZone: 0.01, cluster: null, external: 0.09 });
    // the Secret's variable is the hub's password key
    const secret = hub.env.find((e) => e.valueFrom?.secretKeyRef)!;
    assert.equal(secret.name, envName(['hub', 'clickhouse', 'password']));
    assert.equal(secret.valueFrom!.secretKeyRef!.optional, true, 'a ClickHouse without a password needs no Secret');
    assert.equal(loadConfig({ file: configPath, env: { [secret.name]: 's3cret' } }).config.hub.clickhouse.password, 's3cret');
    // beyond loopback the map needs a token: the file named is on a Secret's volume, which the pod cannot start without
    const tokenFile = config.server.tokenFile!;
    const tokenMount = hub.volumeMounts.find((m) => tokenFile.startsWith(`${m.mountPath}/`));
    assert.ok(tokenMount, `server.tokenFile ${tokenFile} is on a mounted volume`);
    const tokenVolume = pod.spec.volumes.find((v) => v.name === tokenMount.name)!;
    assert.ok(tokenVolume.secret && tokenVolume.secret.optional !== true, 'a Secret volume, not optional');

    assert.deepEqual([hub.image, hub.args[0]], ['bpfagent', 'hub']);
    assert.deepEqual([hub.readinessProbe.httpGet, hub.livenessProbe.httpGet], [{ path: '/readyz', port: 'metrics' }, { path: '/healthz', port: 'metrics' }]);
    assert.deepEqual(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(portOf('metrics')), 'prometheus.io/path': '/metrics' });
    assert.deepEqual(service.spec!.ports, [{ name: 'http', port: portOf('http'), targetPort: 'http' }], 'the API and UI, not the metrics');
  });

  test('least privilege: not root, no capabilities, no token, read-only root file system and config', () => {
    assert.deepEqual(pod.spec.securityContext, { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } });
    assert.equal(pod.spec.automountServiceAccountToken, false);
    assert.deepEqual(hub.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    assert.ok(hub.volumeMounts.every((m) => m.readOnly === true));
  });

  describe('the hub run as the Deployment runs it', { skip: CLICKHOUSE_SKIP }, () => {
    let server: ClickHouseServer;
    before(async () => {
      server = await ClickHouseServer.start();
    });
    after(async () => {
      await server?.kill();
    });

    test('user 65534 without capabilities, its file: ready on the metrics port once ClickHouse answers, the map on the Service port', async () => {
      const { config } = loadConfig({ file: configPath, env: {} });
      // one connection an agent shipped a minute ago, into the database the file names
      await shipOneConnection(server.url, config.hub.clickhouse.database);

      // the Secret's token, readable by the Deployment's user as a Secret volume is
      const token = 'deploy-hub-test-token-0123456789';
      const tokenPath = path.join(dir, 'token');
      writeFileSync(tokenPath, `${token}\n`);
      chmodSync(tokenPath, 0o644);
      // the Deployment's arguments on this file; only the ports moved (a shared test machine), the token's path and
      // the server's; on every address, as in the pod
      const [http, metrics] = [await freePort(), await freePort()];
      const args = [...hub.args.map((a) => (a.startsWith('/') ? configPath : a)), '--listen', `0.0.0.0:${http}`, '--metrics-listen', `0.0.0.0:${metrics}`, '--clickhouse-url', server.url];
      const uid = String(pod.spec.securityContext.runAsUser);
      const gid = String(pod.spec.securityContext.runAsGroup);
      const p = new AgentProcess(
        spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', process.execPath, AGENT_JS, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', [envName(['server', 'tokenFile'])]: tokenPath },
        }),
        'bpfagent hub (as the Deployment)',
      );
      try {
        await p.ready;
        const status = readFileSync(`/proc/${p.child.pid!}/status`, 'utf8');
        assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
        assert.match(status, /^CapEff:\s+0{16}$/m);
        assert.match(status, /^CapBnd:\s+0{16}$/m);
        await until(async () => ((await fetch(`http://127.0.0.1:${metrics}/readyz`)).status === 200 ? true : undefined), 'readyz 200', 20_000);
        assert.equal((await fetch(`http://127.0.0.1:${metrics}/healthz`)).status, 200);
        assert.match(await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text(), /^bpfagent_hub_clickhouse_up 1$/m);
        const auth = { headers: { authorization: `Bearer ${token}` } };
        assert.equal((await fetch(`http://127.0.0.1:${http}/api/graph`)).status, 401, 'the map without the token');
        const g = (await (await fetch(`http://127.0.0.1:${http}/api/graph`, auth)).json()) as { edges: Array<{ source: string; target: string; bytesSent: number; bytesReceived: number }> };
        assert.deepEqual(g.edges.map((e) => [e.source, e.target, e.bytesSent, e.bytesReceived]), [['c1:process:curl', 'c1:10.0.0.2', 12, 34]]);
        assert.equal((await fetch(`http://127.0.0.1:${http}/`, auth)).status, 200, 'the web UI');
        assert.equal((await fetch(`http://127.0.0.1:${http}/metrics`, auth)).status, 404, 'metrics apart from what the Service exposes');
      } finally {
        const exit = await p.stop('SIGTERM');
        assert.equal(exit.code, 0, exit.stderr);
      }
    });
  });
});
