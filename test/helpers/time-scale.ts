/**
 * How much longer tests wait for things to happen: TEST_TIME_SCALE (default
 * 1). The kernel matrix (scripts/vm/test-kernels.sh) sets it in guests that
 * qemu emulates (TCG, tens of times slower than the host). It stretches how
 * long a test waits for an event, a record or a process, never what the test
 * checks of them.
 */
const raw = Number(process.env.TEST_TIME_SCALE ?? '1');
export const TIME_SCALE = Number.isFinite(raw) && raw >= 1 ? raw : 1;

/** A wait of `ms` on this machine. */
export const scaled = (ms: number): number => ms * TIME_SCALE;
