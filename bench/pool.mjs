// Pool several bench/run.sh results: node bench/pool.mjs bench/results/churn-STAMP.json ...
// One line per file (its paired slowdowns' medians and ratio), then all the
// files' paired slowdowns together: medians, ratio, bootstrap 90% intervals.
// A file's runs that shared the CPUs with other work (more than OTHER_CORES_WARN) are named.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bootstrap, median, OTHER_CORES_WARN } from './stats.mjs';

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node bench/pool.mjs bench/results/churn-STAMP.json [...]');
  process.exit(2);
}
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const range = (r, f) => (r ? ` (90% ${f(r[0])} to ${f(r[1])})` : '');
const pooled = { bpfagent: [], tcplife: [] };
for (const f of files) {
  let j;
  try {
    j = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    console.error(`pool: ${f}: ${e.message}`);
    process.exit(2);
  }
  const a = j.summary?.bpfagent?.slowdownPaired;
  const b = j.summary?.tcplife?.slowdownPaired;
  if (!a || !b) {
    console.error(`pool: ${f}: no paired slowdowns of both tracers (a result of bench/run.sh with both tracers?)`);
    process.exit(2);
  }
  pooled.bpfagent.push(...a);
  pooled.tcplife.push(...b);
  const busy = Object.entries(j.summary).flatMap(([mode, m]) =>
    (m.otherCores ?? []).flatMap((cores, i) => (cores > OTHER_CORES_WARN ? [`${mode} run ${i + 1}`] : [])),
  );
  const c = j.config ?? {};
  console.log(
    `${path.basename(f)}: agent ${c.agentRev}, kernel ${c.kernel}, ${a.length}+${b.length} runs: ` +
      `bpfagent ${pct(median(a))}, tcplife ${pct(median(b))}, ratio ${(median(a) / median(b)).toFixed(2)}` +
      range(bootstrap(a, b)?.ratio, (x) => x.toFixed(2)) +
      (busy.length ? `; shared the CPUs with other work: ${busy.join(', ')}` : ''),
  );
}
const { bpfagent: a, tcplife: b } = pooled;
const bs = bootstrap(a, b);
console.log(
  `pooled, ${a.length}+${b.length} runs: bpfagent ${pct(median(a))}${range(bs?.median, pct)}, ` +
    `tcplife ${pct(median(b))}${range(bootstrap(b)?.median, pct)}, ratio ${(median(a) / median(b)).toFixed(2)}${range(bs?.ratio, (x) => x.toFixed(2))}`,
);
