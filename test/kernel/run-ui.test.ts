/**
 * The web UI of `bpfagent run`, in a real browser (Debian's Chromium, driven
 * by playwright-core) while real traffic runs between two test hosts: the map
 * shows the processes and the edge between them, the edge's details list its
 * connections, filters hide it, new traffic appears without a reload, a
 * pair talking on 30 ports is one line whose details list the ports, and
 * the Changes toggle shows what changed against a baseline.
 * Saves test-artifacts/ui-map.png and test-artifacts/ui-diff.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { agentBrowser, CHROMIUM_SKIP } from '../helpers/chromium.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer, REPO_ROOT, RUN_TAG, runNames } from '../helpers/processes.js';
import { RunAgent } from '../helpers/run-agent.js';
import { untilOk } from '../helpers/until.js';

const SKIP = KERNEL_SKIP || CHROMIUM_SKIP;
/** this run's process names (uicli-<tag>, ...): other runs of this test may be on the machine at the same time */
const P = runNames('ui', ['srv', 'cli', 'usrv', 'ucli', 'fan', 'fcli', 'new', 'diff'] as const);
const SCREENSHOT = path.join(REPO_ROOT, 'test-artifacts/ui-map.png');
const DIFF_SCREENSHOT = path.join(REPO_ROOT, 'test-artifacts/ui-diff.png');

interface ApiEdge {
  id: string;
  source: string;
  target: string;
  port: number;
  proto: string;
  health: string;
  connections: number;
  bytesSent: number;
  bytesReceived: number;
  rttUs: { p50: number | null; p99: number | null; count: number };
}

interface ApiLink {
  id: string;
  source: string;
  target: string;
  edges: string[];
  connections: number;
  bytesSent: number;
  bytesReceived: number;
  connectionsPerSec: number;
  rttUs: { p50: number | null; p99: number | null; count: number };
  health: string;
}

/** What the page's map holds: cytoscape's state, through the hook the page exposes for tests. */
interface MapState {
  nodes: string[];
  /** model positions of the nodes, by id */
  positions: Record<string, { x: number; y: number }>;
  /** the map's lines: one per caller and callee (a link of /api/graph), over the edges (ports) in apiIds */
  edges: Array<{ id: string; apiIds: string[]; source: string; target: string; color: string; label: string; width: number; diff: string }>;
  /** in the Changes view, the nodes new and gone */
  fresh: string[];
  gone: string[];
  updates: number;
  selected: { type: string; id: string } | null;
}

const mapState = (page: Page): Promise<MapState> =>
  page.evaluate(() => {
    const m = (window as unknown as { bpfagentMap: any }).bpfagentMap;
    return {
      nodes: m.cy.nodes(':childless').map((n: any) => n.id()),
      positions: Object.fromEntries(m.cy.nodes(':childless').map((n: any) => [n.id(), { ...n.position() }])),
      edges: m.cy.edges().map((e: any) => ({
        id: e.data('linkId'),
        apiIds: e.data('apiIds'),
        source: e.source().id(),
        target: e.target().id(),
        color: e.style('line-color'),
        label: e.data('label'),
        width: Number.parseFloat(e.style('width')),
        diff: e.data('diff') ?? '',
      })),
      fresh: m.cy.nodes('[?fresh]').map((n: any) => n.id()),
      gone: m.cy.nodes('[?gone]').map((n: any) => n.id()),
      updates: m.updates,
      selected: m.selected,
    };
  });

describe('bpfagent run: the web UI in Chromium', { skip: SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let profile: string;
  // below 32768: the UDP server's port must not look ephemeral, or the map may take the
  // client for the server (a UDP edge's client is the end on an ephemeral, else higher, port)
  const port = 23500 + (process.pid % 100) * 8;
  const sizes = [111, 222, 333];
  const clients: Array<{ pid: number; localPort: number }> = [];
  const pageErrors: string[] = [];
  let edge: ApiEdge;
  /** before any traffic of the test: the start of the Changes test's baseline */
  let t0: number;

  const apiEdges = async (q = ''): Promise<ApiEdge[]> => {
    const r = await agent.get(`/api/graph?window=15m${q}`);
    assert.equal(r.status, 200, r.body);
    return (JSON.parse(r.body) as { edges: ApiEdge[] }).edges;
  };

  before(async () => {
    net = new TestNetwork(21);
    agent = new RunAgent('listen: 127.0.0.1:0\ninterval: 1s\nlogLevel: info\nshutdownTimeout: 5s\n');
    await agent.ready;
    t0 = Date.now();
    base = await agent.baseUrl();
    profile = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-chromium-'));
    ({ context, page } = await agentBrowser(profile, base));
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('the map shows both processes and the edge between them, from the real agent', async () => {
    const server = new Peer(P.srv, ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7', '--count', String(sizes.length)], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of sizes) {
      const c = new Peer(P.cli, ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
      const connected = await c.waitFor('connected');
      await c.waitFor('done');
      clients.push({ pid: connected.pid, localPort: Number(connected.localPort) });
    }
    // and one refused: a failing edge
    const refused = new Peer(P.cli, ['client', '--host', net.b.ipv4, '--port', String(port + 1)], { netns: net.a.ns });
    await refused.waitFor('error');
    // and UDP datagrams, for the protocol filter
    const usrv = new Peer(P.usrv, ['server', '--host', net.b.ipv4, '--port', String(port + 3), '--expect', '3', '--reply-sizes', '5'], { netns: net.b.ns, script: 'udp-peer' });
    await usrv.waitFor('listening');
    const ucli = new Peer(P.ucli, ['client', '--to', `${net.b.ipv4}:${port + 3}`, '--sizes', '100,200,300', '--expect-replies', '1'], { netns: net.a.ns, script: 'udp-peer' });
    await ucli.waitFor('done');

    // the API's edge from uicli on that port, merged with uisrv's side (both ends are on this host)
    edge = await untilOk('the edge in /api/graph', async () =>
      (await apiEdges()).find((e) => e.source === `process:${P.cli}` && e.target === `process:${P.srv}` && e.port === port && e.proto === 'tcp' && e.connections === sizes.length),
    );

    await page.goto(`${base}/?window=15m&refresh=1s`);
    const state = await untilOk('the edge on the map', async () => {
      const s = await mapState(page);
      return s.edges.some((e) => e.apiIds.includes(edge.id)) && s;
    });
    assert.ok(state.nodes.includes(`process:${P.cli}`), state.nodes.join(' '));
    assert.ok(state.nodes.includes(edge.target), state.nodes.join(' '));
    const drawn = state.edges.find((e) => e.apiIds.includes(edge.id))!;
    assert.deepEqual(drawn.apiIds, [edge.id], 'uicli calls uisrv on one port: its line is that edge');
    assert.equal(drawn.source, `process:${P.cli}`);
    assert.equal(drawn.target, edge.target);
    assert.equal(drawn.color, 'rgb(46,157,87)', 'a healthy edge is green');
    assert.match(drawn.label, new RegExp(`^:${port}/tcp · `));
    assert.match(drawn.label, / · 687 B(\n|$)/, 'the label carries the bytes both ways: 111 + 222 + 333 sent, 3 x 7 received');

    // the failed attempt: its own edge, red
    const failing = await untilOk('the refused edge on the map', async () => (await mapState(page)).edges.find((e) => e.source === `process:${P.cli}` && e.label.startsWith(`:${port + 1}/tcp`)));
    assert.equal(failing.color, 'rgb(217,59,59)', 'a failing edge is red');
    assert.match(failing.label, /1 failed/);

    // the same as visible text: the list of edges beside the map
    const row = page.getByRole('table', { name: 'Edges' }).getByRole('row').filter({ hasText: `:${port}/tcp` });
    await row.first().waitFor();
    const text = await row.first().innerText();
    assert.match(text, new RegExp(`${P.cli} →`));
    assert.match(text, new RegExp(`→ ${P.srv}`));
  });

  test('a click on the edge opens its details: the connections made, failures by kind, RTT', async () => {
    const line = (await mapState(page)).edges.find((e) => e.apiIds.includes(edge.id))!;
    const at = await page.evaluate((id) => {
      const m = (window as unknown as { bpfagentMap: any }).bpfagentMap;
      const e = m.cy.getElementById(`l:${id}`);
      const p = e.renderedMidpoint();
      const box = m.cy.container().getBoundingClientRect();
      return { x: box.left + p.x, y: box.top + p.y };
    }, line.id);
    await page.mouse.click(at.x, at.y);
    await untilOk('the line selected', async () => {
      const sel = (await mapState(page)).selected;
      return sel?.type === 'link' && sel.id === line.id;
    });
    const conns = page.getByRole('table', { name: 'Recent connections' });
    await conns.waitFor();
    const rows = await untilOk('three connections listed', async () => {
      const r = await conns.locator('tbody tr').allInnerTexts();
      return r.length === sizes.length && r;
    });
    // each client process with its pid and port, and the bytes it sent
    for (const [i, c] of clients.entries()) {
      const r = rows.find((t) => t.includes(`${P.cli}[${c.pid}] :${c.localPort}`));
      assert.ok(r, `client ${c.pid}:${c.localPort} in ${JSON.stringify(rows)}`);
      assert.match(r, new RegExp(`\\b${sizes[i]} B\\b`));
      assert.match(r, /closed/);
    }
    const details = await page.locator('#details').innerText();
    assert.match(details, new RegExp(`${P.cli} → `));
    assert.match(details, new RegExp(`to ${net.b.ipv4.replace(/\./g, '\\.')}:${port}`), 'the one remote of the connections');
    assert.match(details, /FAILURES BY KIND|Failures by kind/i);
    assert.match(details, /RTT DISTRIBUTION|RTT distribution/i);
    assert.match(details, /mean .* over 3 connections/);
    assert.equal(await page.getByLabel('RTT distribution').locator('.bar').count() > 0, true);

    // a click on a node: its edges and their connections
    const node = await page.evaluate((id) => {
      const m = (window as unknown as { bpfagentMap: any }).bpfagentMap;
      const p = m.cy.getElementById(id).renderedPosition();
      const box = m.cy.container().getBoundingClientRect();
      return { x: box.left + p.x, y: box.top + p.y };
    }, `process:${P.cli}`);
    await page.mouse.click(node.x, node.y);
    await untilOk('the node selected', async () => (await mapState(page)).selected?.id === `process:${P.cli}`);
    await page.getByRole('heading', { name: P.cli, exact: true }).waitFor();
    const nodeEdges = page.getByRole('table', { name: 'Edges of this node' });
    await nodeEdges.getByRole('row').filter({ hasText: `:${port}/tcp` }).waitFor();
    await nodeEdges.getByRole('row').filter({ hasText: `:${port + 1}/tcp` }).waitFor();
    await untilOk('the node\'s connections, the refused one too', async () => {
      const r = await page.getByRole('table', { name: 'Recent connections' }).locator('tbody tr').allInnerTexts();
      return r.length >= sizes.length + 1 && r.some((t) => /refused/.test(t)) && r;
    });
    assert.match(await page.getByLabel('Failures by kind').innerText(), /refused\s+1/);
  });

  test('filters hide the edge (and are in the URL); cleared, it is back', async () => {
    // back to the list of all edges beside the map
    await page.getByRole('button', { name: 'Close details' }).click();
    const listed = page.getByRole('table', { name: 'Edges' }).getByRole('row').filter({ hasText: `:${port}/tcp` });
    await listed.first().waitFor();
    const hidden = async () => !(await mapState(page)).edges.some((e) => e.apiIds.includes(edge.id)) && (await listed.count()) === 0;
    const shown = async () => (await mapState(page)).edges.some((e) => e.apiIds.includes(edge.id)) && (await listed.count()) > 0;

    await page.getByLabel('Protocol').selectOption('udp');
    await untilOk('the edge hidden by protocol udp', hidden);
    assert.match(page.url(), /[?&]proto=udp(&|$)/);
    // the UDP flow stays, dashed
    const udp = await untilOk('the UDP edge', async () => (await mapState(page)).edges.find((e) => e.source === `process:${P.ucli}` && e.label.startsWith(`:${port + 3}/udp`)));
    assert.match(udp.label, /4 pkts · 605 B/);
    assert.ok((await mapState(page)).edges.every((e) => e.label.includes('/udp ')), 'only UDP edges');
    await page.getByLabel('Protocol').selectOption('');
    await untilOk('the edge back', shown);

    await page.getByLabel('Workload or process').fill('no-such-process');
    await untilOk('the edge hidden by a workload that does not match', hidden);
    assert.match(page.url(), /[?&]workload=no-such-process(&|$)/);
    if ((await mapState(page)).nodes.length === 0) await page.getByText('No traffic in this window with these filters.').waitFor();
    await page.getByLabel('Workload or process').fill('');
    await untilOk('the edge back', shown);

    await page.getByLabel('Failing only').check();
    await untilOk('a healthy edge hidden by failing only', hidden);
    assert.ok((await mapState(page)).edges.some((e) => e.label.startsWith(`:${port + 1}/tcp`)), 'the refused edge stays');
    await page.getByLabel('Failing only').uncheck();
    await untilOk('the edge back', shown);
    assert.doesNotMatch(page.url(), /failing|proto|workload/);
  });

  test('a pair talking on 30 ports is one line, its width and label from the sums; its details list each port', async () => {
    // below the ephemeral range, clear of the ports above
    const fanPort = 30000 + (process.pid % 50) * 40;
    const ports = 30;
    const step = 10; // port i gets (i + 1) * 10 bytes, and answers 7
    const server = new Peer(P.fan, ['server', '--host', net.b.ipv4, '--port', String(fanPort), '--ports', String(ports), '--send', '7'], { netns: net.b.ns, script: 'port-fan' });
    await server.waitFor('listening');
    const client = new Peer(P.fcli, ['client', '--host', net.b.ipv4, '--port', String(fanPort), '--ports', String(ports), '--send-step', String(step)], { netns: net.a.ns, script: 'port-fan' });
    const done = await client.waitFor('done', 30_000);
    const sent = (step * ports * (ports + 1)) / 2;
    assert.deepEqual([done.sent, done.received], [sent, 7 * ports]);

    // the API: 30 edges (one per port, the table's rows), one link summing them
    const link = await untilOk('the link in /api/graph', async () => {
      const r = await agent.get(`/api/graph?window=15m&workload=${P.fcli}`);
      const g = JSON.parse(r.body) as { edges: ApiEdge[]; links: ApiLink[] };
      const l = g.links.find((x) => x.source === `process:${P.fcli}` && x.target === `process:${P.fan}`);
      return l && l.connections === ports && g.edges.filter((e) => e.target === `process:${P.fan}`).length === ports && { l, g };
    });
    const fanEdges = link.g.edges.filter((e) => e.target === `process:${P.fan}`);
    assert.deepEqual(fanEdges.map((e) => e.port).sort((a, b) => a - b), Array.from({ length: ports }, (_, i) => fanPort + i));
    for (const e of fanEdges) assert.deepEqual([e.connections, e.bytesSent, e.bytesReceived], [1, (e.port - fanPort + 1) * step, 7], `port ${e.port}`);
    assert.deepEqual([link.l.connections, link.l.bytesSent, link.l.bytesReceived, link.l.edges.length, link.l.health], [ports, sent, 7 * ports, ports, 'ok']);

    // the map: one line between the pair (none the other way), drawn from the sums
    const line = await untilOk('one line for the pair', async () => {
      const s = await mapState(page);
      const between = s.edges.filter((e) => [e.source, e.target].sort().join(' ') === `process:${P.fan} process:${P.fcli}`);
      return between.length === 1 && between[0]!.apiIds.length === ports && between[0];
    });
    assert.deepEqual([line.source, line.target, line.id], [`process:${P.fcli}`, `process:${P.fan}`, link.l.id]);
    assert.deepEqual([...line.apiIds].sort(), fanEdges.map((e) => e.id).sort());
    const [first, second] = line.label.split('\n');
    assert.match(first!, /^30 ports\/tcp · [^·]+ conn · 4\.9 kB$/, 'ports, conn/s and the bytes both ways: 4650 sent + 210 received');
    // the p99 of the 30 ports' RTTs together (the summed histogram): with one
    // connection per port, the bucket of the slowest port's RTT
    const slowest = Math.max(...fanEdges.map((e) => e.rttUs.p99 ?? 0));
    assert.ok(link.l.rttUs.count === ports && link.l.rttUs.p99 === slowest, `${JSON.stringify(link.l.rttUs)}, slowest port's p99 ${slowest}`);
    // the bucket bound as the page writes durations: µs below a millisecond, else ms
    const p99 = link.l.rttUs.p99!;
    assert.equal(second, `p99 ≤ ${p99 < 1000 ? `${p99} µs` : `${(p99 / 1000).toFixed(p99 < 10_000 ? 1 : 0)} ms`}`);
    assert.equal(line.color, 'rgb(46,157,87)', 'all healthy: green');
    const widthOf = (e: { bytesSent: number; bytesReceived: number; connectionsPerSec: number }) =>
      page.evaluate((x) => (window as unknown as { bpfagentMap: any }).bpfagentMap.edgeWidth(x), e);
    const current = (JSON.parse((await agent.get(`/api/graph?window=15m&workload=${P.fcli}`)).body) as { links: ApiLink[] }).links.find((x) => x.id === link.l.id)!;
    assert.ok(Math.abs(line.width - (await widthOf({ bytesSent: sent, bytesReceived: 7 * ports, connectionsPerSec: current.connectionsPerSec }))) < 0.01, `width ${line.width}`);
    const onePort = await widthOf({ bytesSent: step * ports, bytesReceived: 7, connectionsPerSec: current.connectionsPerSec / ports });
    assert.ok(line.width > onePort, `the sum (${line.width}) is drawn wider than its busiest port alone (${onePort})`);

    // its details: the sums, then every port with its own numbers
    await page.evaluate((id) => (window as unknown as { bpfagentMap: any }).bpfagentMap.select({ type: 'link', id }), line.id);
    const table = page.getByRole('table', { name: 'Ports and protocols' });
    const rows = await untilOk('30 ports listed', async () => {
      const r = await table.locator('tbody tr').allInnerTexts();
      return r.length === ports && r;
    });
    for (const i of [0, 9, 29]) {
      const r = rows.find((t) => t.includes(`:${fanPort + i}/tcp`));
      assert.ok(r, `port ${fanPort + i} in ${JSON.stringify(rows)}`);
      assert.match(r, new RegExp(`\\b${(i + 1) * step + 7} B\\b`), `port ${fanPort + i}: its bytes`);
    }
    assert.match(await page.locator('#details').innerText(), /30 ports\/tcp, summed/);
    await page.getByRole('button', { name: 'Close details' }).click();
  });

  test('new traffic to a new destination appears without a reload; screenshot', async () => {
    await page.evaluate(() => ((window as unknown as { noReload: number }).noReload = 42));
    const before = await mapState(page);
    assert.ok(!before.nodes.includes(`process:${P.new}`));

    const server = new Peer(P.new, ['server', '--host', net.b.ipv4, '--port', String(port + 2), '--send', '5', '--count', '2'], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of [4000, 50_000]) {
      const c = new Peer(P.cli, ['client', '--host', net.b.ipv4, '--port', String(port + 2), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    const fresh = await untilOk('the new edge on the map', async () => {
      const s = await mapState(page);
      return s.edges.find((e) => e.source === `process:${P.cli}` && e.label.startsWith(`:${port + 2}/tcp`));
    });
    assert.ok(fresh.target === `process:${P.new}` || fresh.target === net.b.ipv4, fresh.target);
    assert.equal(await page.evaluate(() => (window as unknown as { noReload?: number }).noReload), 42, 'the page was not reloaded');
    const after = await mapState(page);
    assert.ok(after.updates > before.updates);
    // the nodes already drawn kept their places; no two nodes on top of each other
    for (const id of before.nodes) if (after.positions[id]) assert.deepEqual(after.positions[id], before.positions[id], id);
    const ps = Object.entries(after.positions);
    for (const [i, [a, p]] of ps.entries())
      for (const [b, q] of ps.slice(i + 1)) assert.ok(Math.hypot(p.x - q.x, p.y - q.y) > 40, `${a} and ${b} overlap`);
    // the list beside the map names the new edge
    const newRow = page.getByRole('table', { name: 'Edges' }).getByRole('row').filter({ hasText: `:${port + 2}/tcp` });
    await newRow.first().waitFor();
    assert.match(await newRow.first().innerText(), fresh.target === `process:${P.new}` ? new RegExp(`${P.cli} → ${P.new}`) : new RegExp(`${P.cli} → `));

    // a row of the list opens its edge's details too
    await page.getByRole('table', { name: 'Edges' }).getByRole('row').filter({ hasText: `:${port}/tcp` }).first().click();
    await untilOk('the first edge selected from the list', async () => (await mapState(page)).selected?.id === edge.id);
    await page.getByRole('table', { name: 'Recent connections' }).locator('tbody tr').nth(sizes.length - 1).waitFor();

    // the tables below the map
    const localities = await page.getByRole('table', { name: 'Traffic by locality' }).innerText();
    for (const l of ['same-host', 'same-zone', 'cross-zone', 'cluster', 'external']) assert.match(localities, new RegExp(l));
    await page.getByRole('table', { name: 'External destinations' }).waitFor();

    // the map fitted to the window, for the picture
    await page.getByRole('button', { name: 'Re-layout' }).click();
    await page.getByRole('button', { name: 'Fit', exact: true }).click();
    await page.waitForTimeout(400);
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    assert.ok(existsSync(SCREENSHOT));
    assert.deepEqual(pageErrors, [], 'no script errors in the page');
  });

  test('Changes: new, gone and changed lines against a baseline, with their legend, behind a toggle kept in the URL; screenshot', async () => {
    // all the traffic so far is the baseline: the tests above saw it in the store, so every interval holding it has ended
    const t1 = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const iso = (ms: number): string => new Date(ms).toISOString();
    // the window: uicli -> uisrv again, with far more bytes; and a new destination
    const srv = new Peer(P.srv, ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7'], { netns: net.b.ns });
    await srv.waitFor('listening');
    await new Peer(P.cli, ['client', '--host', net.b.ipv4, '--port', String(port), '--send', '300000'], { netns: net.a.ns }).waitFor('done');
    const fresh = new Peer(P.diff, ['server', '--host', net.b.ipv4, '--port', String(port + 4), '--send', '7'], { netns: net.b.ns });
    await fresh.waitFor('listening');
    await new Peer(P.cli, ['client', '--host', net.b.ipv4, '--port', String(port + 4), '--send', '10'], { netns: net.a.ns }).waitFor('done');
    const baseline = `baselineFrom=${iso(t0)}&baselineTo=${iso(t1)}`;
    type Diff = { appeared: Array<{ target: string }>; changed: Array<{ target: string; port: number }> };
    await untilOk('the changes in /api/diff', async () => {
      const d = JSON.parse((await agent.get(`/api/diff?window=15m&${baseline}`)).body) as Diff;
      return d.appeared.some((e) => e.target === `process:${P.diff}`) && d.changed.some((e) => e.target === `process:${P.srv}` && e.port === port);
    });

    // the page with the baseline in its URL; the toggle turns the Changes view on, and the URL keeps it
    await page.goto(`${base}/?window=15m&refresh=1s&${baseline}`);
    await untilOk('the map', async () => (await mapState(page)).edges.length > 0);
    assert.equal(await page.locator('#legend-diff').isHidden(), true);
    await page.getByRole('checkbox', { name: 'Changes', exact: true }).check();
    await untilOk('diff=true in the URL', async () => /[?&]diff=true(&|$)/.test(page.url()));
    assert.ok(page.url().includes(`baselineFrom=${encodeURIComponent(iso(t0))}`), page.url());
    assert.equal(await page.getByLabel('Failing only').isDisabled(), true, 'the traffic filters do not apply to the Changes view');

    const line = (s: MapState, source: string, target: string) => s.edges.find((e) => e.source === source && e.target === target);
    const s = await untilOk('new, gone and changed lines', async () => {
      const m = await mapState(page);
      return line(m, `process:${P.cli}`, `process:${P.diff}`)?.diff === 'new' && line(m, `process:${P.cli}`, `process:${P.srv}`)?.diff === 'changed' && m;
    });
    const changed = line(s, `process:${P.cli}`, `process:${P.srv}`)!;
    assert.equal(changed.color, 'rgb(147,51,234)', 'changed: purple');
    assert.match(changed.label, new RegExp(`^:${port}/tcp · [^\\n]+ · 300 kB\\n[^\\n]+\\n▲ bytes/s \\d+ B → \\d+(\\.\\d)? kB$`), changed.label);
    const added = line(s, `process:${P.cli}`, `process:${P.diff}`)!;
    assert.equal(added.color, 'rgb(37,99,235)', 'new: blue');
    assert.match(added.label, new RegExp(`^new · :${port + 4}/tcp · `));
    // the baseline's lines the window has not: drawn from the baseline's numbers, grey
    const fan = line(s, `process:${P.fcli}`, `process:${P.fan}`)!;
    assert.deepEqual([fan.diff, fan.color], ['gone', 'rgb(152,162,174)']);
    assert.match(fan.label, /^gone · 30 ports\/tcp · [^·]+ conn · 4\.9 kB$/);
    assert.equal(line(s, `process:${P.cli}`, net.b.ipv4)?.diff, 'gone', 'the refused calls');
    assert.equal(line(s, `process:${P.cli}`, `process:${P.new}`)?.diff, 'gone');
    assert.ok(s.fresh.includes(`process:${P.diff}`) && !s.fresh.includes(`process:${P.cli}`), JSON.stringify(s.fresh));
    assert.ok(s.gone.includes(`process:${P.fan}`) && s.gone.includes(`process:${P.fcli}`) && !s.gone.includes(`process:${P.srv}`), JSON.stringify(s.gone));

    // the legend says what the colours mean, and against what
    assert.equal(await page.locator('#legend-health').isHidden(), true);
    const legend = await page.getByLabel('Changes legend').innerText();
    for (const w of ['new', 'gone', 'changed', 'unchanged']) assert.match(legend, new RegExp(`\\b${w}\\b`));
    assert.match(legend, /edges against \d\d:\d\d:\d\d–\d\d:\d\d:\d\d: \d+ new, \d+ gone, \d+ changed/);

    // the list beside the map; a changed row opens its numbers before and after
    const rows = page.getByRole('table', { name: 'Changes' }).getByRole('row');
    const changedRow = rows.filter({ hasText: `:${port}/tcp` }).filter({ hasText: P.srv });
    await changedRow.first().waitFor();
    assert.match(await changedRow.first().innerText(), new RegExp(`changed[\\s\\S]*${P.cli} → ${P.srv}[\\s\\S]*bytes/s`));
    assert.match(await rows.filter({ hasText: P.diff }).first().innerText(), new RegExp(`new[\\s\\S]*${P.cli} → ${P.diff}[\\s\\S]*1 conn · 17 B`));
    // the 30 ports that went are one row, their numbers summed (4650 B sent + 210 received); it opens the line with each port
    const fanRows = rows.filter({ hasText: P.fan });
    assert.equal(await fanRows.count(), 1);
    assert.match(await fanRows.innerText(), new RegExp(`^gone\\s+${P.fcli} → ${P.fan} 30 ports/tcp\\s+was 30 conn · 4\\.9 kB$`));
    await fanRows.click();
    const fanPorts = page.getByRole('table', { name: 'Ports and protocols' }).getByRole('row');
    await untilOk('the gone line\'s 30 ports', async () => (await fanPorts.count()) === 31);
    assert.match(await page.locator('#details').innerText(), new RegExp(`${P.fcli} → ${P.fan}[\\s\\S]*30 ports/tcp, summed · in the baseline only · gone`));
    assert.equal(await fanPorts.filter({ hasText: 'gone' }).count(), 30, 'each port marked gone');
    await page.getByRole('button', { name: 'Close details' }).click();
    await changedRow.first().click();
    const ba = page.getByRole('table', { name: 'Before and after' });
    await ba.waitFor();
    const bytesRow = await ba.getByRole('row').filter({ hasText: 'bytes sent + received' }).innerText();
    assert.match(bytesRow, /687 B\s+300 kB/, 'the baseline: 111 + 222 + 333 + 3 x 7; the window: 300000 + 7');

    await page.getByRole('button', { name: 'Close details' }).click();
    await page.getByRole('button', { name: 'Re-layout' }).click();
    // the picture: this test's processes (others on the shared machine may be on the map too)
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.evaluate((tag) => {
      const m = (window as unknown as { bpfagentMap: any }).bpfagentMap;
      m.cy.fit(m.cy.nodes(`[id ^= "process:ui"][id $= "-${tag}"]`), 40);
    }, RUN_TAG);
    await page.waitForTimeout(400);
    await page.screenshot({ path: DIFF_SCREENSHOT });
    await page.getByRole('button', { name: 'Resume' }).click();

    // off again: the window's map in its health colours, the toggle out of the URL
    await page.getByRole('checkbox', { name: 'Changes', exact: true }).uncheck();
    await untilOk('diff out of the URL', async () => !/[?&]diff=/.test(page.url()));
    const plain = await untilOk('health colours again', async () => {
      const m = await mapState(page);
      return m.edges.every((e) => e.diff === '') && line(m, `process:${P.fcli}`, `process:${P.fan}`) && m;
    });
    // its health's colour (green, or amber should the 300 kB call have needed a retransmit), not the Changes view's
    assert.ok(['rgb(46,157,87)', 'rgb(217,148,0)'].includes(line(plain, `process:${P.cli}`, `process:${P.srv}`)!.color), JSON.stringify(line(plain, `process:${P.cli}`, `process:${P.srv}`)));
    assert.equal(await page.locator('#legend-health').isVisible(), true);
    assert.deepEqual(pageErrors, [], 'no script errors in the page');
  });
});
