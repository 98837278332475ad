/** StageGuard: exceptions caught and counted by stage, logged at most once per stage and period. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { StageGuard } from '../../src/agent/stage-guard.js';

test('caught, counted by stage, logged at most once per stage every 10 s with what was not logged', () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), cb()) }));
  let now = 0;
  const g = new StageGuard(log, 10_000, () => now);
  const boom = (): number => {
    throw new Error('boom');
  };
  for (let i = 0; i < 100; i++) {
    assert.equal(g.run('metrics', boom), undefined);
    now += 50; // 100 exceptions over 5 s
  }
  assert.equal(g.run('store', () => 42), 42);
  g.caught('sink', 'not an Error', 'sink kafka');
  assert.equal(g.errors.metrics, 100);
  assert.equal(g.errors.sink, 1);
  assert.equal(g.errors.store, 0);
  assert.equal(g.total, 101);
  assert.equal(lines.length, 2, 'one line for metrics, one for sink');
  assert.equal(lines[0]!.msg, 'metrics: exception caught, tracing goes on: boom');
  assert.equal(lines[1]!.msg, 'sink: exception caught, tracing goes on (sink kafka): not an Error');
  now = 10_001;
  g.run('metrics', boom);
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.msg, 'metrics: exception caught, tracing goes on: boom (99 more since the last one logged)');
  assert.deepEqual([lines[2]!.errors, lines[2]!.notLogged, lines[2]!.level], [101, 99, 50]);
});
