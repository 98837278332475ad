/**
 * The Kubernetes API failing, through a fault proxy in front of the test
 * API: stopped, refusing (each connection reset), hung (accepts, never
 * answers), answering 500. At start, start() settles within its sync time-out
 * whatever the failure (bpfagent traces meanwhile: the ready line waits for
 * it, nothing else does), and once the API is back the metadata arrives by
 * itself. Mid-run, each of them and then back: what changed meanwhile is
 * seen, without a restart of the agent. Restarted without its watch history:
 * the resumed watch gets 410 Gone, the agent relists, deletions are seen.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeMetadata, type KubeMetadataOptions } from '../../src/enrich/k8s/index.js';
import { FakeKubeApi, type KObject } from '../helpers/fake-kube-api.js';
import { FaultProxy, type FaultMode } from '../helpers/fault-proxy.js';
import { waitFor } from '../helpers/sink-fixtures.js';

const SYNC_TIMEOUT_MS = 1000;
const OPTS: KubeMetadataOptions = { log: pino({ level: 'silent' }), syncTimeoutMs: SYNC_TIMEOUT_MS, backoffBaseMs: 50, backoffMaxMs: 200, watchTimeoutSeconds: 1, watch: { scope: 'cluster' } };

function pod(name: string, ip: string): KObject {
  return {
    metadata: { name, namespace: 'shop' },
    spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'x' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

describe('Kubernetes API failing', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  async function setup(): Promise<{ api: FakeKubeApi; proxy: FaultProxy; km: KubeMetadata }> {
    const api = await FakeKubeApi.start();
    const proxy = new FaultProxy({ host: '127.0.0.1', port: Number(new URL(api.url).port) });
    await proxy.start();
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'fake', server: proxy.url, skipTLSVerify: true }, { name: 'fake' });
    const km = new KubeMetadata(kc, OPTS);
    closers.push(async () => {
      await km.stop();
      await proxy.close();
      await api.close();
    });
    return { api, proxy, km };
  }

  for (const fault of ['stopped', 'refuse', 'hang', 'http-error'] as const) {
    test(`${fault} at start: start() settles within its time-out; the metadata arrives once the API is back`, async () => {
      const { api, proxy, km } = await setup();
      api.add('Pod', pod('web-1', '10.244.1.5'));
      await proxy.set(fault as FaultMode, 500);
      const t0 = performance.now();
      await assert.rejects(km.start(), /kubernetes|timeout|500|ECONNRE|socket/i);
      const took = performance.now() - t0;
      assert.ok(took < SYNC_TIMEOUT_MS + 1500, `start() settled in ${Math.round(took)} ms`);
      assert.equal(km.byAddress('10.244.1.5'), undefined);
      await proxy.set('pass');
      await waitFor(() => km.byAddress('10.244.1.5')?.pod === 'web-1', 8000, 'the pod, once the API is back');
      await waitFor(() => km.synced, 8000, 'every list in');
    });
  }

  for (const fault of ['stopped', 'refuse', 'hang', 'http-error'] as const) {
    test(`${fault} mid-run, then back: what changed meanwhile is seen`, async () => {
      const { api, proxy, km } = await setup();
      api.add('Pod', pod('web-1', '10.244.1.5'));
      await km.start();
      assert.equal(km.byAddress('10.244.1.5')?.pod, 'web-1');
      await proxy.set(fault as FaultMode, 500);
      api.add('Pod', pod('web-2', '10.244.1.6'));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(km.byAddress('10.244.1.6'), undefined, 'not while the API is away');
      assert.equal(km.byAddress('10.244.1.5')?.pod, 'web-1', 'what was known is kept');
      await proxy.set('pass');
      await waitFor(() => km.byAddress('10.244.1.6')?.pod === 'web-2', 8000, 'the pod added while the API was away');
    });
  }

  test('restarted without its watch history (410 Gone on resume): relisted, a pod deleted meanwhile is gone', async () => {
    const { api, proxy, km } = await setup();
    api.add('Pod', pod('web-1', '10.244.1.5'));
    await km.start();
    const listsBefore = km.stats.lists;
    await proxy.set('stopped');
    api.delete('Pod', 'shop', 'web-1');
    api.add('Pod', pod('web-2', '10.244.1.6'));
    api.expireHistory(); // the restarted server's history starts after the agent's resourceVersion
    await proxy.set('pass');
    await waitFor(() => km.byAddress('10.244.1.6')?.pod === 'web-2', 8000, 'the pod added while the API was down');
    await waitFor(() => km.byAddress('10.244.1.5') === undefined, 8000, 'the pod deleted while the API was down');
    assert.ok(km.stats.relists >= 1 && km.stats.lists > listsBefore, `relisted (lists ${listsBefore} -> ${km.stats.lists}, relists ${km.stats.relists})`);
    assert.ok(api.requests.some((r) => r.watch && r.outcome === 'gone'), 'a watch resumed from before the restart was refused with 410');
  });
});
