/**
 * The agent's clock with a clock the test controls: a wall-clock step (set
 * back or forward) is followed from the moment it is reanchored, events
 * before it keep their times, internal time (durations, intervals) never
 * jumps, small differences are not steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MonotonicClock, STEP_MS, type ClockSources } from '../../src/util/clock.js';

/** A wall clock and a monotonic clock the test moves. */
function clocks(startWallMs: number) {
  const t = { wallMs: startWallMs, monoNs: 5_000_000_000n };
  const src: ClockSources = { wallMs: () => t.wallMs, monoNs: () => t.monoNs };
  const advance = (ms: number): void => {
    t.wallMs += ms;
    t.monoNs += BigInt(ms) * 1_000_000n;
  };
  return { t, src, advance };
}

/** kernel ns as the two halves records carry */
const halves = (ns: bigint): [number, number] => [Number(ns >> 32n), Number(ns & 0xffffffffn)];

test('no step: internal time is the wall clock, read through the monotonic one', () => {
  const start = Date.now() - 60_000; // any date: relative to now
  const { t, src, advance } = clocks(start);
  const c = new MonotonicClock(undefined, undefined, src);
  assert.equal(c.nowMs(), start);
  advance(1500);
  assert.equal(c.nowMs(), start + 1500);
  assert.equal(c.toEpochMs(...halves(t.monoNs)), start + 1500);
  assert.equal(c.iso(c.nowMs()), new Date(start + 1500).toISOString());
  // NTP-sized differences are not steps
  t.wallMs += STEP_MS - 1;
  assert.equal(c.watch(), 0);
  assert.equal(c.reanchor(), 0);
});

for (const stepMs of [-3_600_000, 3_600_000, -2000]) {
  test(`a step of ${stepMs / 1000} s: followed from the reanchor on; events before it keep their times; internal time does not jump`, () => {
    const start = Date.now() - 600_000;
    const { t, src, advance } = clocks(start);
    const c = new MonotonicClock(undefined, undefined, src);
    advance(10_000);
    const before = t.monoNs; // an event 10 s in
    advance(500);
    t.wallMs += stepMs; // the clock is set
    advance(300); // an event after the step, before the agent noticed
    const between = t.monoNs;
    advance(100);
    const internalBefore = c.nowMs();
    assert.equal(c.watch(), stepMs);
    assert.equal(c.nowMs(), internalBefore, 'watching does not move internal time');
    assert.equal(c.reanchor(), stepMs);
    assert.equal(c.steps, 1);
    advance(1000);
    const after = t.monoNs;
    // internal time: monotonic, 11.9 s after the start whatever the wall clock did
    assert.equal(c.nowMs(), start + 11_900);
    const e = (ns: bigint): number => c.toEpochMs(...halves(ns));
    assert.equal(e(after) - e(before), 1900, 'durations between events are monotonic');
    // what records carry
    assert.equal(c.iso(e(before)), new Date(start + 10_000).toISOString(), 'before the step: its own time, not shifted');
    assert.equal(c.iso(e(between)), new Date(start + 10_800).toISOString(), 'in the old frame until the step was followed');
    assert.equal(c.iso(e(after)), new Date(start + 11_900 + stepMs).toISOString(), 'after: the stepped wall clock');
    assert.equal(c.wallMs(c.nowMs()), t.wallMs);
    assert.equal(c.watch(), 0, 'followed: no step any more');
  });
}

test('steps one after the other: each event is stamped with the correction of its time', () => {
  const start = Date.now();
  const { t, src, advance } = clocks(start);
  const c = new MonotonicClock(undefined, undefined, src);
  const marks: Array<{ ns: bigint; wall: number }> = [];
  for (let i = 0; i < 12; i++) {
    advance(1000);
    marks.push({ ns: t.monoNs, wall: t.wallMs });
    t.wallMs += i % 2 ? -5000 : 7000;
    advance(1);
    c.watch();
    c.reanchor();
  }
  assert.equal(c.steps, 12);
  // the last 7 (the corrections remembered) exactly; older ones no earlier than the oldest kept correction allows
  for (const m of marks.slice(-7)) assert.equal(c.wallMs(c.toEpochMs(...halves(m.ns))), m.wall);
});
