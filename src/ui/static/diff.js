// bpfagent web UI: what changed (GET /api/diff) laid over the map's graph.
// Every link and edge gets `diff`: 'new' (not in the baseline), 'gone' (in
// the baseline only: added from its numbers), 'changed' (past a threshold of
// the API, or a link some of whose ports came or went) or 'same'.

import { failedTotal, fmtBytes, fmtUs, pct } from './format.js';

export const DIFF_COLOR = { new: '#2563eb', gone: '#98a2ae', changed: '#9333ea', same: '#c5ccd4' };

/** The word for each metric of /api/diff's changes. */
export const METRIC_WORD = { bytesPerSec: 'bytes/s', rttP99Us: 'p99', failureRatio: 'failed' };

/** Short words for what moved: `bytes/s 1.2 kB → 40 kB`, `p99 250 µs → 25 ms`, `failed 0% → 100%`. */
export function changeTexts(changes) {
  return (changes ?? []).map((c) => {
    const w = METRIC_WORD[c.metric] ?? c.metric;
    if (c.metric === 'bytesPerSec') return `${w} ${fmtBytes(Math.round(c.before))} → ${fmtBytes(Math.round(c.after))}`;
    if (c.metric === 'rttP99Us') return `${w} ${fmtUs(c.before)} → ${fmtUs(c.after)}`;
    if (c.metric === 'failureRatio') return `${w} ${pct(c.before)} → ${pct(c.after)}`;
    return w;
  });
}

const sum = (xs, f) => xs.reduce((n, x) => n + (f(x) ?? 0), 0);

/** An edge of the baseline only, shaped as the graph's edges, with its baseline numbers. */
function goneEdge(x, baselineS) {
  return {
    id: `gone:${x.id}`,
    source: x.source,
    target: x.target,
    port: x.port,
    proto: x.proto,
    observedBy: 'baseline',
    ...x.before,
    connectionsPerSec: baselineS > 0 ? Math.round((x.before.connections / baselineS) * 1000) / 1000 : 0,
    diff: 'gone',
    before: x.before,
  };
}

/** A link of the baseline only: its gone edges summed (no p99: percentiles do not add). */
function goneLink(id, edges) {
  const protos = [...new Set(edges.map((e) => e.proto))].sort();
  return {
    id,
    source: edges[0].source,
    target: edges[0].target,
    edges: edges.map((e) => e.id),
    protos,
    connections: sum(edges, (e) => e.connections),
    failed: { refused: sum(edges, (e) => e.failed.refused), timeout: sum(edges, (e) => e.failed.timeout), reset: sum(edges, (e) => e.failed.reset) },
    bytesSent: sum(edges, (e) => e.bytesSent),
    bytesReceived: sum(edges, (e) => e.bytesReceived),
    packetsSent: sum(edges, (e) => e.packetsSent),
    packetsReceived: sum(edges, (e) => e.packetsReceived),
    retransmits: sum(edges, (e) => e.retransmits),
    rttUs: { p50: null, p99: null, count: 0 },
    health: edges.length === 1 ? edges[0].health : 'ok',
    connectionsPerSec: sum(edges, (e) => e.connectionsPerSec),
    diff: 'gone',
  };
}

/**
 * The graph `g` with the diff `d` over it: its edges and links marked, the
 * baseline's edges, links and nodes the window no longer has added (nodes
 * with `gone: true`; new ones `fresh: true`), each link's `portsNew`/`portsGone` counted and the
 * `changes` of its changed edges gathered.
 */
export function withDiff(g, d) {
  const baselineS = (Date.parse(d.baseline.to) - Date.parse(d.baseline.from)) / 1000;
  const mark = new Map();
  for (const x of d.appeared) for (const id of x.edges) mark.set(id, { diff: 'new', entry: x });
  for (const x of d.changed) for (const id of x.edges) mark.set(id, { diff: 'changed', entry: x });
  const edges = g.edges.map((e) => {
    const m = mark.get(e.id);
    if (!m) return { ...e, diff: 'same' };
    return m.diff === 'changed' ? { ...e, diff: 'changed', changes: m.entry.changes, before: m.entry.before } : { ...e, diff: 'new' };
  });
  const gone = d.disappeared.map((x) => ({ link: x.link, edge: goneEdge(x, baselineS) }));
  const byId = new Map(edges.map((e) => [e.id, e]));
  for (const x of gone) byId.set(x.edge.id, x.edge);
  const links = g.links.map((l) => {
    const mine = l.edges.map((id) => byId.get(id)).filter(Boolean);
    const goneHere = gone.filter((x) => x.link === l.id).map((x) => x.edge);
    const portsNew = mine.filter((e) => e.diff === 'new').length;
    const changed = mine.filter((e) => e.diff === 'changed');
    const diff = portsNew === mine.length && goneHere.length === 0 ? 'new' : portsNew || changed.length || goneHere.length ? 'changed' : 'same';
    return { ...l, edges: [...l.edges, ...goneHere.map((e) => e.id)], diff, portsNew, portsGone: goneHere.length, changes: changed.flatMap((e) => e.changes ?? []), changedPorts: changed.length };
  });
  const drawn = new Set(links.map((l) => l.id));
  const goneLinks = new Map();
  for (const x of gone) {
    if (drawn.has(x.link)) continue;
    if (!goneLinks.has(x.link)) goneLinks.set(x.link, []);
    goneLinks.get(x.link).push(x.edge);
  }
  for (const [id, es] of goneLinks) links.push(goneLink(id, es));
  // a node all of whose lines are new is new; one the window no longer has, gone
  const kinds = new Map();
  for (const l of links) for (const id of [l.source, l.target]) kinds.set(id, [...(kinds.get(id) ?? []), l.diff]);
  const nodes = g.nodes.map((n) => ({ ...n, fresh: (kinds.get(n.id) ?? []).length > 0 && kinds.get(n.id).every((k) => k === 'new') }));
  const have = new Set(nodes.map((n) => n.id));
  for (const n of d.nodes) if (!have.has(n.id)) nodes.push({ ...n, gone: true });
  return { ...g, nodes, edges: [...edges, ...gone.map((x) => x.edge)], links, diff: d };
}

/** One side's numbers of these diff entries summed: what a row of the list says of them. */
function summed(xs, side) {
  const n = xs.map((x) => x[side]);
  return {
    connections: sum(n, (v) => v.connections),
    packets: sum(n, (v) => v.packetsSent + v.packetsReceived),
    bytes: sum(n, (v) => v.bytesSent + v.bytesReceived),
    failed: sum(n, (v) => failedTotal(v.failed)),
  };
}

/**
 * The rows of the Changes list: one per line of the map and kind (changed,
 * new, gone, in that order; busiest first as the API lists them), so a pair
 * whose 30 ports all went is one row, not 30. Each row: `kind`, `link`, its
 * `entries` (the API's, one per port), `ports` and `protos`, and the window's
 * (new) or baseline's (gone) numbers summed in `numbers`.
 */
export function changeRows(d) {
  const rows = new Map();
  for (const [kind, list] of [
    ['changed', d.changed],
    ['new', d.appeared],
    ['gone', d.disappeared],
  ]) {
    for (const x of list) {
      const k = `${kind}|${x.link}`;
      if (!rows.has(k)) rows.set(k, { kind, link: x.link, source: x.source, target: x.target, entries: [] });
      rows.get(k).entries.push(x);
    }
  }
  return [...rows.values()].map((r) => ({
    ...r,
    ports: r.entries.map((x) => `${x.port}/${x.proto}`),
    protos: [...new Set(r.entries.map((x) => x.proto))].sort(),
    numbers: summed(r.entries, r.kind === 'gone' ? 'before' : 'after'),
  }));
}
