/**
 * Loads bpf/cgroup.bpf.c: a record of every cgroup v2 directory made, into
 * the ring buffer the TCP tracer reads, so that the path of a cgroup id is
 * known before any record of a process in it is read, however soon the
 * cgroup is removed. It loads while the other objects do; attach() before
 * anything else, so that a walk of the cgroup tree made after it misses no
 * cgroup (each either existed for the walk or is reported).
 */
import { existsSync } from 'node:fs';
import type { BpfNative, LinkHandle, ObjectHandle } from './native.js';
import { describeNativeError, openObject } from './native.js';
import type { KernelFeatures } from './features.js';
import type { AttachMode } from './tcp-tracer.js';
import { CGROUP_COUNTER_NAMES, type CgroupCounterName } from '../events/layout.js';
import { readPerCpuCounters } from './percpu-counters.js';
import { EnvironmentError } from '../util/errors.js';

/** The object's two flavours (program names in cgroup.bpf.c), in the order tried. */
const RAW_TP = { program: 'raw_cg_mkdir', feature: 'rawTp' } as const;
const TRACEPOINT = { program: 'tp_cg_mkdir', feature: 'tracepoint' } as const;
type Flavour = typeof RAW_TP | typeof TRACEPOINT;

export interface CgroupTracerOptions {
  objectPath: string;
  btfPath: string | null;
  /** the ring buffer the TCP tracer reads (see BpfNative.ringCreate): `cgroup_events` becomes it */
  ring: { fd: number };
  /** mounted tracefs, for the classic tracepoint's format file */
  tracefs: string | undefined;
  /** the TCP probes' attach mode asked for: `tracepoint` tries the classic tracepoint first, anything else raw_tp */
  mode: AttachMode | 'auto';
}

const CAPABILITIES = 'CAP_BPF and CAP_PERFMON';

export class CgroupTracer {
  private link: LinkHandle | undefined;
  private closed = false;

  private constructor(
    private readonly native: BpfNative,
    private readonly obj: ObjectHandle,
    readonly program: string,
  ) {}

  /** Open and load the first flavour the kernel has (not attached); rejects with EnvironmentError when none loads. */
  static async load(native: BpfNative, features: KernelFeatures, opts: CgroupTracerOptions): Promise<CgroupTracer> {
    const usable = (f: Flavour): string | undefined => {
      if (f.feature === 'rawTp') return features.rawTp.available ? undefined : features.rawTp.reason;
      if (!opts.tracefs) return 'tracefs not mounted';
      return existsSync(`${opts.tracefs}/events/cgroup/cgroup_mkdir/format`) ? undefined : 'tracepoint cgroup/cgroup_mkdir missing';
    };
    const failures: string[] = [];
    for (const f of opts.mode === 'tracepoint' ? [TRACEPOINT, RAW_TP] : [RAW_TP, TRACEPOINT]) {
      const unusable = usable(f);
      if (unusable) {
        failures.push(`${f.program}: ${unusable}`);
        continue;
      }
      const obj = openObject(native, opts.objectPath, opts.btfPath);
      try {
        for (const p of native.programs(obj)) native.setAutoload(obj, p.name, p.name === f.program);
        native.reuseMapFd(obj, 'cgroup_events', opts.ring.fd);
        await native.loadAsync(obj);
        return new CgroupTracer(native, obj, f.program);
      } catch (e) {
        native.close(obj);
        failures.push(`${f.program}: ${describeNativeError(e, CAPABILITIES)}`);
      }
    }
    throw new EnvironmentError(`cgroup_mkdir probe: ${failures.join('; ')}`);
  }

  /** Attach; on failure the object is closed (EnvironmentError). */
  attach(): void {
    try {
      this.link = this.native.attach(this.obj, this.program);
    } catch (e) {
      this.close();
      throw new EnvironmentError(`cgroup_mkdir probe: ${describeNativeError(e, CAPABILITIES)}`);
    }
  }

  /** The hook this flavour serves, as the ready line's `hooks` names it. */
  get hook(): string {
    return `${this.program === TRACEPOINT.program ? 'tracepoint' : 'raw_tp'} cgroup:cgroup_mkdir`;
  }

  counters(): Record<CgroupCounterName, number> {
    return readPerCpuCounters(this.native, this.obj, 'cgroup_counters', CGROUP_COUNTER_NAMES);
  }

  /** Detach (the shared ring is drained by its owner). */
  detach(): void {
    if (this.link) this.native.detach(this.link);
    this.link = undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close(this.obj);
  }
}
