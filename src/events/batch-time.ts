/**
 * Wall-clock time read once per ring buffer batch. On some virtual machines
 * reading the clock is a system call that costs as much as decoding a record,
 * and the caches that want the time for every record (process revalidation
 * once a second, host interfaces re-read once a minute) need no more
 * precision than the few milliseconds a batch takes. Outside a batch, it is
 * the clock itself.
 */
let batchStartMs: number | undefined;

/** The time of the batch being handled, else the time now (epoch ms). */
export function batchNowMs(): number {
  return batchStartMs ?? Date.now();
}

/** A batch begins: the clock is read once. Returns what to hand to `endBatchTime` (batches may nest). */
export function beginBatchTime(): number | undefined {
  const outer = batchStartMs;
  batchStartMs = Date.now();
  return outer;
}

export function endBatchTime(outer: number | undefined): void {
  batchStartMs = outer;
}
