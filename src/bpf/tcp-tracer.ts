/**
 * Loads bpf/tcp.bpf.c and keeps it attached: picks the attach mode the kernel
 * supports (tp_btf, then raw_tp, then classic tracepoints), sizes the maps
 * and loads (load), then attaches and streams ring buffer batches to a
 * callback (attach). Its iterators find what was open before the start
 * (seed) and report each interval what open connections moved (readOpen).
 */
import type { BpfNative, LinkHandle, ObjectHandle, RingHandle } from './native.js';
import { describeNativeError } from './native.js';
import type { KernelFeatures } from './features.js';
import { EnvironmentError } from '../util/errors.js';
import { COUNTER_NAMES, type CounterName } from '../events/layout.js';
import { readPerCpuCounters } from './percpu-counters.js';

export const ATTACH_MODES = ['tp_btf', 'raw_tp', 'tracepoint'] as const;
export type AttachMode = (typeof ATTACH_MODES)[number];

/**
 * Programs of each attach mode (names of the C functions in tcp.bpf.c). The
 * last, on net:net_dev_start_xmit, finds where DNAT sent a connection's SYN.
 */
const MODE_PROGRAMS: Record<AttachMode, readonly string[]> = {
  tp_btf: ['btf_state', 'btf_send_reset', 'btf_receive_reset', 'btf_xmit'],
  raw_tp: ['raw_state', 'raw_send_reset', 'raw_receive_reset', 'raw_xmit'],
  tracepoint: ['tp_state', 'tp_send_reset', 'tp_receive_reset', 'tp_xmit'],
};

/**
 * The iterator (iter/task_file, Linux 5.8+), loaded in every mode and run by
 * the agent: sock_files visits every process's open files, so every socket
 * held, in every network namespace.
 */
const ITERATORS = ['sock_files'] as const;

/** iter_conf slot 0 (tcp.bpf.c): what sock_files does in a run. */
const ITER_REPORT = 0;
const ITER_SEED_LISTENERS = 1;
const ITER_SEED_CONNECTIONS = 2;

export interface TcpTracerOptions {
  objectPath: string;
  btfPath: string | null;
  mode: AttachMode | 'auto';
  /** capacity of the live-connection map (and of the owners found at start) */
  maxConnections: number;
  /** capacity of each DNAT map: tcp_dnat (connections' real destinations) and fwd_syns (forwarded SYNs) */
  maxNatEntries: number;
  /** the ring buffer its `events` map becomes (see BpfNative.ringCreate), and its size */
  ring: { fd: number; bytes: number };
  /** told why a mode was passed over, when auto-selecting */
  onFallback?: (mode: AttachMode, reason: string) => void;
}

function featureFor(mode: AttachMode, f: KernelFeatures) {
  return mode === 'tp_btf' ? f.tpBtf : mode === 'raw_tp' ? f.rawTp : f.tracepoint;
}

const CAPABILITIES = 'CAP_BPF and CAP_PERFMON';

export class TcpTracer {
  private ring: RingHandle | undefined;
  private links: LinkHandle[] = [];
  private ended: Promise<void>;
  private resolveEnded: () => void = () => {};
  /** ring syncs asked for, and those not yet answered (see sync) */
  private syncs = 0;
  private syncWaiters: Array<{ n: number; resolve: () => void }> = [];
  /** the reader's end marker came: no sync marker follows */
  private readerEnded = false;
  private closed = false;
  /** drain() asked the reader to end: its end is not a failure */
  private stopping = false;
  private droppedAtDrain = 0;

  private constructor(
    private readonly native: BpfNative,
    /** the loaded object; its `events` ring buffer can be shared (see NetTracer) */
    readonly obj: ObjectHandle,
    readonly mode: AttachMode,
    readonly programs: readonly string[],
  ) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /**
   * The program array its net_dev_start_xmit program tail-calls (tp_btf
   * only: a tail call reaches programs of the same kind and attach point).
   */
  get xmitChain(): { obj: ObjectHandle; map: string } | undefined {
    return this.mode === 'tp_btf' ? { obj: this.obj, map: 'xmit_next' } : undefined;
  }

  /** Open and load in the first mode that works (not attached yet); rejects with EnvironmentError when none does. */
  static async load(native: BpfNative, features: KernelFeatures, opts: TcpTracerOptions): Promise<TcpTracer> {
    const candidates: AttachMode[] = opts.mode === 'auto' ? [...ATTACH_MODES] : [opts.mode];
    const failures: string[] = [];
    for (const mode of candidates) {
      const feature = featureFor(mode, features);
      if (!feature.available) {
        failures.push(`${mode}: ${feature.reason}`);
        opts.onFallback?.(mode, feature.reason ?? 'unavailable');
        continue;
      }
      const programs = MODE_PROGRAMS[mode];
      let obj: ObjectHandle;
      try {
        obj = native.open(opts.objectPath, opts.btfPath);
      } catch (e) {
        throw new EnvironmentError(`${(e as Error).message}; rebuild with 'npm install'`);
      }
      try {
        const iterators: readonly string[] = ITERATORS;
        for (const p of native.programs(obj)) native.setAutoload(obj, p.name, programs.includes(p.name) || iterators.includes(p.name));
        native.setMaxEntries(obj, 'socks', opts.maxConnections);
        native.setMaxEntries(obj, 'tcp_dnat', opts.maxNatEntries);
        native.setMaxEntries(obj, 'fwd_syns', opts.maxNatEntries);
        native.reuseMapFd(obj, 'events', opts.ring.fd);
        const wakeup = Buffer.alloc(8);
        // wake the reader early when a quarter of the ring is queued
        wakeup.writeBigUInt64LE(BigInt(Math.floor(opts.ring.bytes / 4)));
        native.setGlobal(obj, 'wakeup_bytes', wakeup);
        await native.loadAsync(obj);
      } catch (e) {
        native.close(obj);
        const reason = describeNativeError(e, CAPABILITIES);
        failures.push(`${mode}: ${reason}`);
        opts.onFallback?.(mode, reason);
        continue;
      }
      return new TcpTracer(native, obj, mode, programs);
    }
    const btf = opts.btfPath ? ` with kernel BTF ${opts.btfPath}` : '';
    const reasons = new Set(failures.map((f) => f.slice(f.indexOf(': ') + 2)));
    throw new EnvironmentError(
      `no way to attach the TCP probes on this kernel${btf}: ${reasons.size === 1 ? [...reasons][0] : failures.join('; ')}`,
    );
  }

  /**
   * Attach the probes and read the ring buffer: `onBatch` gets its records
   * in batches, at the latest every `pollMs`. `onReaderFailed` is told when
   * the reader stops on its own (polling the ring failed: nothing more will
   * come). On failure the object is closed (EnvironmentError).
   */
  attach(onBatch: (batch: Buffer, count: number) => void, pollMs: number, onReaderFailed?: (errno: number) => void): void {
    try {
      for (const p of this.programs) this.links.push(this.native.attach(this.obj, p));
      this.ring = this.native.ringOpen(
        this.obj,
        'events',
        (batch, count) => {
          if (batch) return onBatch(batch, count);
          if (count > 0) return this.synced(count);
          if (count < 0 && !this.stopping) onReaderFailed?.(-count);
          this.readerEnded = true;
          this.synced(Infinity);
          this.resolveEnded();
        },
        pollMs,
      );
    } catch (e) {
      this.close();
      throw new EnvironmentError(describeNativeError(e, CAPABILITIES));
    }
  }

  /**
   * Settles once every record the kernel put into the ring buffer before
   * this call has been handed to `onBatch` (within one poll interval): for
   * what is read outside the ring (UDP flow tables), whose records must not
   * overtake those of the ring (the cgroups they were made in). Settles at
   * once when the reader has ended (stopped, failed) or was never started.
   */
  sync(): Promise<void> {
    if (!this.ring || this.readerEnded || this.closed) return Promise.resolve();
    const n = ++this.syncs;
    this.native.ringSync(this.ring);
    return new Promise((resolve) => this.syncWaiters.push({ n, resolve }));
  }

  private synced(upTo: number): void {
    const done = this.syncWaiters.filter((w) => w.n <= upTo);
    this.syncWaiters = this.syncWaiters.filter((w) => w.n > upTo);
    for (const w of done) w.resolve();
  }

  /** Kernel-side counters summed over CPUs. */
  counters(): Record<CounterName, number> {
    return readPerCpuCounters(this.native, this.obj, 'counters', COUNTER_NAMES);
  }

  /** Forwarded SYNs the LRU map evicted: kept, less taken, less held now. */
  fwdSynsEvicted(c: Record<CounterName, number>): number {
    const held = this.native.mapDump(this.obj, 'fwd_syns', false).count;
    return Math.max(0, c.fwdSynInserts - c.fwdSynRemoved - held);
  }

  /** Records the native reader dropped for lack of memory. */
  readerDropped(): number {
    return this.ring && !this.closed ? this.native.ringDropped(this.ring) : this.droppedAtDrain;
  }

  /**
   * Once attached: find the listening sockets and connections that were open
   * before (the owners of their sockets from the processes' file tables), so
   * that they are tracked from now on, their bytes until now not counted.
   */
  async seed(): Promise<void> {
    try {
      // every listener first: a connection is taken for accepted when a socket listens on its address and port
      this.iterMode(ITER_SEED_LISTENERS);
      await this.native.iterReadAsync(this.obj, 'sock_files');
      this.iterMode(ITER_SEED_CONNECTIONS);
      await this.native.iterReadAsync(this.obj, 'sock_files');
    } finally {
      this.iterMode(ITER_REPORT);
    }
  }

  private iterMode(mode: number): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(mode);
    this.native.mapUpdate(this.obj, 'iter_conf', Buffer.alloc(4), v);
  }

  /**
   * What every open connection held by a process moved since its last
   * record: struct tcp_close_event records (kind TCP_OPEN), back to back.
   * Accepted connections still named after their listener take the process
   * holding them.
   */
  readOpen(): Promise<Buffer> {
    return this.native.iterReadAsync(this.obj, 'sock_files');
  }

  /** Detach the TCP probes; the ring buffer stays readable. */
  detach(): void {
    for (const l of this.links.splice(0)) this.native.detach(l);
  }

  /**
   * Deliver everything queued in the ring buffer, then stop reading. Call it
   * after every producer is detached: then nothing is produced after the last
   * read, and records delivered + losses counted account for every event.
   */
  async drain(timeoutMs = 3000): Promise<void> {
    if (!this.ring) return;
    this.stopping = true;
    this.native.ringStop(this.ring);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ended, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.droppedAtDrain = this.native.ringDropped(this.ring);
    this.ring = undefined;
  }

  /** Detach every probe and free the object. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close(this.obj);
  }
}
