/**
 * Property-based tests of every HTTP API parameter (fast-check): random
 * query strings, each parameter valid or not, plus unknown, repeated and
 * hostile names, sent as real requests to the routes (fastify inject) over a
 * store with traffic. A query whose parameters are all valid is answered 200;
 * one with a bad parameter is a 400 whose one-line error names it, with the
 * value and the form expected; nothing is ever a 500.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import fc from 'fast-check';
import { registerApi } from '../../src/server/api.js';
import { registerDiffApi } from '../../src/server/diff.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { T0, interval, serverSide, tcp } from '../helpers/store-fixtures.js';

const RUNS = 300;
const RETENTION_MS = 3_600_000;
const NOW = T0 + 30 * 60_000;

const store = new MemoryFlowStore({ retentionMs: RETENTION_MS });
for (let i = 1; i <= 20; i++) {
  const c = tcp({ port: 440 + (i % 3), bytesSent: 100 * i, bytesReceived: 7, srttUs: 50 * i, at: i * 60_000 - 500 });
  interval(store, i * 60_000, [c, serverSide(c, 'web'), tcp({ comm: 'web', to: '93.184.216.34', name: 'example.com', locality: 'external', at: i * 60_000 - 400 })]);
}
const app = Fastify({ logger: false });
registerApi(app, { store, status: () => ({ node: 'n1' }), now: () => NOW });
registerDiffApi(app, { store, now: () => NOW });
after(() => app.close());

/** A parameter's value: generated valid, or generated invalid (and then the 400 must name it). */
type Value = { text: string; valid: boolean };
const valid = (a: fc.Arbitrary<string>): fc.Arbitrary<Value> => a.map((text) => ({ text, valid: true }));
const invalid = (a: fc.Arbitrary<string>): fc.Arbitrary<Value> => a.map((text) => ({ text, valid: false }));

const junk = fc.oneof(
  fc.string({ maxLength: 12 }).filter((s) => s !== ''),
  fc.constantFrom('-1', '1e3', '0x10', 'NaN', 'Infinity', ' 5', '5 ', '１', 'true ', '%00', '\u0000', '💥', '1h30m', '10', '.5s'),
);

// each kind of parameter: what it accepts, and what it must refuse
const durations = {
  ok: fc.oneof(
    fc.integer({ min: 1, max: 3600 }).map((n) => `${n}s`),
    fc.integer({ min: 1, max: 60 }).map((n) => `${n}m`),
    fc.integer({ min: 1000, max: RETENTION_MS }).map((n) => `${n}ms`),
    fc.constant('1h'),
  ),
  bad: fc.oneof(
    fc.integer({ min: 0, max: 999 }).map((n) => `${n}ms`),
    fc.integer({ min: 3601, max: 10 ** 9 }).map((n) => `${n}s`),
    fc.integer({ min: 2, max: 1000 }).map((n) => `${n}h`),
    fc.integer({ min: 1, max: 10 }).map((n) => `${n}d`),
    junk.filter((s) => !/^\d+(\.\d+)?(ms|s|m|h)$/.test(s.trim())),
  ),
};
const whole = (min: number, max: number) => ({
  ok: fc.integer({ min, max: Math.min(max, Number.MAX_SAFE_INTEGER) }).map(String),
  bad: fc.oneof(fc.integer({ min: -1000, max: min - 1 }).map(String), fc.integer({ min: max + 1, max: max + 1000 }).map(String), junk.filter((s) => !/^\d{1,16}$/.test(s))),
});
const oneOf = (values: string[]) => ({ ok: fc.constantFrom(...values), bad: junk.filter((s) => !values.includes(s)) });
const texts = { ok: fc.string({ minLength: 1, maxLength: 253 }), bad: fc.string({ minLength: 254, maxLength: 400 }) };
const isoTimes = {
  // within the retention, at least a second before now (diff's rules are checked apart: see below)
  ok: fc.integer({ min: NOW - RETENTION_MS + 60_000, max: NOW - 120_000 }).map((t) => new Date(t).toISOString()),
  bad: junk.filter((s) => Number.isNaN(Date.parse(s)) || !/^\d{4}-/.test(s)),
};

type Kind = { ok: fc.Arbitrary<string>; bad: fc.Arbitrary<string> };
const IDENTITY: Record<string, Kind> = {
  namespace: texts,
  workload: texts,
  locality: oneOf(['same-host', 'same-zone', 'cross-zone', 'cluster', 'external']),
  proto: oneOf(['tcp', 'udp']),
};
const ROUTES: Array<{ path: string; params: Record<string, Kind> }> = [
  { path: '/api/graph', params: { window: durations, ...IDENTITY, failing: oneOf(['true', 'false']), minConnections: whole(0, Number.MAX_SAFE_INTEGER), minBytes: whole(0, Number.MAX_SAFE_INTEGER) } },
  { path: '/api/external', params: { window: durations, limit: whole(1, 1000) } },
  { path: '/api/localities', params: { window: durations } },
  { path: '/api/status', params: {} },
  { path: '/api/edges/{id}/connections', params: { window: durations, limit: whole(1, 1000) } },
  { path: '/api/diff', params: { window: durations, baseline: durations, baselineFrom: isoTimes, baselineTo: isoTimes, ...IDENTITY, graph: oneOf(['true', 'false']) } },
];

/** Names no route has: random ones, and those an object has by inheritance. */
const unknownName = fc.oneof(
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/),
  fc.constantFrom('constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'window ', 'Window', 'limit[]'),
);

const query = (pairs: Array<[string, string]>): string => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');

async function get(url: string): Promise<{ status: number; body: { error?: string } & Record<string, unknown> }> {
  const r = await app.inject({ method: 'GET', url });
  return { status: r.statusCode, body: JSON.parse(r.body) as { error?: string } };
}

/** A 400's error: one line, naming the parameter first, the value it got and the form it expected. */
function assertNames(error: string | undefined, names: string[], url: string): void {
  assert.ok(error && !error.includes('\n'), `one line: ${error} (${url})`);
  assert.ok(
    names.some((n) => error.startsWith(`${n}: `)),
    `names one of ${JSON.stringify(names)}: ${error} (${url})`,
  );
}

describe('every API parameter, random queries', () => {
  const edgeId = (async () => {
    const g = await get('/api/graph?window=1h');
    return (g.body as unknown as { edges: Array<{ id: string }> }).edges[0]!.id;
  })();

  for (const route of ROUTES) {
    test(`${route.path}: all valid is 200, a bad one is a 400 naming it, never a 500`, async () => {
      const id = await edgeId;
      const names = Object.keys(route.params);
      const param = names.length
        ? fc.constantFrom(...names).chain((n) => fc.tuple(fc.constant(n), fc.oneof({ weight: 3, arbitrary: valid(route.params[n]!.ok) }, { weight: 1, arbitrary: invalid(route.params[n]!.bad) })))
        : fc.constant(undefined);
      await fc.assert(
        fc.asyncProperty(fc.uniqueArray(param, { selector: (p) => p?.[0], maxLength: names.length }), async (ps) => {
          const pairs = ps.filter((p): p is [string, Value] => p !== undefined);
          const url = `${route.path.replace('{id}', id)}?${query(pairs.map(([k, v]) => [k, v.text]))}`;
          const r = await get(url);
          const bad = pairs.filter(([, v]) => !v.valid).map(([k]) => k);
          if (bad.length) {
            assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body).slice(0, 300)}`);
            assertNames(r.body.error, bad, url);
            return;
          }
          if (route.path === '/api/diff' && r.status === 400) {
            // each valid alone; together the windows can still be refused (baseline + window past the retention,
            // from after to, one of the pair without the other): the error names one of them
            assertNames(r.body.error, ['window', 'baseline', 'baselineFrom', 'baselineTo'], url);
            return;
          }
          // an edge with no connection in a (short) window is not found there
          if (route.path.includes('{id}') && r.status === 404) return assert.match(r.body.error ?? '', /^id: no edge .* in the last /);
          assert.equal(r.status, 200, `${url}: ${JSON.stringify(r.body).slice(0, 300)}`);
        }),
        { numRuns: RUNS },
      );
    });
  }

  test('an unknown parameter, on any route: 400 naming it (inherited names too)', async () => {
    const id = await edgeId;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), unknownName, fc.string({ maxLength: 8 }), async (route, name, value) => {
        fc.pre(!Object.hasOwn(route.params, name));
        const url = `${route.path.replace('{id}', id)}?${query([[name, value]])}`;
        const r = await get(url);
        assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body)}`);
        assert.ok(r.body.error?.includes('unknown parameter'), `${url}: ${r.body.error}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('a parameter given twice: 400 naming it', async () => {
    const id = await edgeId;
    const withParams = ROUTES.filter((r) => Object.keys(r.params).length);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...withParams).chain((r) => fc.tuple(fc.constant(r), fc.constantFrom(...Object.keys(r.params)))), async ([route, name]) => {
        const v = fc.sample(route.params[name]!.ok, 1)[0]!;
        const url = `${route.path.replace('{id}', id)}?${query([[name, v], [name, v]])}`;
        const r = await get(url);
        assert.equal(r.status, 400, url);
        assert.equal(r.body.error, `${name}: given 2 times, expected it once`);
      }),
      { numRuns: 100 },
    );
  });

  test('an edge id that is not one: 400 or 404 naming id, never a 500', async () => {
    await fc.assert(
      // (not '.' or '..': a URL's dot segments are resolved before it is a path, as a browser or curl does)
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 100 }).filter((s) => s !== '.' && s !== '..'), async (s) => {
        const r = await get(`/api/edges/${encodeURIComponent(s)}/connections`);
        if (r.status === 404 && s.length) return assert.match(r.body.error ?? '', /^id: no edge /);
        assert.ok([400, 404].includes(r.status), `${s}: ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status === 400) assertNames(r.body.error, ['id'], s);
      }),
      { numRuns: RUNS },
    );
  });
});
