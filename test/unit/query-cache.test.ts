/** QueryCache: answers computed once per key and store version within the TTL, one at a time, each after a turn of the loop, bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BusyError, QueryCache } from '../../src/server/query-cache.js';

function cache(o: { ttlMs?: number; maxBytes?: number; maxWaiting?: number } = {}) {
  const clock = { now: 0, version: 1 };
  const c = new QueryCache({ ttlMs: o.ttlMs ?? 1000, version: () => clock.version, now: () => clock.now, ...(o.maxBytes ? { maxBytes: o.maxBytes } : {}), ...(o.maxWaiting ? { maxWaiting: o.maxWaiting } : {}) });
  return { c, clock };
}

test('one computation per key while the store is unchanged and the TTL runs; again after either', async () => {
  const { c, clock } = cache();
  let runs = 0;
  const compute = () => ({ runs: ++runs });
  assert.equal(await c.get('a', compute), '{"runs":1}');
  for (let i = 0; i < 10; i++) assert.equal(await c.get('a', compute), '{"runs":1}');
  assert.equal(await c.get('b', compute), '{"runs":2}', 'another key is its own answer');
  clock.version++;
  assert.equal(await c.get('a', compute), '{"runs":3}', 'the store changed');
  clock.now += 999;
  assert.equal(await c.get('a', compute), '{"runs":3}');
  clock.now += 1;
  assert.equal(await c.get('a', compute), '{"runs":4}', 'the TTL ran out');
  assert.deepEqual({ ...c.stats, computeMs: 0 }, { computed: 4, cached: 11, shared: 0, busy: 0, computeMs: 0 });
});

test('requests for a key under computation share it; computations run one at a time, each after the loop had a turn', async () => {
  const { c } = cache();
  const order: string[] = [];
  // a "ring buffer batch" queued before the requests: it must run before the first computation
  setImmediate(() => order.push('batch 1'));
  const answers = Promise.all([
    c.get('x', () => (order.push('x'), 'X')),
    c.get('x', () => (order.push('x again'), 'X2')),
    c.get('y', () => {
      order.push('y');
      return 'Y';
    }),
  ]);
  setImmediate(() => setImmediate(() => order.push('batch 2')));
  assert.deepEqual(await answers, ['"X"', '"X"', '"Y"']);
  assert.equal(order[0], 'batch 1');
  assert.ok(order.indexOf('batch 2') < order.indexOf('y'), `a batch ran between the two computations: ${order.join(', ')}`);
  assert.ok(!order.includes('x again'));
  assert.equal(c.stats.shared, 1);
});

test('past maxWaiting computations queued: BusyError at once; a computation that throws does not stop the next', async () => {
  const { c } = cache({ maxWaiting: 2 });
  const a = c.get('a', () => 1);
  const b = c.get('b', () => {
    throw new Error('boom');
  });
  await assert.rejects(c.get('c', () => 3), BusyError);
  assert.equal(await a, '1');
  await assert.rejects(b, /boom/);
  assert.equal(await c.get('c', () => 3), '3');
  assert.equal(c.stats.busy, 1);
});

test('answers kept within maxBytes, least recently used out first', async () => {
  const { c } = cache({ maxBytes: 25 });
  await c.get('a', () => 'a'.repeat(8)); // 10 bytes of JSON
  await c.get('b', () => 'b'.repeat(8));
  await c.get('a', () => 'changed'); // a used: b is now the oldest
  await c.get('c', () => 'c'.repeat(8));
  assert.equal(c.size, 2);
  let recomputed = false;
  await c.get('b', () => ((recomputed = true), 'b'));
  assert.ok(recomputed, 'b was evicted');
  assert.equal(await c.get('a', () => 'no'), '"aaaaaaaa"', 'a was kept');
  const before = c.size;
  await c.get('big', () => 'x'.repeat(100));
  assert.equal(c.size, before, 'an answer larger than the bound is not kept');
});
