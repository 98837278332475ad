/**
 * Typed view of the native addon (native/bpf_addon.c). The addon is loaded
 * lazily so that argument parsing and --help work without it, and so tests
 * can inject a fake implementing the same interface.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { EnvironmentError } from '../util/errors.js';

export type ObjectHandle = { readonly __brand: 'bpf_object' };
export type LinkHandle = { readonly __brand: 'bpf_link' };
export type RingHandle = { readonly __brand: 'ring' };

export interface ProgramInfo {
  name: string;
  section: string;
  autoload: boolean;
}

export interface MapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface MapDump {
  count: number;
  keys: Buffer;
  values: Buffer;
}

/**
 * Called with a batch of `[u32 length][record]` frames; (null, N) for the Nth
 * ringSync() (N >= 1) after the records consumed since it; then, once the
 * reader has ended, (null, 0) when it was asked to stop, or (null, -errno)
 * when polling the ring failed and the reader thread ended on its own.
 */
export type RingCallback = (batch: Buffer | null, count: number) => void;

export interface BpfNative {
  open(objectPath: string, btfCustomPath: string | null): ObjectHandle;
  programs(obj: ObjectHandle): ProgramInfo[];
  maps(obj: ObjectHandle): MapInfo[];
  setAutoload(obj: ObjectHandle, program: string, on: boolean): void;
  setMaxEntries(obj: ObjectHandle, map: string, entries: number): void;
  setGlobal(obj: ObjectHandle, variable: string, value: Buffer): void;
  /** A ring buffer map of `bytes` (a power of two): its fd, for reuseMapFd, closed with closeFd. */
  ringCreate(name: string, bytes: number): number;
  /** Before load: make `map` the kernel map of `fd` (the object keeps a copy of the fd); the map takes that map's name. */
  reuseMapFd(obj: ObjectHandle, map: string, fd: number): void;
  closeFd(fd: number): void;
  /** Load on a worker thread: objects load side by side, JavaScript goes on; the handle is off-limits until it settles. */
  loadAsync(obj: ObjectHandle): Promise<void>;
  attach(obj: ObjectHandle, program: string): LinkHandle;
  /** Attach a cgroup program (cgroup/sock_create, cgroup/sendmsg4, ...) to a cgroup v2 directory. */
  attachCgroup(obj: ObjectHandle, program: string, cgroupDir: string): LinkHandle;
  detach(link: LinkHandle): void;
  mapLookup(obj: ObjectHandle, map: string, key: Buffer): Buffer | null;
  mapUpdate(obj: ObjectHandle, map: string, key: Buffer, value: Buffer): void;
  mapDelete(obj: ObjectHandle, map: string, key: Buffer): boolean;
  mapDump(obj: ObjectHandle, map: string, deleteAfter: boolean): MapDump;
  /**
   * Put map `inner` at `index` of map-of-maps `outer` (both the object's), on
   * a worker thread: it settles once the kernel has waited out an RCU grace
   * period, after which no program still uses the map that was there.
   */
  setInnerMapAsync(obj: ObjectHandle, outer: string, index: number, inner: string): Promise<void>;
  /** Put `program` of loaded object `from` at `index` of program array `map`, for tail calls. */
  chainProgram(obj: ObjectHandle, map: string, index: number, from: ObjectHandle, program: string): void;
  ringOpen(obj: ObjectHandle, map: string, callback: RingCallback, pollMs: number): RingHandle;
  ringStop(ring: RingHandle): void;
  /** Records the reader took from the ring but dropped for lack of memory (while the ring's object is open). */
  ringDropped(ring: RingHandle): number;
  /** Ask for a sync marker: the Nth request's callback(null, N) follows the records of a consume begun after it. */
  ringSync(ring: RingHandle): void;
  /** Run a loaded iterator program (iter/tcp, iter/task_file) to its end on a worker thread: all it wrote. */
  iterReadAsync(obj: ObjectHandle, program: string): Promise<Buffer>;
  close(obj: ObjectHandle): void;
  probeMapType(type: number): number;
  probeProgType(type: number): number;
  /**
   * helper 0: 1 when a trivial fexit program on kernel function `func` loads
   * and attaches (BPF trampolines), else -errno. helper N: 1 when the
   * verifier knows helper N in fexit programs, 0 when not, -errno when the
   * probe could not tell.
   */
  probeFexit(func: string, helper: number): number;
  numPossibleCpus(): number;
  mount(source: string, target: string, fstype: string): void;
  setDebug(on: boolean): void;
}

/** An error thrown by the addon: message "verb object: strerror" plus libbpf's words. */
export interface NativeError extends Error {
  code: string;
  errno: number;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number';
}

/** The first line of a native error, and what to do when it was refused for lack of privileges (EPERM, EACCES). */
export function describeNativeError(e: unknown, capabilities: string): string {
  const hint = isNativeError(e) && (e.errno === 1 || e.errno === 13) ? `: run as root or grant ${capabilities}` : '';
  return `${(e as Error).message.split('\n')[0]}${hint}`;
}

/** Open a compiled object; one that cannot be opened (missing, stale) is an EnvironmentError saying how to rebuild it. */
export function openObject(native: BpfNative, objectPath: string, btfPath: string | null): ObjectHandle {
  try {
    return native.open(objectPath, btfPath);
  } catch (e) {
    throw new EnvironmentError(`${(e as Error).message.split('\n')[0]}; rebuild with 'npm install'`);
  }
}

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let cached: BpfNative | undefined;

export function loadNative(): BpfNative {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const addon = path.join(PROJECT_ROOT, 'build/Release/bpfagent_native.node');
  try {
    cached = require(addon) as BpfNative;
  } catch (e) {
    throw new Error(
      `load native addon ${addon}: ${(e as Error).message}; build it with 'npm install' (needs libbpf-dev, g++, make, python3)`,
    );
  }
  return cached;
}

/** BPF map and program type numbers from include/uapi/linux/bpf.h used by the probes. */
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_RINGBUF = 27;
export const BPF_PROG_TYPE_TRACEPOINT = 5;
export const BPF_PROG_TYPE_RAW_TRACEPOINT = 17;
export const BPF_PROG_TYPE_TRACING = 26;
