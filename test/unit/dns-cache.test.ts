import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DnsNameCache } from '../../src/enrich/dns-cache.js';

describe('DnsNameCache', () => {
  test('per namespace, TTL judged at the given time, the latest answer wins', () => {
    const c = new DnsNameCache();
    c.add(1, '10.0.0.5', 'a.test', 30, 1_000);
    c.add(2, '10.0.0.5', 'b.test', 30, 1_000);
    assert.deepEqual([c.lookup(1, '10.0.0.5', 2_000), c.lookup(2, '10.0.0.5', 2_000), c.lookup(3, '10.0.0.5', 2_000)], ['a.test', 'b.test', undefined]);
    assert.equal(c.lookup(1, '10.0.0.5', 31_001), undefined, 'expired');
    assert.equal(c.lookup(1, '10.0.0.5', 31_000), 'a.test', 'last valid ms');
    c.add(1, '10.0.0.5', 'c.test', 5, 40_000);
    assert.equal(c.lookup(1, '10.0.0.5', 41_000), 'c.test');
    assert.equal(c.size, 2);
  });

  test('bounded: the least recently answered goes first, counted; a re-answered entry is young again', () => {
    const c = new DnsNameCache(2);
    c.add(1, '10.0.0.1', 'one', 60, 0);
    c.add(1, '10.0.0.2', 'two', 60, 0);
    c.add(1, '10.0.0.1', 'one', 60, 1); // answered again
    c.add(1, '10.0.0.3', 'three', 60, 2);
    assert.deepEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => c.lookup(1, a, 3)), ['one', undefined, 'three']);
    assert.deepEqual([c.size, c.evictions], [2, 1]);
  });

  test('sweep drops entries expired more than ten minutes ago, and only those', () => {
    const c = new DnsNameCache();
    c.add(1, '10.0.0.1', 'old', 1, 0);
    c.add(1, '10.0.0.2', 'new', 1, 599_000);
    c.sweep(601_001 + 1_000);
    assert.deepEqual([c.size, c.lookup(1, '10.0.0.2', 599_500)], [1, 'new']);
  });

  test('the namespace asked last is remembered, and forgotten when namespaces come and go', () => {
    const c = new DnsNameCache(1);
    assert.equal(c.lookup(1, '10.0.0.1', 0), undefined, 'namespace 1 not known yet');
    c.add(1, '10.0.0.1', 'one', 60, 0);
    assert.equal(c.lookup(1, '10.0.0.1', 1), 'one', 'a namespace that appears is seen at once');
    c.add(2, '10.0.0.2', 'two', 60, 1); // evicts namespace 1's only entry: namespace 1 goes
    assert.equal(c.lookup(1, '10.0.0.1', 2), undefined);
    assert.equal(c.lookup(2, '10.0.0.2', 2), 'two');
    c.add(1, '10.0.0.1', 'again', 60, 3); // namespace 1 again, namespace 2 gone
    assert.equal(c.lookup(1, '10.0.0.1', 4), 'again');
    assert.equal(c.lookup(2, '10.0.0.2', 4), undefined);
    c.sweep(10_000_000);
    assert.equal(c.lookup(1, '10.0.0.1', 4), undefined, 'swept');
    c.add(1, '10.0.0.1', 'third', 60, 10_000_000);
    assert.equal(c.lookup(1, '10.0.0.1', 10_000_001), 'third');
  });
});
