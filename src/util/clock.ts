/**
 * The agent's time. Kernel timestamps are CLOCK_MONOTONIC nanoseconds
 * (bpf_ktime_get_ns), and so is process.hrtime (libuv uses CLOCK_MONOTONIC):
 * one offset taken at start turns them into epoch milliseconds, the agent's
 * *internal* time. Durations, interval lengths, DNS time-outs and name TTLs
 * are measured in it, so they never jump.
 *
 * The wall clock can be stepped (set back or forward, an NTP step, a VM
 * restored or resumed). The step is looked for at each interval's end
 * (watch) and, when the wall clock has moved by a second or more against
 * the monotonic clock, followed from then on (reanchor): the times written
 * on records (`ts`, `intervalStart`) are internal time plus the correction
 * in effect when the event happened, so an event before the step keeps its
 * time, an event after it carries the stepped clock, as every other log of
 * the host does, and no interval or duration is stretched or made negative.
 */

/** Where the time comes from (tests give their own). */
export interface ClockSources {
  wallMs(): number;
  monoNs(): bigint;
}

export const SYSTEM_CLOCK: ClockSources = { wallMs: () => Date.now(), monoNs: () => process.hrtime.bigint() };

/** A wall clock this far from the monotonic one (either way) has been stepped. */
export const STEP_MS = 1000;
/** corrections remembered, for events read a little after a step */
const MAX_ANCHORS = 8;

interface Anchor {
  /** internal time from which it applies */
  fromMs: number;
  /** wall = internal + correction */
  correctionMs: number;
}

export class MonotonicClock {
  private readonly offsetMs: number;
  private anchors: Anchor[] = [{ fromMs: -Infinity, correctionMs: 0 }];
  private pendingMs = 0;
  /** wall-clock steps followed */
  steps = 0;

  constructor(
    nowMs?: number,
    monoNs?: bigint,
    private readonly sources: ClockSources = SYSTEM_CLOCK,
  ) {
    this.offsetMs = (nowMs ?? sources.wallMs()) - Number(monoNs ?? sources.monoNs()) / 1e6;
  }

  private lastMs = NaN;
  private lastIso = '';

  /** Kernel ns, given as two 32-bit halves (exact without BigInt on the hot path), to internal ms. */
  toEpochMs(hi: number, lo: number): number {
    return (hi * 4294967296 + lo) / 1e6 + this.offsetMs;
  }

  /** Internal time now. */
  nowMs(): number {
    return Number(this.sources.monoNs()) / 1e6 + this.offsetMs;
  }

  /** The correction in effect at internal time `ms`. */
  private correctionAt(ms: number): number {
    const a = this.anchors;
    for (let i = a.length - 1; i > 0; i--) if (a[i]!.fromMs <= ms) return a[i]!.correctionMs;
    return a[0]!.correctionMs;
  }

  /** The wall-clock time of internal time `ms`: what records carry. */
  wallMs(ms: number): number {
    return this.anchors.length === 1 ? ms : ms + this.correctionAt(ms);
  }

  /** ISO-8601 text of internal time `ms`, on the wall clock; records close together share it, so the last one is kept. */
  iso(ms: number): string {
    const wall = Math.floor(this.wallMs(ms));
    if (wall !== this.lastMs) {
      this.lastMs = wall;
      this.lastIso = new Date(wall).toISOString();
    }
    return this.lastIso;
  }

  /** How far the wall clock has been stepped since it was last followed (0 when less than STEP_MS). */
  watch(): number {
    const drift = this.sources.wallMs() - this.wallMs(this.nowMs());
    this.pendingMs = Math.abs(drift) >= STEP_MS ? drift : 0;
    return this.pendingMs;
  }

  /** Follow the step watch() found, from internal time now on; returns it (0: none). */
  reanchor(): number {
    const step = this.pendingMs;
    if (!step) return 0;
    this.pendingMs = 0;
    const current = this.anchors[this.anchors.length - 1]!.correctionMs;
    this.anchors.push({ fromMs: this.nowMs(), correctionMs: current + step });
    if (this.anchors.length > MAX_ANCHORS) {
      this.anchors.shift();
      this.anchors[0]!.fromMs = -Infinity;
    }
    this.steps++;
    this.lastMs = NaN;
    return step;
  }

  /** wall - internal now (ms) */
  get correctionMs(): number {
    return this.anchors[this.anchors.length - 1]!.correctionMs;
  }
}
