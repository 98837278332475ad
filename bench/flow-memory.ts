/**
 * Flow-table memory: what N distinct edges cost in the EdgeTable, in a fresh
 * process per size (bench/enrich.sh runs one per size).
 *
 *   node --expose-gc dist/bench/flow-memory.js --edges 100000 [--max-edges N]
 *   node --expose-gc dist/bench/flow-memory.js --edges 1000000 --bounded
 *
 * Records go the agent's whole way (encoded struct tcp_close_event -> decode
 * -> nameRemote -> Enricher with the synthetic cluster -> EdgeTable.add), in
 * chunks through one reused buffer, so the table is the only thing that grows.
 * Record i makes edge i: the ends are what the agent would key them by:
 *
 *   i % 4 = 0: local workload -> remote workload (pod IP), port 1024 + ...
 *   i % 4 = 1: local workload -> DNS name (an answer in the name cache), ports 443, 8443, ...
 *   i % 4 = 2: local workload -> external address nobody looked up, port 443
 *   i % 4 = 3: remote workload -> local workload (inbound, observed by the server), port 8000 + ...
 *
 * Baseline: RSS and heapUsed after a forced GC with everything but the table
 * built and warmed (cluster index, name cache, enricher caches, the code
 * optimised by a warm-up table that is then dropped). After: the same, with
 * the table still referenced. Printed as one JSON object.
 *
 * --bounded: the default table (maxEdges 10,000) gets the same N distinct
 * flows; RSS is sampled along the way and must stay flat, the rest is counted
 * as overflow.
 */
import { performance } from 'node:perf_hooks';
import { decodeBatch, type DecodeStats, type RecordSink } from '../src/events/batch.js';
import { nameRemote } from '../src/enrich/remote-names.js';
import { EdgeTable } from '../src/flows/edge-table.js';
import { MonotonicClock } from '../src/util/clock.js';
import {
  buildCluster,
  buildPipeline,
  connectionNumbers,
  DEPLOYMENTS,
  encodeTcpClose,
  externalAddr,
  FRAME,
  intArg,
  mb,
  parseArgs,
  PODS_PER_DEPLOYMENT,
  prng,
  realHost,
  stopHost,
  THIS_NODE,
  unnamedAddr,
  type Cluster,
  type Host,
  type TcpEvent,
} from './pipeline.js';

const gc = (globalThis as { gc?: () => void }).gc;

function settle(): NodeJS.MemoryUsage {
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
}

/** Ports per kind of end, to vary the keys realistically. */
const DNS_PORTS = [443, 8443, 80, 9443, 5671, 6379, 5432, 27017];

/** Record `i` -> edge `i`: distinct (observedBy, source, destination, port) for every i (see the file comment). */
class DistinctEdges {
  private readonly rand = prng(7);
  private readonly baseNs = process.hrtime.bigint();
  private clientPort = 32768;

  constructor(
    private readonly host: Host,
    private readonly cluster: Cluster,
    private readonly dnsNames: number,
    /** added to i: the warm-up uses numbers the measured run does not */
    private readonly salt = 0,
  ) {}

  event(n: number): TcpEvent {
    const { cluster, host, rand } = this;
    const i = n + this.salt;
    const L = cluster.localPods.length; // one pod per local workload
    const kind = i % 4;
    const q = Math.floor(i / 4);
    const localIx = q % L;
    const r = Math.floor(q / L);
    const local = cluster.localPods[localIx]!;
    const proc = host.processes[localIx % host.processes.length]!;
    const port = this.clientPort;
    this.clientPort = port >= 60999 ? 32768 : port + 1;
    const endNs = this.baseNs + BigInt(n) * 2000n;
    const base = { pid: proc.pid, comm: proc.comm, cgroupId: host.cgroupId, laddr: local.ips[0]!, startNs: endNs - 2_000_000n, endNs };
    if (kind === 0) {
      const d = r % DEPLOYMENTS;
      const pod = cluster.pods[d]![(r + localIx) % PODS_PER_DEPLOYMENT]!;
      return { ...base, ...connectionNumbers(rand, true), direction: 1, lport: port, raddr: pod.ips[0]!, rport: 1024 + Math.floor(r / DEPLOYMENTS) };
    }
    if (kind === 1) {
      const name = r % this.dnsNames;
      const p = DNS_PORTS[Math.floor(r / this.dnsNames) % DNS_PORTS.length]! + Math.floor(r / (this.dnsNames * DNS_PORTS.length));
      return { ...base, ...connectionNumbers(rand, false), direction: 1, lport: port, raddr: externalAddr(name), rport: p };
    }
    if (kind === 2) {
      return { ...base, ...connectionNumbers(rand, false), direction: 1, lport: port, raddr: unnamedAddr(r), rport: 443 };
    }
    const d = r % DEPLOYMENTS;
    let caller = cluster.pods[d]![(r + localIx) % PODS_PER_DEPLOYMENT]!;
    if (caller.nodeName === THIS_NODE) caller = cluster.pods[d]![(r + localIx + 1) % PODS_PER_DEPLOYMENT]!;
    return { ...base, ...connectionNumbers(rand, true), direction: 2, lport: 8000 + Math.floor(r / DEPLOYMENTS), raddr: caller.ips[0]!, rport: port };
  }
}

async function main(): Promise<void> {
  // --bounded takes no value
  const argv = process.argv.slice(2).map((a) => (a === '--bounded' ? '--bounded=yes' : a));
  const args = parseArgs(argv, { edges: '100000', 'max-edges': '0', 'dns-names': '20000', chunk: '1024', bounded: 'no', samples: '10' });
  const edges = intArg(args, 'edges');
  const bounded = args.bounded !== 'no';
  const maxEdges = bounded ? 10_000 : intArg(args, 'max-edges') || edges + 1000;
  const dnsNames = Math.max(1, intArg(args, 'dns-names'));
  const chunk = Math.max(1, intArg(args, 'chunk'));
  const samples = Math.max(1, intArg(args, 'samples'));

  const host = await realHost();
  try {
    const cluster = buildCluster();
    const pl = buildPipeline(host, cluster, { dnsNames });
    const clock = new MonotonicClock();
    const buf = Buffer.alloc(chunk * FRAME);
    const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };

    const feed = (table: EdgeTable, gen: DistinctEdges, count: number, onChunk?: (done: number) => void) => {
      const sink: RecordSink = {
        tcp: (r, endMs) => {
          nameRemote(r, endMs, pl.names);
          pl.enricher.enrich(r);
          table.add(r);
        },
      };
      for (let done = 0; done < count; ) {
        const n = Math.min(chunk, count - done);
        let off = 0;
        for (let k = 0; k < n; k++) off = encodeTcpClose(buf, off, gen.event(done + k));
        decodeBatch(off === buf.length ? buf : buf.subarray(0, off), clock, stats, sink);
        done += n;
        onChunk?.(done);
      }
    };

    // warm-up: the same code paths and caches, into a table that is then dropped
    {
      const warm = new EdgeTable(undefined, 1_000_000);
      feed(warm, new DistinctEdges(host, cluster, dnsNames, 50_000_000), 50_000);
      warm.drain();
    }
    const base = settle();

    const table = bounded ? new EdgeTable() : new EdgeTable(undefined, maxEdges);
    const gen = new DistinctEdges(host, cluster, dnsNames);
    const rssSamples: { records: number; rssMB: number; heapUsedMB: number }[] = [];
    const every = Math.max(chunk, Math.floor(edges / samples));
    let nextSample = every;
    const t0 = performance.now();
    feed(table, gen, edges, (done) => {
      if (!bounded || (done < nextSample && done < edges)) return;
      nextSample += every;
      const m = settle();
      rssSamples.push({ records: done, rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed) });
    });
    const seconds = (performance.now() - t0) / 1000;
    const after = settle();
    if (stats.decodeErrors) throw new Error(`${stats.decodeErrors} decode errors`);
    const size = table.size;
    const expected = bounded ? undefined : edges;
    if (expected !== undefined && (size !== expected || table.overflowed !== 0))
      throw new Error(`expected ${expected} distinct edges, the table holds ${size} (${table.overflowed} overflowed)`);

    const rss = after.rss - base.rss;
    const heap = after.heapUsed - base.heapUsed;
    const e = enricherShares(pl.enricher.stats);
    const out: Record<string, unknown> = {
      bench: 'flow-memory',
      mode: bounded ? 'bounded' : 'distinct',
      node: process.version,
      flows: edges,
      maxEdges: table.maxEdges,
      tableEdges: size,
      overflowed: table.overflowed,
      recordsPerSec: Math.round(edges / seconds),
      baseline: { rssMB: mb(base.rss), heapUsedMB: mb(base.heapUsed) },
      after: { rssMB: mb(after.rss), heapUsedMB: mb(after.heapUsed), externalMB: mb(after.external) },
      delta: { rssMB: mb(rss), heapMB: mb(heap) },
      bytesPerEdge: { rss: Math.round(rss / size), heap: Math.round(heap / size) },
      enriched: e,
      dnsNames: pl.names.size,
    };
    if (bounded) {
      // once the table is full, RSS must not grow with more flows
      const full = rssSamples.filter((s) => s.records >= table.maxEdges);
      const rs = (full.length ? full : rssSamples).map((s) => s.rssMB);
      out.rssSamples = rssSamples;
      out.rssFlat = { minMB: Math.min(...rs), maxMB: Math.max(...rs), growthMB: Math.round((rs[rs.length - 1]! - rs[0]!) * 10) / 10 };
    }
    // keep the table alive through the measurement
    if (table.size < 0) table.drain();
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    stopHost(host);
  }
}

function enricherShares(s: { recordsEnriched: number; k8sLocal: number; k8sRemote: number }): Record<string, number> {
  return { records: s.recordsEnriched, k8sLocal: s.k8sLocal, k8sRemote: s.k8sRemote };
}

main().catch((e: unknown) => {
  process.stderr.write(`flow-memory: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
