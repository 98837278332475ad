/**
 * One agent's Kubernetes side, for bench/kube-watch.ts: KubeMetadata against
 * the kubeconfig given, with the watch scope given; prints one JSON line when
 * synced (sync time, heap and RSS after a forced GC, objects held), then one
 * per `stats` line read on stdin (its counters), and exits on `stop`.
 * `--scope none` starts nothing: the baseline of the process itself.
 *
 *   node --expose-gc dist/bench/kube-watch-agent.js --kubeconfig F --scope node|cluster|none --node NAME
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeMetadata } from '../src/enrich/k8s/index.js';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, scope: { type: 'string' }, node: { type: 'string' } } });
const gc = (globalThis as { gc?: () => void }).gc;
const memory = () => {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heapMB: +(m.heapUsed / 2 ** 20).toFixed(1), rssMB: +(m.rss / 2 ** 20).toFixed(1) };
};
const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

const kc = new KubeConfig();
kc.loadFromFile(values.kubeconfig!);
let km: KubeMetadata | undefined;
const t0 = performance.now();
if (values.scope !== 'none') {
  km = new KubeMetadata(kc, {
    log: pino({ level: 'warn' }),
    syncTimeoutMs: 300_000,
    watch: values.scope === 'node' ? { scope: 'node', nodeName: values.node! } : { scope: 'cluster' },
  });
  await km.start();
}
const syncMs = Math.round(performance.now() - t0);
say({ synced: true, syncMs, ...memory(), stats: km?.stats ?? {} });
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'stats') say({ ...memory(), stats: km?.stats ?? {} });
  if (line === 'stop') void (km ? km.stop() : Promise.resolve()).then(() => process.exit(0));
});
