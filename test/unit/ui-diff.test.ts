/**
 * The web UI's Changes overlay (src/ui/static/diff.js, a browser module run
 * here as it is) over a real /api/diff answer of the store: which lines and
 * ports are new, gone, changed or the same, what a line of ports that came
 * and went says, the nodes only the baseline had, and the rows of the list.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { linkId } from '../../src/server/api.js';
import { computeDiff } from '../../src/server/diff.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { REPO_ROOT } from '../helpers/processes.js';
import { T0, interval, tcp } from '../helpers/store-fixtures.js';

interface Marked {
  id: string;
  source: string;
  target: string;
  port?: number;
  diff: string;
  edges?: string[];
  portsNew?: number;
  portsGone?: number;
  changedPorts?: number;
  connections: number;
  gone?: boolean;
  fresh?: boolean;
}
interface Overlay {
  nodes: Marked[];
  edges: Marked[];
  links: Marked[];
}
interface Row {
  kind: string;
  link: string;
  ports: string[];
  numbers: { connections: number; bytes: number };
}
const ui = (await import(pathToFileURL(path.join(REPO_ROOT, 'src/ui/static/diff.js')).href)) as {
  withDiff: (g: unknown, d: unknown) => Overlay;
  changeRows: (d: unknown) => Row[];
};

// cli calls srv on 80 and 81, old on 90 and same on 70; then srv on 80 and 82 (81 no more), new on 91, same on 70
const SRV = '10.0.0.2';
const OLD = '10.0.0.4';
const NEW = '10.0.0.3';
const SAME = '10.0.0.5';
function store(): MemoryFlowStore {
  const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
  interval(s, 10_000, [
    tcp({ to: SRV, port: 80, bytesSent: 100, at: 5000 }),
    tcp({ to: SRV, port: 81, bytesSent: 200, at: 5000 }),
    tcp({ to: OLD, port: 90, bytesSent: 300, bytesReceived: 30, at: 5000 }),
    tcp({ to: SAME, port: 70, bytesSent: 50, at: 5000 }),
  ]);
  interval(s, 70_000, [
    tcp({ to: SRV, port: 80, bytesSent: 100, at: 65_000 }),
    tcp({ to: SRV, port: 82, bytesSent: 400, at: 65_000 }),
    tcp({ to: NEW, port: 91, bytesSent: 500, at: 65_000 }),
    tcp({ to: SAME, port: 70, bytesSent: 50, at: 65_000 }),
  ]);
  return s;
}

describe('the Changes overlay over /api/diff', () => {
  test('lines new, gone, changed (ports that came and went) and the same; the nodes only the baseline had', async () => {
    const d = await computeDiff(store(), { fromMs: T0 + 60_000, toMs: T0 + 120_000 }, { fromMs: T0, toMs: T0 + 60_000 }, {}, true);
    const g = ui.withDiff(d.graph, d);
    const link = (to: string) => g.links.find((l) => l.id === linkId('process:cli', to))!;

    // srv: port 80 as before, 82 new, 81 gone: the line changed, its gone port drawn from the baseline
    const srv = link(SRV);
    assert.deepEqual([srv.diff, srv.portsNew, srv.portsGone, srv.changedPorts], ['changed', 1, 1, 0]);
    const ports = srv.edges!.map((id) => g.edges.find((e) => e.id === id)!).map((e) => [e.port, e.diff, e.connections]);
    assert.deepEqual(ports.sort(), [[80, 'same', 1], [81, 'gone', 1], [82, 'new', 1]]);
    // a line all of whose ports are new is new; one unchanged, the same
    assert.equal(link(NEW).diff, 'new');
    assert.equal(link(SAME).diff, 'same');
    // old: in the baseline only, a line of its own with the baseline's sums
    const old = link(OLD);
    assert.deepEqual([old.diff, old.connections, old.edges!.length], ['gone', 1, 1]);
    assert.deepEqual(g.nodes.filter((n) => n.gone).map((n) => n.id), [OLD]);
    // nodes all of whose lines are new
    assert.deepEqual(g.nodes.filter((n) => n.fresh).map((n) => n.id), [NEW]);
    // the window's graph as it was, besides the marks
    assert.deepEqual(g.links.filter((l) => l.diff !== 'gone').map((l) => l.id).sort(), d.graph!.links.map((l) => l.id).sort());
  });

  test('the rows of the list: one per line and kind, changed first, then new, then gone', async () => {
    const s = store();
    // srv's port 80 grows past the bytes threshold; a second new port of new.
    interval(s, 80_000, [tcp({ to: SRV, port: 80, bytesSent: 50_000, at: 75_000 }), tcp({ to: NEW, port: 92, bytesSent: 10, at: 75_000 })]);
    const d = await computeDiff(s, { fromMs: T0 + 60_000, toMs: T0 + 120_000 }, { fromMs: T0, toMs: T0 + 60_000 });
    const rows = ui.changeRows(d).map((r) => [r.kind, r.link, r.ports, r.numbers.connections, r.numbers.bytes]);
    assert.deepEqual(rows, [
      ['changed', linkId('process:cli', SRV), ['80/tcp'], 2, 50_100],
      ['new', linkId('process:cli', NEW), ['91/tcp', '92/tcp'], 2, 510],
      ['new', linkId('process:cli', SRV), ['82/tcp'], 1, 400],
      ['gone', linkId('process:cli', OLD), ['90/tcp'], 1, 330],
      ['gone', linkId('process:cli', SRV), ['81/tcp'], 1, 200],
    ]);
  });
});
