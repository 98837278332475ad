/**
 * The time read once per ring buffer batch (epoch ms on the monotonic clock). On some virtual machines
 * reading the clock is a system call that costs as much as decoding a record,
 * and the caches that want the time for every record (process revalidation
 * once a second, host interfaces re-read once a minute) need no more
 * precision than the few milliseconds a batch takes. Outside a batch, it is
 * the clock itself.
 */
let batchStartMs: number | undefined;

/**
 * Epoch ms that follow the monotonic clock from the process's start: the
 * caches measure ages with it (revalidate after 1 s...), and a stepped wall
 * clock must neither freeze nor flush them.
 */
const monotonicNow = (): number => performance.timeOrigin + performance.now();

/** The time of the batch being handled, else the time now (epoch ms). */
export function batchNowMs(): number {
  return batchStartMs ?? monotonicNow();
}

/** A batch begins: the clock is read once. Returns what to hand to `endBatchTime` (batches may nest). */
export function beginBatchTime(): number | undefined {
  const outer = batchStartMs;
  batchStartMs = monotonicNow();
  return outer;
}

export function endBatchTime(outer: number | undefined): void {
  batchStartMs = outer;
}
