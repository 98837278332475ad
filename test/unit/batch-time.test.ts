import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { batchNowMs, beginBatchTime, endBatchTime } from '../../src/events/batch-time.js';
import { decodeBatch, type DecodeStats } from '../../src/events/batch.js';
import { EVENT_KIND, TCP_CLOSE_EVENT } from '../../src/events/layout.js';
import { MonotonicClock } from '../../src/util/clock.js';

/** `n` minimal valid tcp_close_event frames (outbound, closed, AF_INET). */
function frames(n: number): Buffer {
  const b = Buffer.alloc(n * (4 + TCP_CLOSE_EVENT.size));
  for (let i = 0; i < n; i++) {
    const off = i * (4 + TCP_CLOSE_EVENT.size);
    b.writeUInt32LE(TCP_CLOSE_EVENT.size, off);
    b[off + 4 + TCP_CLOSE_EVENT.fields.kind.offset] = EVENT_KIND.TCP_CLOSE;
    b[off + 4 + TCP_CLOSE_EVENT.fields.family.offset] = 2;
    b[off + 4 + TCP_CLOSE_EVENT.fields.direction.offset] = 1;
    b[off + 4 + TCP_CLOSE_EVENT.fields.outcome.offset] = 1;
  }
  return b;
}

/** the clock batch time reads: epoch ms on the monotonic clock (a stepped wall clock does not move it) */
const monoNow = (): number => performance.timeOrigin + performance.now();

const busyWaitMs = (ms: number) => {
  const until = monoNow() + ms;
  while (monoNow() < until);
};

describe('batch time', () => {
  test('outside a batch: the clock itself, within a few ms of the wall clock (of the process start)', () => {
    const before = monoNow();
    const t = batchNowMs();
    assert.ok(t >= before && t <= monoNow());
    assert.ok(Math.abs(t - Date.now()) < 1000);
  });

  test('while a batch is decoded: read once, at its start; the clock again after it, also after a throw', () => {
    const seen: number[] = [];
    let firstRecordAt: number | undefined;
    const start = monoNow();
    const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
    decodeBatch(frames(3), new MonotonicClock(), stats, {
      tcp: () => {
        firstRecordAt ??= monoNow();
        seen.push(batchNowMs());
        busyWaitMs(3);
      },
    });
    assert.equal(stats.records, 3);
    assert.equal(new Set(seen).size, 1, 'one time for the whole batch');
    // read between the batch's start and its first record (not a bound in ms: a loaded machine preempts anywhere)
    assert.ok(seen[0]! >= start && seen[0]! <= firstRecordAt!, `${seen[0]} in [${start}, ${firstRecordAt}]`);
    assert.ok(batchNowMs() >= seen[0]! + 9, 'after the batch, the clock');
    assert.throws(() =>
      decodeBatch(frames(1), new MonotonicClock(), stats, {
        tcp: () => {
          throw new Error('sink failed');
        },
      }),
    );
    busyWaitMs(2);
    const before = monoNow();
    assert.ok(batchNowMs() >= before, 'a throwing sink does not leave the batch time set');
  });

  test('nested batches restore the outer one', () => {
    const outer = beginBatchTime();
    const t = batchNowMs();
    busyWaitMs(2);
    const inner = beginBatchTime();
    assert.ok(batchNowMs() > t);
    endBatchTime(inner);
    assert.equal(batchNowMs(), t);
    endBatchTime(outer);
  });
});
