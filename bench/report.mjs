// Summarise bench/run.sh runs: node bench/report.mjs RUNS.jsonl OUT.json [CONFIG_JSON]
// Prints the table on stdout and writes every run plus the summary to OUT.json.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bootstrap, median, OTHER_CORES_WARN, sum } from './stats.mjs';

const [runsPath, outPath, configJson = '{}'] = process.argv.slice(2);
if (!runsPath || !outPath) {
  console.error('usage: node bench/report.mjs RUNS.jsonl OUT.json [CONFIG_JSON]');
  process.exit(2);
}
const config = JSON.parse(configJson);
const readJsonl = (p) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
const runs = readJsonl(runsPath);
// runs that other work on the machine disturbed, run again by run.sh
const discardedPath = path.join(path.dirname(runsPath), 'discarded.jsonl');
const discarded = existsSync(discardedPath) ? readJsonl(discardedPath) : [];
// one run per tracer with bpf_stats on: time of its BPF programs (run.sh's kernel pass)
const kernelPassPath = path.join(path.dirname(runsPath), 'kernel-pass.jsonl');
const kernelPass = existsSync(kernelPassPath) ? readJsonl(kernelPassPath) : [];


/**
 * Loss the tracer itself reported: for bpfagent every summary counter named
 * loss* (ring buffer full, connection map full, ...) plus undecodable records
 * and, with the ClickHouse sink, the records it dropped;
 * for tcplife its "lost N events" lines.
 */
function reportedLoss(run) {
  if (run.mode === 'tcplife') return run.lostReported;
  const s = run.summary ?? {};
  let n = s.decodeErrors ?? 0;
  for (const [k, v] of Object.entries(s)) if (/^loss[A-Z]/.test(k) && typeof v === 'number') n += v;
  return n + sinkDropped(run);
}
/** bpfagent run -> ClickHouse: records its sinks dropped (their "sinks shut down" log line) */
const sinkDropped = (run) => sum(Object.values(run.sinks?.stats ?? {}).map((st) => st.dropped ?? 0));
/** the tracers that are bpfagent (its summary, its records' checks) */
const AGENTS = new Set(['bpfagent', 'clickhouse']);
/** how the table names a mode */
const LABEL = { clickhouse: 'bpfagent run -> ClickHouse' };
const captured = (r) => r.counts.outbound + r.counts.inbound;

/**
 * CPU (in cores) used while the load ran by anything but the load generator
 * and the tracer: other processes on the machine, kernel threads.
 */
function otherCores(run) {
  if (!run.host) return NaN;
  const other = run.host.busyCpuS - run.load.cpuUser - run.load.cpuSys - run.host.tracerCpuS;
  return Math.max(0, other) / run.load.seconds;
}

const MODES = ['baseline', 'bpfagent', 'clickhouse', 'tcplife'];
const TRACED = MODES.filter((m) => m !== 'baseline');
const summary = {};
for (const mode of MODES) {
  const rs = runs.filter((r) => r.mode === mode);
  if (!rs.length) continue;
  const rates = rs.map((r) => r.load.connPerSec);
  const m = {
    runs: rs.length,
    connPerSec: rates,
    connPerSecMedian: median(rates),
    connections: sum(rs.map((r) => r.load.connections)),
    loadErrors: sum(rs.map((r) => r.load.errors)),
    otherCores: rs.map(otherCores),
  };
  if (mode !== 'baseline') {
    // the timed runs' output went to /dev/null (run.sh --output null): capture is counted in the final pass
    const counted = rs.every((r) => r.counts) ? rs : kernelPass.filter((r) => r.mode === mode && r.counts);
    m.captureCountedIn = counted === rs ? 'runs' : counted.length ? 'final pass' : 'none';
    m.expected = 2 * sum(counted.map((r) => r.load.connections)); // both ends of every loopback connection
    m.captured = sum(counted.map(captured));
    m.capturedOutbound = sum(counted.map((r) => r.counts.outbound));
    m.capturedInbound = sum(counted.map((r) => r.counts.inbound));
    m.capturedFraction = m.captured / m.expected;
    m.worstRunCapturedFraction = Math.min(...counted.map((r) => captured(r) / (2 * r.load.connections)));
    if (AGENTS.has(mode)) {
      // records of the load whose outcome or byte counts are not what the load did
      m.notClosed = sum(counted.map((r) => r.counts.notClosed ?? 0));
      m.wrongBytes = sum(counted.map((r) => r.counts.wrongBytes ?? 0));
      m.parseErrors = sum(counted.map((r) => r.counts.parseErrors ?? 0));
      // what the agent says it wrote in the timed runs: every TCP record of the host, the load's among them
      m.recordsWritten = sum(rs.map((r) => r.summary?.records ?? 0));
    }
    m.lossReported = sum(rs.map(reportedLoss));
    m.missingUnreported = Math.max(0, m.expected - m.captured - sum(counted.map(reportedLoss)));
    m.cpuSecPer100kConn = rs.map((r) => r.cpuTicksLoad / r.clkTck / (r.load.connections / 1e5));
    m.cpuSecPer100kConnMedian = median(m.cpuSecPer100kConn);
    m.cpuCoresDuringLoad = rs.map((r) => r.cpuTicksLoad / r.clkTck / (r.load.seconds + (config.settle ?? 1)));
    m.readyMs = rs.map((r) => r.readyMs);
    m.readyMsMedian = median(m.readyMs);
    m.readyMsMax = Math.max(...m.readyMs);
    m.exitCodes = rs.map((r) => r.exitCode);
    if (mode === 'clickhouse') {
      // the ClickHouse server's own CPU from the load's start until the agent's last batch was in
      m.clickhouseCpuSecPer100kConn = rs.map((r) => r.clickhouseCpuTicksRun / r.clkTck / (r.load.connections / 1e5));
      m.clickhouseCpuSecPer100kConnMedian = median(m.clickhouseCpuSecPer100kConn);
      m.sinkDropped = sum(rs.map(sinkDropped));
    }
    if (AGENTS.has(mode)) {
      m.selfReportedStartupMs = rs.map((r) => r.ready?.startupMs ?? null);
      m.eventsSubmitted = sum(rs.map((r) => r.summary?.eventsSubmitted ?? 0));
    }
  }
  summary[mode] = m;
}

/*
 * Slowdown of each traced run against the baselines run just before and just
 * after it (run.sh puts one between any two traced runs): the machine's rate
 * drifts over minutes far more than within one such triple. The mode's
 * slowdown is the median over its runs.
 */
function pairedSlowdowns(mode) {
  const out = [];
  runs.forEach((r, i) => {
    if (r.mode !== mode) return;
    const before = runs.slice(0, i).reverse().find((x) => x.mode === 'baseline');
    const after = runs.slice(i + 1).find((x) => x.mode === 'baseline');
    const around = [before, after].filter(Boolean).map((b) => b.load.connPerSec);
    if (around.length) out.push(1 - r.load.connPerSec / (sum(around) / around.length));
  });
  return out;
}
for (const mode of TRACED) {
  if (!summary[mode] || !summary.baseline) continue;
  summary[mode].slowdownPaired = pairedSlowdowns(mode);
  summary[mode].slowdown = median(summary[mode].slowdownPaired);
  summary[mode].slowdownOfMedians = 1 - summary[mode].connPerSecMedian / summary.baseline.connPerSecMedian;
}
const ratio =
  summary.bpfagent && summary.tcplife ? summary.bpfagent.slowdown / summary.tcplife.slowdown : undefined;

// how far the ratio could move in another run of the same length (stats.mjs)
const ratioRange =
  summary.bpfagent?.slowdownPaired && summary.tcplife?.slowdownPaired
    ? bootstrap(summary.bpfagent.slowdownPaired, summary.tcplife.slowdownPaired)?.ratio
    : undefined;

// BPF program time per connection, and with the tracer's own CPU the whole
// cost of tracing one connection (1 CPU s per 100k connections = 10 µs each)
for (const run of kernelPass) {
  const m = summary[run.mode];
  if (!m || !run.progs) continue;
  const perConnUs = (ns) => ns / 1000 / run.load.connections;
  m.kernelUsPerConn = perConnUs(Object.values(run.progs).reduce((a, p) => a + p.ns, 0));
  m.kernelProgs = Object.fromEntries(
    Object.entries(run.progs)
      .filter(([, p]) => p.runs > 0)
      .map(([name, p]) => [name, { runsPerConn: p.runs / run.load.connections, nsPerRun: p.ns / p.runs, usPerConn: perConnUs(p.ns) }]),
  );
  m.totalUsPerConn = m.kernelUsPerConn + m.cpuSecPer100kConnMedian * 10;
}
const costRatio =
  summary.bpfagent?.totalUsPerConn && summary.tcplife?.totalUsPerConn
    ? summary.bpfagent.totalUsPerConn / summary.tcplife.totalUsPerConn
    : undefined;

// ------------------------------------------------------------------ table
const pct = (x, d = 1) => `${(x * 100).toFixed(d)}%`;
const rounds = config.rounds ?? Math.max(...Object.values(summary).map((m) => m.runs));
const cols = [
  ['mode', (m, name) => LABEL[name] ?? name],
  ['runs', (m) => String(m.runs)],
  ['conn/s (median)', (m) => m.connPerSecMedian.toFixed(0)],
  ['slowdown (median, paired)', (m, name) => (name === 'baseline' ? '-' : pct(m.slowdown))],
  [
    'captured/expected',
    (m, name) =>
      name === 'baseline' || m.captureCountedIn === 'none'
        ? '-'
        : `${m.captured}/${m.expected} (${pct(m.capturedFraction, 3)}${m.captureCountedIn === 'runs' ? '' : ', final pass'})`,
  ],
  ['loss(reported)', (m, name) => (name === 'baseline' ? '-' : String(m.lossReported))],
  ['agent CPU s/100k conn', (m, name) => (name === 'baseline' ? '-' : m.cpuSecPer100kConnMedian.toFixed(2))],
  ['ready ms', (m, name) => (name === 'baseline' ? '-' : `${m.readyMsMedian.toFixed(0)} (max ${m.readyMsMax.toFixed(0)})`)],
];
const rows = [cols.map(([h]) => h)];
for (const mode of MODES) if (summary[mode]) rows.push(cols.map(([, f]) => f(summary[mode], mode)));
const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());

const out = [];
out.push(
  `churn: ${config.clients ?? '?'} clients, ${config.servers ?? '?'} server threads, ${config.duration ?? '?'} s per run, ` +
    `${rounds} rounds, ${config.nproc ?? '?'} CPUs, kernel ${config.kernel ?? '?'}, agent ${config.agentRev ?? '?'}, ` +
    `output to ${config.output === 'null' ? '/dev/null' : 'a file on tmpfs'}`,
);
out.push(...lines);
if (ratio !== undefined)
  out.push(
    `bpfagent slowdown / tcplife slowdown = ${ratio.toFixed(2)}` +
      (ratioRange ? ` (bootstrap 90% interval ${ratioRange[0].toFixed(2)}-${ratioRange[1].toFixed(2)})` : ''),
  );
if (summary.clickhouse && summary.bpfagent)
  out.push(
    `bpfagent run -> ClickHouse against trace --json, same run: slowdown ${pct(summary.clickhouse.slowdown)} vs ${pct(summary.bpfagent.slowdown)}, ` +
      `agent CPU s/100k conn ${summary.clickhouse.cpuSecPer100kConnMedian.toFixed(2)} vs ${summary.bpfagent.cpuSecPer100kConnMedian.toFixed(2)}; ` +
      `the ClickHouse server's CPU s/100k conn ${summary.clickhouse.clickhouseCpuSecPer100kConnMedian.toFixed(2)} (from the load's start to the agent's last batch; in the slowdown, not the agent's CPU); sink dropped ${summary.clickhouse.sinkDropped}`,
  );
for (const mode of TRACED) {
  const m = summary[mode];
  if (!m) continue;
  const notes = [];
  if (m.slowdownPaired)
    notes.push(
      `slowdown of each run against the baselines around it ${m.slowdownPaired.map((x) => pct(x)).join(', ')}; ` +
        `of the medians of conn/s ${pct(m.slowdownOfMedians)}`,
    );
  if (m.missingUnreported > 0) notes.push(`${m.missingUnreported} records missing and not reported as lost`);
  if (m.captureCountedIn !== 'runs' && m.recordsWritten !== undefined)
    notes.push(`TCP records written in the timed runs (to /dev/null; every connection of the host) ${m.recordsWritten}, for ${2 * m.connections} of the load's ends`);
  if (m.worstRunCapturedFraction < m.capturedFraction)
    notes.push(`worst run captured ${pct(m.worstRunCapturedFraction, 3)}`);
  if (m.notClosed) notes.push(`${m.notClosed} records with an outcome other than "closed"`);
  if (m.wrongBytes) notes.push(`${m.wrongBytes} records with wrong byte counts`);
  if (m.parseErrors) notes.push(`${m.parseErrors} output lines that are not JSON`);
  if (m.exitCodes.some((c) => c !== 0)) notes.push(`exit codes ${m.exitCodes.join(',')}`);
  if (m.selfReportedStartupMs) notes.push(`self-reported startupMs ${m.selfReportedStartupMs.join(', ')}`);
  notes.push(`CPU cores while loaded ${m.cpuCoresDuringLoad.map((c) => c.toFixed(2)).join(', ')}`);
  out.push(`${mode}: ${notes.join('; ')}`);
}
for (const mode of ['bpfagent', 'tcplife']) {
  const m = summary[mode];
  if (m?.kernelProgs === undefined) continue;
  const progs = Object.entries(m.kernelProgs)
    .sort((a, b) => b[1].usPerConn - a[1].usPerConn)
    .map(([n, p]) => `${n} ${p.usPerConn.toFixed(2)} (${p.runsPerConn.toFixed(1)} x ${p.nsPerRun.toFixed(0)} ns)`);
  out.push(
    `${mode} per connection: BPF programs ${m.kernelUsPerConn.toFixed(2)} µs [${progs.join(', ')}] + process ` +
      `${(m.cpuSecPer100kConnMedian * 10).toFixed(2)} µs = ${m.totalUsPerConn.toFixed(2)} µs`,
  );
}
if (costRatio !== undefined) out.push(`bpfagent cost per connection / tcplife's = ${costRatio.toFixed(2)} (BPF programs from one bpf_stats run each, which adds its own ~tens of ns per program run)`);
out.push(
  'other CPU while loaded (cores, by round): ' +
    MODES.filter((m) => summary[m])
      .map((m) => `${m} ${summary[m].otherCores.map((c) => c.toFixed(2)).join(', ')}`)
      .join('; '),
);
if (discarded.length)
  out.push(
    `rerun because other work used > ${OTHER_CORES_WARN} cores: ` +
      discarded.map((r) => `${r.mode} round ${r.round} (${otherCores(r).toFixed(2)})`).join(', '),
  );
const busy = runs.filter((r) => otherCores(r) > OTHER_CORES_WARN);
if (busy.length)
  out.push(
    `WARNING: ${busy.length} run(s) shared the CPUs with other work (> ${OTHER_CORES_WARN} cores): ` +
      busy.map((r) => `${r.mode} round ${r.round}`).join(', ') +
      '; their conn/s are low for reasons other than the tracer',
  );
const loadErrors = Object.values(summary).reduce((a, m) => a + m.loadErrors, 0);
if (loadErrors) out.push(`load generator: ${loadErrors} failed connections (not in expected counts)`);
out.push(`raw results: ${outPath}`);
console.log(out.join('\n'));

writeFileSync(
  outPath,
  JSON.stringify({ config, summary, slowdownRatio: ratio, slowdownRatioInterval: ratioRange, costRatio, runs, discarded, kernelPass }, null, 2) + '\n',
);
