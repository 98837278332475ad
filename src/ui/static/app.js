// bpfagent web UI: the live service map. Plain ES module, no build step; the
// graph library (cytoscape) is loaded by index.html from the agent itself.
// Every few seconds it asks the agent's JSON API for the graph under the
// filters in the URL, and updates the drawing in place: existing nodes keep
// their positions, new ones are laid out around them.

/* global cytoscape */

import { DIFF_COLOR, METRIC_WORD, changeRows, changeTexts, withDiff } from './diff.js';
import { esc, failedTotal, fmtBytes, fmtCount, fmtRate, fmtTime, fmtUs, pct } from './format.js';

const API = '/api';
/** the filters of /api/graph */
const GRAPH_FILTERS = ['window', 'namespace', 'workload', 'locality', 'proto', 'failing', 'minConnections', 'minBytes'];
/** the Changes toggle and the baseline it compares with (as /api/diff takes it; without controls but the toggle) */
const DIFF_FILTERS = ['diff', 'baseline', 'baselineFrom', 'baselineTo'];
/** the filters of /api/diff besides its baseline: an edge's identity */
const IDENTITY_FILTERS = ['namespace', 'workload', 'locality', 'proto'];
const FILTERS = [...GRAPH_FILTERS, ...DIFF_FILTERS];
const DEFAULTS = { window: '15m' };
const HEALTH_COLOR = { ok: '#2e9d57', degraded: '#d99400', failing: '#d93b3b' };
const NS_PREFIX = 'ns::';

// ---------- filters <-> URL ----------

const form = document.getElementById('filters');

function filtersFromUrl() {
  const q = new URLSearchParams(location.search);
  const f = {};
  for (const k of FILTERS) {
    const v = q.get(k);
    if (v !== null && v !== '') f[k] = v;
  }
  return f;
}

function filtersToForm(f) {
  for (const k of FILTERS) {
    const el = form.elements.namedItem(k);
    if (!el) continue;
    if (el.type === 'checkbox') el.checked = f[k] === 'true';
    else el.value = f[k] ?? DEFAULTS[k] ?? '';
  }
  syncDiffControls(f);
}

/** The Changes view compares whole edges: the traffic filters (failing only, minimum connections) do not apply to it. */
function syncDiffControls(f) {
  for (const k of ['failing', 'minConnections']) {
    const el = form.elements.namedItem(k);
    el.disabled = diffOn(f);
    el.title = el.disabled ? 'not in the Changes view: it compares whole edges' : '';
  }
}

function filtersFromForm() {
  const f = { ...filtersFromUrl() }; // keeps the ones without a control (minBytes)
  for (const k of FILTERS) {
    const el = form.elements.namedItem(k);
    if (!el) continue;
    const v = el.type === 'checkbox' ? (el.checked ? 'true' : '') : el.value.trim();
    if (v === '' || v === DEFAULTS[k]) delete f[k];
    else f[k] = v;
  }
  return f;
}

function query(f, extra = {}) {
  const q = new URLSearchParams();
  q.set('window', f.window ?? DEFAULTS.window);
  for (const k of GRAPH_FILTERS) if (k !== 'window' && f[k] !== undefined) q.set(k, f[k]);
  for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
  return q.toString();
}

/** /api/diff's query: the window, the identity filters, the baseline if the URL gives one. */
function diffQuery(f) {
  const q = new URLSearchParams();
  q.set('window', f.window ?? DEFAULTS.window);
  for (const k of [...IDENTITY_FILTERS, 'baseline', 'baselineFrom', 'baselineTo']) if (f[k] !== undefined) q.set(k, f[k]);
  return q.toString();
}

const diffOn = (f) => f.diff === 'true';

let filters = filtersFromUrl();
filtersToForm(filters);

function onFiltersChanged() {
  const f = filtersFromForm();
  const q = new URLSearchParams();
  for (const k of FILTERS) if (f[k] !== undefined) q.set(k, f[k]);
  for (const [k, v] of new URLSearchParams(location.search)) if (!FILTERS.includes(k)) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, '', s ? `?${s}` : location.pathname);
  filters = f;
  syncDiffControls(f);
  void refresh();
}

let typing;
form.addEventListener('change', onFiltersChanged);
form.addEventListener('input', (e) => {
  if (e.target.type !== 'search' && e.target.type !== 'number') return;
  clearTimeout(typing);
  typing = setTimeout(onFiltersChanged, 350);
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  onFiltersChanged();
});
window.addEventListener('popstate', () => {
  filters = filtersFromUrl();
  filtersToForm(filters);
  void refresh();
});

// ---------- the map ----------

const NODE_STYLE = {
  workload: { shape: 'round-rectangle', bg: '#dbe7ff', border: '#2563eb' },
  process: { shape: 'ellipse', bg: '#dff3e6', border: '#2e7d4f' },
  service: { shape: 'hexagon', bg: '#efe4ff', border: '#7e22ce' },
  dns: { shape: 'round-tag', bg: '#fff1d6', border: '#b86e00' },
  node: { shape: 'rectangle', bg: '#e9edf2', border: '#4b5563' },
  address: { shape: 'ellipse', bg: '#f1f3f5', border: '#8a94a3' },
};

const cyStyle = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-size': 12,
      'font-family': 'system-ui, DejaVu Sans, sans-serif',
      color: '#1f2933',
      'text-valign': 'bottom',
      'text-halign': 'center',
      'text-margin-y': 4,
      'text-wrap': 'ellipsis',
      'text-max-width': 150,
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.8,
      'text-background-padding': 1,
      width: 30,
      height: 30,
      'border-width': 2,
      'background-color': '#f1f3f5',
      'border-color': '#8a94a3',
    },
  },
  ...Object.entries(NODE_STYLE).map(([kind, s]) => ({
    selector: `node[kind = "${kind}"]`,
    style: { shape: s.shape, 'background-color': s.bg, 'border-color': s.border },
  })),
  { selector: 'node[?failing]', style: { 'border-color': HEALTH_COLOR.failing, 'border-width': 3 } },
  {
    selector: 'node.ns',
    style: {
      shape: 'round-rectangle',
      'background-color': '#f4f7fc',
      'background-opacity': 1,
      'border-color': '#a9b8d0',
      'border-style': 'dashed',
      'border-width': 1,
      label: 'data(label)',
      'text-valign': 'top',
      'text-halign': 'center',
      'text-margin-y': -4,
      'font-size': 12,
      'font-weight': 'bold',
      color: '#3b4a63',
      'text-background-opacity': 0,
      padding: 16,
    },
  },
  {
    selector: 'edge',
    style: {
      width: 'data(w)',
      'line-color': 'data(color)',
      'target-arrow-color': 'data(color)',
      'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9,
      'curve-style': 'bezier',
      'control-point-step-size': 60,
      label: 'data(label)',
      'font-size': 11,
      'font-family': 'system-ui, DejaVu Sans, sans-serif',
      'text-wrap': 'wrap',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.9,
      'text-background-padding': 2,
      'text-background-shape': 'round-rectangle',
      'text-border-color': 'data(color)',
      'text-border-width': 1,
      'text-border-opacity': 0.6,
      color: '#1f2933',
      'line-opacity': 0.9,
      'text-margin-y': 'data(dy)',
    },
  },
  { selector: 'edge[health = "failing"]', style: { color: '#a01c12', 'line-style': 'solid' } },
  { selector: 'edge[proto = "udp"]', style: { 'line-style': 'dashed', 'line-dash-pattern': [8, 4] } },
  // the Changes view: new, gone, changed and unchanged lines told apart by colour, dash and weight
  { selector: 'edge[diff = "new"]', style: { 'line-style': 'solid', 'font-weight': 'bold', 'underlay-color': DIFF_COLOR.new, 'underlay-opacity': 0.15, 'underlay-padding': 4 } },
  { selector: 'edge[diff = "changed"]', style: { 'line-style': 'solid', 'font-weight': 'bold' } },
  { selector: 'edge[diff = "gone"]', style: { 'line-style': 'dotted', 'line-opacity': 0.8, color: '#6b7785' } },
  { selector: 'edge[diff = "same"]', style: { 'line-opacity': 0.6, 'text-opacity': 0.6 } },
  { selector: 'node[?gone]', style: { 'border-style': 'dashed', 'border-color': DIFF_COLOR.gone, opacity: 0.6 } },
  { selector: 'node[?fresh]', style: { 'border-color': DIFF_COLOR.new, 'border-width': 3 } },
  { selector: ':selected', style: { 'underlay-color': '#2563eb', 'underlay-opacity': 0.22, 'underlay-padding': 6 } },
  { selector: 'edge:selected', style: { 'z-index': 10, 'font-weight': 'bold' } },
  { selector: '.faded', style: { opacity: 0.25 } },
];

const cy = cytoscape({
  container: document.getElementById('map'),
  style: cyStyle,
  elements: [],
    minZoom: 0.2,
  maxZoom: 3,
  boxSelectionEnabled: false,
  selectionType: 'single',
});

/** positions of nodes seen before, so that one hidden by a filter comes back where it was */
const remembered = new Map();
let laidOut = false;

function edgeWidth(e) {
  const bytes = (e.bytesSent ?? 0) + (e.bytesReceived ?? 0);
  return Math.min(10, 1.2 + Math.log10(1 + bytes) * 0.8 + Math.min(2, (e.connectionsPerSec ?? 0) * 0.2));
}

/** `:443/tcp` for one edge; `30 ports/tcp`, or `3 ports tcp+udp`, for a link over several. */
function portsText(link) {
  const edges = linkEdges(link);
  if (edges.length === 1) return `:${edges[0].port}/${edges[0].proto}`;
  const protos = link.protos ?? [...new Set(edges.map((e) => e.proto))];
  return protos.length === 1 ? `${edges.length} ports/${protos[0]}` : `${edges.length} ports ${protos.join('+')}`;
}

/** A map line's label, from its link's sums: ports, conn/s (packets when UDP only), bytes; failures and p99 RTT below. */
function edgeLabel(link) {
  const e = link;
  const parts1 = [portsText(link)];
  if (!(e.protos ?? []).includes('tcp')) parts1.push(`${fmtCount((e.packetsSent ?? 0) + (e.packetsReceived ?? 0))} pkts`);
  else parts1.push(`${fmtRate(e.connectionsPerSec)} conn`);
  parts1.push(fmtBytes((e.bytesSent ?? 0) + (e.bytesReceived ?? 0)));
  const parts2 = [];
  const failed = failedTotal(e.failed);
  if (failed) parts2.push(`${failed} failed`);
  if (e.rttUs && e.rttUs.count) parts2.push(`p99 ≤ ${fmtUs(e.rttUs.p99)}`);
  return parts2.length ? `${parts1.join(' · ')}\n${parts2.join(' · ')}` : parts1.join(' · ');
}

/** The edges (one per port and protocol) a link sums, busiest first. */
function linkEdges(link) {
  const ids = new Set(link.edges ?? []);
  return graph.edges.filter((e) => ids.has(e.id));
}

const linkOfEdge = (edgeId) => graph.links?.find((l) => l.edges.includes(edgeId));

/** In the Changes view, a line's label says what it is, and what moved. */
function diffLabel(link) {
  const base = edgeLabel(link);
  if (link.diff === 'new') return `new · ${base}`;
  if (link.diff === 'gone') return `gone · ${base.split('\n')[0]}`;
  if (link.diff !== 'changed') return base;
  const what = [];
  if (link.changedPorts === 1 || (link.changedPorts && link.edges.length === 1)) what.push(...changeTexts(link.changes));
  else if (link.changedPorts) what.push(`${link.changedPorts} ports changed`);
  if (link.portsNew) what.push(`+${link.portsNew} port${link.portsNew > 1 ? 's' : ''}`);
  if (link.portsGone) what.push(`−${link.portsGone} port${link.portsGone > 1 ? 's' : ''}`);
  return `${base}\n▲ ${what.join(' · ')}`;
}

function edgeData(e) {
  return {
    id: `l:${e.id}`,
    linkId: e.id,
    apiIds: [...e.edges],
    source: e.source,
    target: e.target,
    proto: (e.protos ?? []).length === 1 ? e.protos[0] : 'mixed',
    health: e.health,
    // always set: data() merges, and a line leaving the Changes view must lose it
    diff: e.diff ?? '',
    color: e.diff ? DIFF_COLOR[e.diff] : (HEALTH_COLOR[e.health] ?? '#8a94a3'),
    w: edgeWidth(e),
    label: e.diff ? diffLabel(e) : edgeLabel(e),
    dy: 0,
  };
}

function nodeData(n, failingIds) {
  const d = { id: n.id, label: n.label ?? n.id, kind: n.kind, failing: failingIds.has(n.id), gone: !!n.gone, fresh: !!n.fresh };
  if (n.namespace) {
    d.namespace = n.namespace;
    d.parent = NS_PREFIX + n.namespace;
  }
  return d;
}

/** Put the graph from the API on the map: add, update, remove; lay out only what is new. */
function applyGraph(g) {
  const failingIds = new Set();
  for (const e of g.edges) if (e.health === 'failing' && e.diff !== 'gone') failingIds.add(e.target);
  const wantNodes = new Map(g.nodes.map((n) => [n.id, n]));
  const namespaces = new Set(g.nodes.filter((n) => n.namespace).map((n) => n.namespace));
  // one line per caller and callee (a link), whatever the ports between them
  const wantEdges = new Map((g.links ?? []).filter((e) => wantNodes.has(e.source) && wantNodes.has(e.target)).map((e) => [`l:${e.id}`, e]));
  const added = [];

  cy.batch(() => {
    // removals first: edges, then nodes, then empty namespaces
    cy.edges().forEach((el) => {
      if (!wantEdges.has(el.id())) el.remove();
    });
    cy.nodes(':childless').forEach((el) => {
      if (el.hasClass('ns')) return;
      if (!wantNodes.has(el.id())) {
        remembered.set(el.id(), { ...el.position() });
        el.remove();
      }
    });
    cy.nodes('.ns').forEach((el) => {
      if (!namespaces.has(el.data('namespace'))) el.remove();
    });

    for (const ns of namespaces) {
      if (cy.getElementById(NS_PREFIX + ns).empty()) cy.add({ group: 'nodes', data: { id: NS_PREFIX + ns, label: `namespace ${ns}`, namespace: ns }, classes: 'ns' });
    }
    for (const n of g.nodes) {
      const d = nodeData(n, failingIds);
      const el = cy.getElementById(n.id);
      if (el.empty()) {
        // back where it was, unless another node took the place meanwhile
        let pos = remembered.get(n.id);
        if (pos && !placeFree(pos, added)) pos = undefined;
        const added1 = cy.add({ group: 'nodes', data: d, position: pos ? { ...pos } : undefined });
        if (!pos) added.push(added1);
        if (selected?.type === 'node' && selected.id === n.id) added1.select();
      } else {
        if ((el.data('parent') ?? null) !== (d.parent ?? null)) el.move({ parent: d.parent ?? null });
        el.data(d);
      }
    }
    for (const [id, e] of wantEdges) {
      const d = edgeData(e);
      const el = cy.getElementById(id);
      if (el.empty()) {
        const e1 = cy.add({ group: 'edges', data: d });
        if (mapIdOf(selected) === id) e1.select();
      } else el.data(d);
    }
  });

  document.getElementById('empty').hidden = cy.nodes().length > 0;
  const dl = document.getElementById('namespaces');
  const known = [...namespaces].sort();
  if (dl.dataset.v !== known.join('\n')) {
    dl.dataset.v = known.join('\n');
    dl.innerHTML = known.map((n) => `<option value="${esc(n)}">`).join('');
  }
  layoutNew(added);
  spreadLabels();
}

/** Edge labels whose places on the map collide are moved apart, up and down. */
function spreadLabels() {
  const placed = [];
  cy.batch(() => {
    cy.edges().forEach((e) => {
      const m = e.midpoint();
      const lines = String(e.data('label') ?? '').split('\n');
      const w = 6.2 * Math.max(...lines.map((l) => l.length));
      const h = 15 * lines.length + 4;
      let dy = 0;
      for (let k = 1; k < 12; k++) {
        const hit = placed.some((b) => Math.abs(b.x - m.x) < (b.w + w) / 2 && Math.abs(b.y - (m.y + dy)) < (b.h + h) / 2);
        if (!hit) break;
        dy = (k % 2 ? 1 : -1) * Math.ceil(k / 2) * (h + 2);
      }
      placed.push({ x: m.x, y: m.y + dy, w, h });
      if (e.data('dy') !== dy) e.data('dy', dy);
    });
  });
}

// Layered layout: callers on the left, callees on the right (longest path
// from the callers, cycles broken), each namespace in its own horizontal band
// so that namespace boxes never overlap; within a column, nodes follow the
// mean row of their callers, to keep edges short and crossings few.
const COL = 300;
const ROW = 110;
const BAND_GAP = 70;

function layeredPositions(nodes, edges) {
  const ids = nodes.map((n) => n.id).sort();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out = new Map(ids.map((id) => [id, []]));
  const inn = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (e.source === e.target || !byId.has(e.source) || !byId.has(e.target)) continue;
    out.get(e.source).push(e.target);
    inn.get(e.target).push(e.source);
  }
  // break cycles: depth-first from the nodes nobody calls first, dropping edges back into the stack
  const state = new Map();
  const forward = new Map(ids.map((id) => [id, []]));
  const roots = [...ids.filter((id) => inn.get(id).length === 0), ...ids];
  for (const root of roots) {
    if (state.has(root)) continue;
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = out.get(top[0])[top[1]++];
      if (next === undefined) {
        state.set(top[0], 2);
        stack.pop();
      } else if (!state.has(next)) {
        forward.get(top[0]).push(next);
        state.set(next, 1);
        stack.push([next, 0]);
      } else if (state.get(next) === 2) forward.get(top[0]).push(next);
    }
  }
  // longest path from the callers
  const rank = new Map();
  const order = [];
  const seen = new Set();
  const visit = (id) => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const t of forward.get(id)) visit(t);
    order.push(id);
  };
  for (const id of ids) visit(id);
  for (const id of order.reverse()) {
    if (!rank.has(id)) rank.set(id, 0);
    for (const t of forward.get(id)) rank.set(t, Math.max(rank.get(t) ?? 0, rank.get(id) + 1));
  }
  // bands: namespaces by name, then the nodes outside any
  const bandOf = (id) => byId.get(id).namespace ?? '\uffff';
  const bands = [...new Set(ids.map(bandOf))].sort();
  const maxRank = Math.max(0, ...rank.values());
  const pos = new Map();
  let y0 = 0;
  for (const band of bands) {
    const members = ids.filter((id) => bandOf(id) === band);
    const columns = [];
    for (let c = 0; c <= maxRank; c++) {
      const col = members.filter((id) => rank.get(id) === c);
      const key = (id) => {
        const ys = inn.get(id).filter((s) => pos.has(s)).map((s) => pos.get(s).y);
        return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Number.POSITIVE_INFINITY;
      };
      col.sort((a, b) => key(a) - key(b) || byId.get(a).label?.localeCompare?.(byId.get(b).label ?? '') || a.localeCompare(b));
      col.forEach((id, i) => pos.set(id, { x: c * COL, y: y0 + i * ROW }));
      columns.push(col);
    }
    // then, right to left, each caller moves down towards the mean row of what it calls (order kept, never up)
    for (let c = maxRank - 1; c >= 0; c--) {
      let prev = Number.NEGATIVE_INFINITY;
      for (const id of columns[c]) {
        const ys = out.get(id).filter((t) => pos.has(t) && bandOf(t) === band).map((t) => pos.get(t).y);
        const want = ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : pos.get(id).y;
        const y = Math.max(want, pos.get(id).y, prev + ROW);
        pos.get(id).y = y;
        prev = y;
      }
    }
    const bottom = Math.max(y0, ...members.map((id) => pos.get(id).y));
    y0 = bottom + ROW + BAND_GAP;
  }
  return pos;
}

function layoutNew(added) {
  const real = cy.nodes(':childless').not('.ns');
  if (real.length === 0) return;
  const pos = layeredPositions(graph.nodes, graph.links ?? []);
  if (!laidOut) {
    cy.batch(() => real.forEach((n) => n.position(pos.get(n.id()) ?? { x: 0, y: 0 })));
    fitReadable();
    laidOut = true;
    return;
  }
  if (added.length === 0) return;
  // new nodes go where the layout puts them, moved down past any node already there
  const addedIds = new Set(added.map((n) => n.id()));
  const taken = real.filter((n) => !addedIds.has(n.id())).map((n) => ({ ...n.position() }));
  const free = (p) => taken.every((q) => Math.abs(q.x - p.x) > COL / 2 || Math.abs(q.y - p.y) > ROW / 2);
  cy.batch(() => {
    for (const n of added) {
      const p = { ...(pos.get(n.id()) ?? { x: 0, y: 0 }) };
      while (!free(p)) p.y += ROW;
      n.position(p);
      taken.push(p);
    }
  });
  const bb = cy.elements().boundingBox();
  const view = cy.extent();
  if (bb.x1 < view.x1 || bb.x2 > view.x2 || bb.y1 < view.y1 || bb.y2 > view.y2) fitReadable(true);
}

/** Whether no node on the map (but those in `except`) is at `p`. */
function placeFree(p, except = []) {
  const skip = new Set(except.map((n) => n.id()));
  return cy
    .nodes(':childless')
    .not('.ns')
    .every((n) => skip.has(n.id()) || Math.abs(n.position('x') - p.x) > COL / 2 || Math.abs(n.position('y') - p.y) > ROW / 2);
}

/** Fit the map, but never zoom in past 1.25 (a small graph stays at its natural size, centred). */
function fitReadable(animate = false) {
  const eles = cy.elements();
  if (eles.empty()) return;
  const bb = eles.boundingBox();
  const pad = 36;
  const zoom = Math.max(cy.minZoom(), Math.min(1.25, (cy.width() - 2 * pad) / bb.w, (cy.height() - 2 * pad) / bb.h));
  const pan = { x: (cy.width() - zoom * (bb.x1 + bb.x2)) / 2, y: (cy.height() - zoom * (bb.y1 + bb.y2)) / 2 };
  if (animate) cy.animate({ zoom, pan }, { duration: 250 });
  else cy.viewport({ zoom, pan });
}

cy.on('dragfree', 'node', () => spreadLabels());
document.getElementById('relayout').addEventListener('click', () => {
  laidOut = false;
  layoutNew([]);
  spreadLabels();
});
document.getElementById('fit').addEventListener('click', () => fitReadable(true));

// ---------- selection and details ----------

let graph = { nodes: [], edges: [], links: [] };
let selected = null; // { type: 'link' | 'edge' | 'node', id }: a map line, one of its ports, a node
let detailsToken = 0;
const detailsEl = document.getElementById('details');

cy.on('tap', 'edge', (ev) => select({ type: 'link', id: ev.target.data('linkId') }));
cy.on('tap', 'node', (ev) => {
  if (ev.target.hasClass('ns')) select(null);
  else select({ type: 'node', id: ev.target.id() });
});
cy.on('tap', (ev) => {
  if (ev.target === cy) select(null);
});

/** The map element of a selection: a link's line, the line an edge (port) is drawn in, a node. */
function mapIdOf(sel) {
  if (!sel) return undefined;
  if (sel.type === 'link') return `l:${sel.id}`;
  if (sel.type === 'edge') {
    const l = linkOfEdge(sel.id);
    return l ? `l:${l.id}` : undefined;
  }
  return sel.id;
}

function select(sel) {
  selected = sel;
  cy.$(':selected').unselect();
  const id = mapIdOf(sel);
  if (id !== undefined) {
    const el = cy.getElementById(id);
    if (el.nonempty()) el.select();
  }
  void renderDetails(true);
}

detailsEl.addEventListener('click', (ev) => {
  const t = ev.target.closest('[data-select]');
  if (!t) return;
  const [type, ...rest] = t.dataset.select.split(':');
  const id = rest.join(':');
  select(type === 'none' ? null : { type, id });
});
detailsEl.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' && ev.key !== ' ') return;
  const t = ev.target.closest('tr[data-select]');
  if (!t) return;
  ev.preventDefault();
  t.click();
});

const nodeLabel = (id) => graph.nodes.find((n) => n.id === id)?.label ?? id;

function healthBadge(h) {
  return `<span class="badge ${esc(h)}">${esc(h)}</span>`;
}

function sortEdges(edges) {
  const rank = { failing: 0, degraded: 1, ok: 2 };
  return [...edges].sort(
    (a, b) => (rank[a.health] ?? 3) - (rank[b.health] ?? 3) || b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || b.connections - a.connections,
  );
}

/**
 * Edges, one row per port and protocol. `from`: the node they are listed for
 * (rows say only the other end); `portsOnly`: the edges of one link (rows say only the port).
 */
function edgesTable(edges, caption, from, portsOnly = false) {
  if (!edges.length) return `<p class="muted">No edges.</p>`;
  const rows = (portsOnly ? [...edges].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port) : sortEdges(edges))
    .slice(0, 200)
    .map((e) => {
      const who = portsOnly
        ? ''
        : from === undefined
          ? `${esc(nodeLabel(e.source))} → ${esc(nodeLabel(e.target))} `
          : e.source === from
            ? `→ ${esc(nodeLabel(e.target))} `
            : `← ${esc(nodeLabel(e.source))} `;
      const failed = failedTotal(e.failed);
      return `<tr class="clickable${selected?.type === 'edge' && selected.id === e.id ? ' selected' : ''}" tabindex="0" data-select="edge:${esc(e.id)}" title="${esc(e.source)} → ${esc(e.target)}">
        <td class="wrap"><span class="dot ${esc(e.health)}"></span>${who}<span class="${portsOnly ? '' : 'muted '}port">:${esc(e.port)}/${esc(e.proto)}</span>${
          e.diff && e.diff !== 'same' ? ` <span class="badge ${esc(e.diff)}">${esc(e.diff)}</span>` : ''
        }</td>
        <td class="num">${e.proto === 'udp' ? `${fmtCount(e.packetsSent + e.packetsReceived)} pk` : fmtRate(e.connectionsPerSec)}</td>
        <td class="num">${fmtBytes(e.bytesSent + e.bytesReceived)}</td>
        <td class="num${failed ? ' failed' : ''}">${failed}</td>
        <td class="num">${e.rttUs?.count ? fmtUs(e.rttUs.p99) : '–'}</td>
      </tr>`;
    })
    .join('');
  return `<table aria-label="${esc(caption)}"><thead><tr><th>${portsOnly ? 'port' : 'edge'}</th><th class="num">rate</th><th class="num">bytes</th><th class="num">fail</th><th class="num">p99</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function failuresBars(f) {
  const kinds = ['refused', 'timeout', 'reset'];
  const max = Math.max(1, ...kinds.map((k) => f?.[k] ?? 0));
  return `<div class="bars" aria-label="Failures by kind">${kinds
    .map((k) => {
      const n = f?.[k] ?? 0;
      return `<div class="bar fail"><span>${k}</span><span class="track"><span class="fill" style="width:${(100 * n) / max}%; display:block"></span></span><span class="n">${n}</span></div>`;
    })
    .join('')}</div>`;
}

function rttBars(h) {
  if (!h || !h.count) return `<p class="muted">No RTT samples (UDP, or only failed attempts).</p>`;
  const per = h.counts.map((c, i) => c - (i > 0 ? h.counts[i - 1] : 0));
  let first = per.findIndex((c) => c > 0);
  let last = per.length - 1 - [...per].reverse().findIndex((c) => c > 0);
  first = Math.max(0, first - 1);
  last = Math.min(per.length - 1, last + 1);
  const max = Math.max(1, ...per);
  const rows = [];
  for (let i = first; i <= last; i++) {
    const label = i < h.bounds.length ? `≤ ${fmtUs(h.bounds[i])}` : `> ${fmtUs(h.bounds[h.bounds.length - 1])}`;
    rows.push(`<div class="bar"><span>${label}</span><span class="track"><span class="fill" style="width:${(100 * per[i]) / max}%; display:block"></span></span><span class="n">${per[i]}</span></div>`);
  }
  return `<div class="bars" aria-label="RTT distribution">${rows.join('')}</div><p class="muted">mean ${fmtUs(h.sum / h.count)} over ${h.count} connections</p>`;
}

function hostPort(end) {
  if (!end || end.addr === undefined) return '';
  return `${end.addr.includes(':') ? `[${end.addr}]` : end.addr}:${end.port}`;
}

function localText(end) {
  if (!end) return '';
  return `${end.comm ?? '?'}${end.pid ? `[${end.pid}]` : ''} :${end.port}`;
}

function remoteText(end) {
  if (!end) return '';
  const name = end.name ? ` ${end.name}` : end.k8s?.pod ? ` ${end.k8s.namespace}/${end.k8s.pod}` : '';
  const reached = end.reached ? ` ⇒ ${hostPort(end.reached)}` : '';
  return `${hostPort(end)}${reached}${name}`;
}

function connectionsTable(conns) {
  if (!conns.length) return `<p class="muted">No connections in this window.</p>`;
  // one remote for all (an edge's usual case): said once, above the table
  const remotes = new Set(conns.map((r) => remoteText(r.remote)));
  const oneRemote = remotes.size === 1 ? [...remotes][0] : undefined;
  const rows = conns
    .map((r) => {
      const bad = r.outcome && r.outcome !== 'closed';
      const what = r.proto === 'udp' ? `${r.packetsSent}/${r.packetsReceived} pk` : (r.outcome ?? '');
      return `<tr${bad ? ' class="bad"' : ''}>
        <td>${esc(fmtTime(r.ts))}</td>
        <td title="${esc(hostPort(r.local))}">${esc(localText(r.local))}</td>
        ${oneRemote === undefined ? `<td class="wrap">${r.direction === 'inbound' ? '← ' : ''}${esc(remoteText(r.remote))}</td>` : ''}
        <td${bad ? ' class="failed"' : ''}>${esc(what)}</td>
        <td class="num">${fmtBytes(r.bytesSent)}</td>
        <td class="num">${fmtBytes(r.bytesReceived)}</td>
        <td class="num">${r.srttUs != null ? fmtUs(r.srttUs) : '–'}</td>
      </tr>`;
    })
    .join('');
  const dir = conns[0]?.direction === 'inbound' ? 'from' : 'to';
  return `${oneRemote !== undefined ? `<p class="muted">${dir} ${esc(oneRemote)}</p>` : ''}<div class="conns"><table aria-label="Recent connections"><thead><tr><th>time</th><th>process :port</th>${
    oneRemote === undefined ? '<th>remote</th>' : ''
  }<th>outcome</th><th class="num">sent</th><th class="num">recv</th><th class="num">rtt</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function kv(pairs) {
  return `<div class="kv">${pairs.map(([k, v]) => `<div><b>${v}</b><span>${esc(k)}</span></div>`).join('')}</div>`;
}

/** The Changes view's list: a row per line of the map that appeared, disappeared or changed (its ports together), then the new external names. */
function changesSection(d) {
  const inMap = (x) => x.edges.find((id) => graph.edges.some((e) => e.id === id)) ?? `gone:${x.id}`;
  const what = (r) => {
    if (r.kind === 'changed') {
      if (r.entries.length === 1) return changeTexts(r.entries[0].changes).join(' · ');
      const metrics = [...new Set(r.entries.flatMap((x) => x.changes.map((c) => METRIC_WORD[c.metric] ?? c.metric)))];
      return `${r.entries.length} ports changed: ${metrics.join(', ')}`;
    }
    const n = r.numbers;
    const count = r.protos.includes('tcp') ? `${fmtCount(n.connections)} conn` : `${fmtCount(n.packets)} pkts`;
    return `${r.kind === 'gone' ? 'was ' : ''}${count} · ${fmtBytes(n.bytes)}${n.failed ? ` · ${n.failed} failed` : ''}`;
  };
  // one port: the row opens the edge (its numbers before and after); several: the line, its ports listed
  const target = (r) => (r.entries.length === 1 ? `edge:${inMap(r.entries[0])}` : `link:${r.link}`);
  const ports = (r) => (r.entries.length === 1 ? `:${r.ports[0]}` : `${r.entries.length} ports${r.protos.length === 1 ? `/${r.protos[0]}` : ` ${r.protos.join('+')}`}`);
  const rows = changeRows(d).map(
    (r) => `<tr class="clickable${r.kind === 'gone' ? ' gone' : ''}" tabindex="0" data-select="${esc(target(r))}" title="${esc(r.source)} → ${esc(r.target)}${r.entries.length > 1 ? ` (${esc(r.ports.join(', '))})` : ''}">
      <td><span class="badge ${r.kind}">${r.kind}</span></td>
      <td class="wrap">${esc(nodeLabel(r.source))} → ${esc(nodeLabel(r.target))} <span class="muted port">${esc(ports(r))}</span></td>
      <td class="wrap">${esc(what(r))}</td>
    </tr>`,
  );
  const names = d.newNames.map(
    (n) => `<tr><td>${esc(n.name)}</td><td class="wrap">${esc(n.addrs.join(', '))}</td><td class="num">${fmtCount(n.connections)}</td><td class="num${n.failed ? ' failed' : ''}">${n.failed}</td></tr>`,
  );
  return `<h3>Changes against ${esc(fmtTime(d.baseline.from))}–${esc(fmtTime(d.baseline.to))}</h3>
    ${rows.length ? `<table aria-label="Changes"><thead><tr><th></th><th>edge</th><th>what</th></tr></thead><tbody>${rows.join('')}</tbody></table>` : '<p class="muted">No edge appeared, disappeared or changed.</p>'}
    <h3>New external names</h3>
    ${names.length ? `<table aria-label="New external names"><thead><tr><th>name</th><th>addresses</th><th class="num">conns</th><th class="num">failed</th></tr></thead><tbody>${names.join('')}</tbody></table>` : '<p class="muted">None: every external name of the window was called in the baseline.</p>'}`;
}

function overview() {
  const edges = graph.edges.filter((e) => e.diff !== 'gone');
  const failing = edges.filter((e) => e.health === 'failing').length;
  const degraded = edges.filter((e) => e.health === 'degraded').length;
  return `<h2>${graph.diff ? 'What changed' : 'All edges'}</h2>
    <p class="muted">Click an edge or node on the map, or a row, for its connections, failures and RTT.</p>
    ${graph.diff ? changesSection(graph.diff) : ''}
    ${kv([
      ['nodes', graph.nodes.length],
      ['edges', edges.length],
      ['failing / degraded', `<span style="color:var(--failing)">${failing}</span> / <span style="color:var(--degraded)">${degraded}</span>`],
    ])}
    ${edgesTable(edges, 'Edges')}`;
}

// ---------- access token ----------

// An agent with server.tokenFile answers 401 without it: the page asks once and
// keeps it for this tab (never in the URL, which proxies and logs record).
const TOKEN_KEY = 'bpfagent.token';
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
const tokenForm = document.getElementById('token-form');

function askForToken() {
  if (!tokenForm.hidden) return;
  tokenForm.hidden = false;
  tokenForm.elements.namedItem('token').focus();
}

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const input = tokenForm.elements.namedItem('token');
  token = input.value.trim();
  input.value = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenForm.hidden = true;
  void loadStatus().then(refresh);
});

async function fetchJson(url, signal) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { signal, headers });
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (res.status === 401) askForToken();
  if (!res.ok) throw new Error(body?.error ?? `${res.status} ${res.statusText}`);
  return body;
}

const edgeConnections = (id, limit) => fetchJson(`${API}/edges/${encodeURIComponent(id)}/connections?${query({ window: filters.window ?? DEFAULTS.window }, { limit })}`);

function mergeHist(a, b) {
  if (!a) return b && { ...b, counts: [...b.counts] };
  if (!b || a.counts.length !== b.counts.length) return a;
  return { bounds: a.bounds, counts: a.counts.map((c, i) => c + b.counts[i]), sum: a.sum + b.sum, count: a.count + b.count };
}

/** Replace the panel's content only when it changed (keeps scroll positions, hover and focus between polls). */
let detailsHtml = '';
function setDetails(html) {
  if (html === detailsHtml) return;
  const focused = document.activeElement?.closest?.('[data-select]')?.dataset.select;
  detailsHtml = html;
  detailsEl.innerHTML = html;
  if (focused) detailsEl.querySelector(`[data-select="${CSS.escape(focused)}"]`)?.focus();
}

/** A changed edge's numbers in the baseline and in the window, what moved past a threshold marked. */
function beforeAfter(e) {
  const b = e.before;
  const moved = new Set((e.changes ?? []).map((c) => c.metric));
  const rows = [
    ['connections', fmtCount(b.connections), fmtCount(e.connections), ''],
    ['failed', `${failedTotal(b.failed)} (${pct(b.failureRatio)})`, `${failedTotal(e.failed)} (${pct(e.connections ? failedTotal(e.failed) / e.connections : null)})`, 'failureRatio'],
    ['bytes sent + received', fmtBytes(b.bytesSent + b.bytesReceived), fmtBytes(e.bytesSent + e.bytesReceived), 'bytesPerSec'],
    ['RTT p99 (bucket)', b.rttUs.count ? `≤ ${fmtUs(b.rttUs.p99)}` : '–', e.rttUs?.count ? `≤ ${fmtUs(e.rttUs.p99)}` : '–', 'rttP99Us'],
    ['RTT samples', fmtCount(b.rttUs.count), fmtCount(e.rttUs?.count ?? 0), ''],
  ];
  return `<h3>Before → after</h3>
    <table aria-label="Before and after"><thead><tr><th></th><th class="num">baseline</th><th class="num">window</th></tr></thead><tbody>${rows
      .map(([k, x, y, m]) => `<tr><td>${esc(k)}</td><td class="num">${x}</td><td class="num${moved.has(m) ? ' moved' : ''}">${y}</td></tr>`)
      .join('')}</tbody></table>
    <p class="muted">${esc(changeTexts(e.changes).join(' · '))}</p>`;
}

/** The legend of the map's colours: health, or in the Changes view new, gone, changed and unchanged. */
function renderLegend(d) {
  document.getElementById('legend-health').hidden = !!d;
  document.getElementById('legend-diff').hidden = !d;
  if (!d) return;
  const counts = [`${d.appeared.length} new`, `${d.disappeared.length} gone`, `${d.changed.length} changed`];
  if (d.newNames.length) counts.push(`${d.newNames.length} new name${d.newNames.length > 1 ? 's' : ''}`);
  document.getElementById('diff-vs').textContent = `edges against ${fmtTime(d.baseline.from)}–${fmtTime(d.baseline.to)}: ${counts.join(', ')}`;
}

/** Totals of an edge or a link, as key figures. */
function totalsKv(e) {
  const udpOnly = !(e.protos ?? [e.proto]).includes('tcp');
  return kv([
    ['connections', fmtCount(e.connections)],
    ['conn/s', fmtRate(e.connectionsPerSec)],
    ['failed', `<span${failedTotal(e.failed) ? ' style="color:var(--failing)"' : ''}>${failedTotal(e.failed)}</span>`],
    ['bytes sent', fmtBytes(e.bytesSent)],
    ['bytes received', fmtBytes(e.bytesReceived)],
    ['retransmits', fmtCount(e.retransmits)],
    ['RTT p50 (bucket)', e.rttUs?.count ? `≤ ${fmtUs(e.rttUs.p50)}` : '–'],
    ['RTT p99 (bucket)', e.rttUs?.count ? `≤ ${fmtUs(e.rttUs.p99)}` : '–'],
    [udpOnly ? 'packets sent / recv' : 'RTT samples', udpOnly ? `${fmtCount(e.packetsSent)} / ${fmtCount(e.packetsReceived)}` : fmtCount(e.rttUs?.count ?? 0)],
  ]);
}

/** Recent connections, failures by kind and the RTT distribution of some edges (the busiest 8 when more). */
async function connectionsSection(edges) {
  try {
    const busiest = sortEdges(edges).slice(0, 8);
    const all = await Promise.all(busiest.map((e) => edgeConnections(e.id, busiest.length === 1 ? 100 : 50)));
    const conns = all.flatMap((c) => c.connections).sort((a, b) => String(b.ts).localeCompare(String(a.ts))).slice(0, 100);
    const failures = { refused: 0, timeout: 0, reset: 0 };
    let hist;
    for (const c of all) {
      for (const k of Object.keys(failures)) failures[k] += c.failures?.[k] ?? 0;
      hist = mergeHist(hist, c.rttUs);
    }
    return `<h3>Recent connections (${conns.length})</h3>${connectionsTable(conns)}
      <h3>Failures by kind</h3>${failuresBars(failures)}
      <h3>RTT distribution</h3>${rttBars(hist)}`;
  } catch (err) {
    return `<p class="muted">connections: ${esc(err.message)}</p>`;
  }
}

async function renderDetails(fresh = false) {
  const token = ++detailsToken;
  if (!selected) {
    setDetails(overview());
    return;
  }
  const closeBtn = `<button class="close" type="button" data-select="none:" aria-label="Close details">✕ close</button>`;
  let head;
  let edges;
  if (selected.type === 'link') {
    // a line of the map: the sum over its ports and protocols, each listed with its numbers
    const l = graph.links?.find((x) => x.id === selected.id);
    edges = l ? linkEdges(l) : [];
    head = l
      ? `${closeBtn}<h2>${esc(nodeLabel(l.source))} → ${esc(nodeLabel(l.target))} ${healthBadge(l.health)}</h2>
         <p class="muted">${esc(portsText(l))}${edges.length > 1 ? ', summed' : ''}${l.locality ? ` · ${esc(l.locality)}` : ''}${
           l.diff === 'gone' ? ' · in the baseline only' : ''
         }${l.diff && l.diff !== 'same' ? ` · ${healthBadge(l.diff)}` : ''}</p>
         ${totalsKv(l)}
         <h3>Ports and protocols (${edges.length})</h3>${edgesTable(edges, 'Ports and protocols', undefined, true)}`
      : `${closeBtn}<h2>Link ${esc(selected.id)}</h2><p class="muted">Not in the map with the current filters.</p>`;
  } else if (selected.type === 'edge') {
    const e = graph.edges.find((x) => x.id === selected.id);
    edges = [{ id: selected.id, ...(e ?? {}) }];
    head = e
      ? `${closeBtn}<h2>${esc(nodeLabel(e.source))} → ${esc(nodeLabel(e.target))} ${healthBadge(e.health)}</h2>
         <p class="muted">port ${esc(e.port)}/${esc(e.proto)} · ${e.diff === 'gone' ? 'in the baseline only' : e.observedBy === 'both' ? 'seen by both ends' : `observed by ${esc(e.observedBy)}`}${e.locality ? ` · ${esc(e.locality)}` : ''}${e.diff && e.diff !== 'same' ? ` · ${healthBadge(e.diff)}` : ''}</p>
         ${totalsKv(e)}${e.diff === 'changed' ? beforeAfter(e) : ''}`
      : `${closeBtn}<h2>Edge ${esc(selected.id)}</h2><p class="muted">Not in the map with the current filters.</p>`;
  } else {
    // a node: its edges, and the connections of its busiest ones
    const n = graph.nodes.find((x) => x.id === selected.id);
    edges = graph.edges.filter((e) => e.source === selected.id || e.target === selected.id);
    const out = edges.filter((e) => e.source === selected.id);
    const inn = edges.filter((e) => e.target === selected.id);
    const sum = (es, f) => es.reduce((s, e) => s + f(e), 0);
    head = `${closeBtn}<h2>${esc(n?.label ?? selected.id)}</h2>
      <p class="muted">${esc(n?.kind ?? 'node')}${n?.namespace ? ` · namespace ${esc(n.namespace)}` : ''} · ${esc(selected.id)}</p>
      ${n ? '' : '<p class="muted">Not in the map with the current filters.</p>'}
      ${kv([
        ['calls out (conns)', fmtCount(sum(out, (e) => e.connections))],
        ['calls in (conns)', fmtCount(sum(inn, (e) => e.connections))],
        ['failed', `<span${sum(edges, (e) => failedTotal(e.failed)) ? ' style="color:var(--failing)"' : ''}>${sum(edges, (e) => failedTotal(e.failed))}</span>`],
        ['bytes out', fmtBytes(sum(out, (e) => e.bytesSent) + sum(inn, (e) => e.bytesReceived))],
        ['bytes in', fmtBytes(sum(out, (e) => e.bytesReceived) + sum(inn, (e) => e.bytesSent))],
        ['edges', edges.length],
      ])}
      <h3>Edges</h3>${edgesTable(edges, 'Edges of this node', selected.id)}`;
  }
  if (fresh) setDetails(`${head}<p class="muted">loading connections…</p>`);
  // what the baseline alone had has no connections in this window
  const seen = edges.filter((e) => e.diff !== 'gone');
  const body = seen.length ? await connectionsSection(seen) : edges.length ? '<p class="muted">Not seen in this window: the numbers above are the baseline\'s.</p>' : '';
  if (token === detailsToken) setDetails(head + body);
}

// ---------- tables ----------

function renderExternal(x) {
  const tbody = document.querySelector('#external tbody');
  const rows = (x?.destinations ?? []).map((d) => {
    const failed = failedTotal(d.failed) || (typeof d.failed === 'number' ? d.failed : 0);
    const addrs = Array.isArray(d.addrs) ? d.addrs : [];
    return `<tr${failed ? ' class="bad"' : ''}>
      <td>${esc(d.name)}</td>
      <td class="wrap" title="${esc(addrs.join(', '))}">${esc(addrs.slice(0, 3).join(', '))}${addrs.length > 3 ? ` +${addrs.length - 3}` : ''}</td>
      <td class="num">${fmtCount(d.connections)}</td>
      <td class="num${failed ? ' failed' : ''}">${failed}</td>
      <td class="num">${fmtBytes(d.bytesSent)}</td>
      <td class="num">${fmtBytes(d.bytesReceived)}</td>
    </tr>`;
  });
  tbody.innerHTML = rows.length ? rows.join('') : `<tr><td colspan="6" class="muted">No external destinations in this window.</td></tr>`;
}

const LOCALITIES = ['same-host', 'same-zone', 'cross-zone', 'cluster', 'external'];

function renderLocalities(x) {
  const totals = x?.totals ?? {};
  const bytes = (t) => (t?.bytesSent ?? 0) + (t?.bytesReceived ?? 0);
  const all = LOCALITIES.reduce((s, l) => s + bytes(totals[l]), 0);
  const tbody = document.querySelector('#localities tbody');
  tbody.innerHTML = LOCALITIES.map((l) => {
    const t = totals[l] ?? { connections: 0, bytesSent: 0, bytesReceived: 0 };
    const hot = (l === 'cross-zone' || l === 'external') && (t.connections > 0 || bytes(t) > 0);
    const tag = l === 'cross-zone' ? '<span class="tag">cross-zone</span>' : l === 'external' ? '<span class="tag egress">egress</span>' : '';
    return `<tr${hot ? ' class="warn"' : ''}>
      <td>${esc(l)}${hot ? tag : ''}</td>
      <td class="num">${fmtCount(t.connections)}</td>
      <td class="num">${fmtBytes(t.bytesSent)}</td>
      <td class="num">${fmtBytes(t.bytesReceived)}</td>
      <td class="num">${all ? `${((100 * bytes(t)) / all).toFixed(1)} %` : '–'}</td>
    </tr>`;
  }).join('');
}

// ---------- polling ----------

const statusEl = document.getElementById('status');
const errorEl = document.getElementById('error');
const pauseBtn = document.getElementById('pause');
const params = new URLSearchParams(location.search);
const refreshMs = Math.max(500, Number.parseFloat(params.get('refresh') ?? '2') * (String(params.get('refresh') ?? '').endsWith('ms') ? 1 : 1000)) || 2000;
let paused = false;
let inflight;
let timer;
let nodeName = '';
let lastOk = 0;
let retentionMs = Number.POSITIVE_INFINITY;
let lostEvents = 0;
/** why the agent stopped tracing, when it did (its /api/status) */
let tracingError = '';

function durationMs(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(String(s ?? ''));
  return m ? Number(m[1]) * { ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2]] : Number.NaN;
}

const state = {
  cy,
  updates: 0,
  lastUpdate: 0,
  lastError: '',
  get graph() {
    return graph;
  },
  get selected() {
    return selected;
  },
  /** the /api/diff answer drawn, in the Changes view */
  get diff() {
    return graph.diff;
  },
  select,
  refresh: () => refresh(),
  /** the width a line of these sums is drawn with */
  edgeWidth,
};
window.bpfagentMap = state;

async function refresh() {
  clearTimeout(timer);
  inflight?.abort();
  const ac = new AbortController();
  inflight = ac;
  const f = filters;
  try {
    // the Changes view: the diff laid over the graph of the window it compares (gone lines and nodes added)
    let g;
    if (diffOn(f)) {
      const d = await fetchJson(`${API}/diff?${diffQuery(f)}&graph=true`, ac.signal);
      g = withDiff(d.graph, d);
    } else g = await fetchJson(`${API}/graph?${query(f)}`, ac.signal);
    const w = { window: f.window ?? DEFAULTS.window };
    // the tables cover at least an hour (or all the agent keeps, if less)
    let tablesWindow = durationMs(w.window) >= 3.6e6 ? w.window : '1h';
    if (durationMs(tablesWindow) > retentionMs) tablesWindow = `${Math.floor(retentionMs / 1000)}s`;
    const longer = { window: tablesWindow };
    const [ext, loc] = await Promise.all([
      fetchJson(`${API}/external?${query(longer, { limit: 20 })}`, ac.signal).catch((e) => ({ error: e })),
      fetchJson(`${API}/localities?${query(longer)}`, ac.signal).catch((e) => ({ error: e })),
    ]);
    if (ac.signal.aborted) return;
    graph = g;
    applyGraph(g);
    renderLegend(g.diff);
    if (!ext.error) renderExternal(ext);
    if (!loc.error) renderLocalities(loc);
    document.getElementById('ext-window').textContent = `last ${longer.window}`;
    document.getElementById('loc-window').textContent = `last ${longer.window}`;
    errorEl.hidden = true;
    lastOk = Date.now();
    state.updates++;
    state.lastUpdate = lastOk;
    state.lastError = '';
    statusEl.classList.remove('stale');
    statusEl.textContent = `${nodeName ? `${nodeName} · ` : ''}${g.nodes.filter((n) => !n.gone).length} nodes · ${g.edges.filter((e) => e.diff !== 'gone').length} edges · ${new Date(lastOk).toLocaleTimeString([], { hour12: false })}${
      lostEvents ? ` · ${fmtCount(lostEvents)} events lost` : ''
    }${tracingError ? ` · tracing stopped: ${tracingError}` : ''
    }`;
    statusEl.classList.toggle('stale', lostEvents > 0 || !!tracingError);
    await renderDetails(false);
  } catch (err) {
    if (ac.signal.aborted) return;
    const msg = err instanceof Error ? err.message : String(err);
    state.lastError = msg;
    errorEl.textContent = /fetch|network/i.test(msg) ? `The agent does not answer (${msg}); retrying.` : `The agent refused the request: ${msg}`;
    errorEl.hidden = false;
    statusEl.classList.add('stale');
    statusEl.textContent = lastOk ? `stale since ${new Date(lastOk).toLocaleTimeString([], { hour12: false })}` : 'no data';
  } finally {
    if (inflight === ac) {
      inflight = undefined;
      if (!paused) timer = setTimeout(refresh, refreshMs);
    }
  }
}

pauseBtn.addEventListener('click', () => {
  paused = !paused;
  pauseBtn.setAttribute('aria-pressed', String(paused));
  pauseBtn.textContent = paused ? 'Resume' : 'Pause';
  if (paused) clearTimeout(timer);
  else void refresh();
});

async function loadStatus() {
  try {
    const s = await fetchJson(`${API}/status`);
    nodeName = typeof s?.node === 'string' ? s.node : (s?.node?.name ?? '');
    // the agent's one definition of lost (src/agent/loss-counters.ts), summed by the agent
    lostEvents = Number(s?.lost?.total) || 0;
    tracingError = s?.tracing?.ok === false ? String(s.tracing.error ?? 'unknown error') : '';
    if (nodeName) document.title = `bpfagent · ${nodeName} · service map`;
    const retention = Number(s?.store?.retentionMs);
    if (retention > 0) {
      retentionMs = retention;
      // windows longer than the store keeps cannot be asked for
      for (const o of form.elements.namedItem('window').options) {
        o.disabled = durationMs(o.value) > retention;
        if (o.disabled) o.title = 'longer than the agent keeps (store.retention)';
      }
    }
  } catch {
    // the map works without it
  }
}

setDetails(overview());
void loadStatus().then(refresh);
setInterval(() => void loadStatus(), 15_000);
