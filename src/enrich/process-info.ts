import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { batchNowMs } from '../events/batch-time.js';
import { makeRedactor, type Redactor } from './redact.js';

/**
 * Process metadata from /proc, cached by pid and safe against pid reuse.
 *
 * Records carry the tgid and the comm of the *thread* that ran (bpf_get_current_comm),
 * so a comm that differs from the process's own is not proof of reuse: the
 * start time in /proc/PID/stat is. A differing comm only triggers that check;
 * once the check passes the comm is remembered as one of the process's thread
 * names, so a busy multi-threaded process does not re-read /proc on every record.
 *
 * An exec keeps the pid and the start time but changes the program: a record
 * of `bash` read after that bash exec'd `sleep` would otherwise get sleep's
 * exe. So a comm that is not the process's own is accepted only when one of
 * its threads carries it now (/proc/PID/task/TID/comm); otherwise the record
 * came from an image that is gone, and nothing is known about it.
 */

export interface ProcessInfo {
  pid: number;
  /** executable path ('' when unreadable: kernel thread, or no ptrace access) */
  exe: string;
  /** arguments joined by spaces, redacted (see redact.ts), at most CMDLINE_MAX characters */
  cmdline: string;
  ppid: number;
  /** start time, clock ticks since boot (field 22 of /proc/PID/stat): with the pid, names the process uniquely */
  startTicks: number;
  /** the process's (main thread's) command name */
  comm: string;
}

export const CMDLINE_MAX = 256;
/** The kernel keeps 15 characters of a command name (TASK_COMM_LEN 16 with the NUL). */
const COMM_LEN = 15;
/** Thread names remembered per process, and names of none of its threads; past this, a new one costs reads of /proc. */
const MAX_ALIASES = 16;

interface Stat {
  comm: string;
  ppid: number;
  startTicks: number;
}

/**
 * Parse /proc/PID/stat. The comm sits in parentheses and may itself contain
 * spaces and ')', so the fields are those after the LAST ')'.
 */
export function parseProcStat(text: string): Stat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // after ')': field 3 (state) is [0], field 4 (ppid) [1], field 22 (starttime) [19]
  const rest = text.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  if (!Number.isInteger(ppid) || !Number.isInteger(startTicks)) return undefined;
  return { comm: text.slice(open + 1, close), ppid, startTicks };
}

function readStat(procRoot: string, pid: number): Stat | undefined {
  try {
    return parseProcStat(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // gone (ENOENT/ESRCH) or unreadable
  }
}

function readExe(procRoot: string, pid: number): string {
  try {
    return readlinkSync(`${procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return ''; // kernel thread (no exe), EACCES without ptrace rights, or gone
  }
}

// enough bytes for CMDLINE_MAX characters of any UTF-8, plus one to see there is more
const CMDLINE_BYTES = CMDLINE_MAX * 4 + 1;

/** NUL-separated arguments to one line, bounded: a long cmdline (up to ARG_MAX) is never read whole. */
function readCmdline(procRoot: string, pid: number, redact: Redactor): string {
  let fd: number | undefined;
  try {
    fd = openSync(`${procRoot}/${pid}/cmdline`, 'r');
    const buf = Buffer.alloc(CMDLINE_BYTES);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    return formatCmdline(buf.subarray(0, n), n === buf.length, redact);
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const defaultRedactor = makeRedactor();

/** `more`: the bytes given are only the start of the command line. Redacted before it is cut, so no part of a secret stays. */
export function formatCmdline(bytes: Uint8Array, more = false, redact: Redactor = defaultRedactor): string {
  const text = redact(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      .toString('utf8')
      .replace(/\0+$/, '')
      .replace(/\0/g, ' '),
  );
  const chars = [...text]; // by code point, so a cut never splits a surrogate pair
  if (!more && chars.length <= CMDLINE_MAX) return text;
  return chars.slice(0, CMDLINE_MAX - 1).join('') + '…';
}

interface Entry {
  info: ProcessInfo;
  checkedMs: number;
  /** thread comms seen for this process and found consistent with it */
  aliases: string[];
  /** comms of records that none of its threads carried when last checked (an earlier image's, after an exec) */
  strangers: string[];
  /** neighbours in the recency list */
  older: Entry | undefined;
  newer: Entry | undefined;
}

export interface ProcessInfoStats {
  /** answered from the cache (a remembered exit included) */
  hits: number;
  /** read whole from /proc */
  misses: number;
  /** reads that found the process gone */
  gone: number;
  /** cached entries found to belong to an earlier process with the same pid */
  reused: number;
  /** lookups whose comm no thread of the process carries: a program it has exec'd away from (answered undefined) */
  otherImage: number;
  evictions: number;
}

export class ProcessInfoCache {
  private readonly procRoot: string;
  private readonly maxEntries: number;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  private readonly entries = new Map<number, Entry>();
  /**
   * The entries from least to most recently used, linked through the entries
   * themselves: a hit moves its entry to the newest end by relinking, without
   * touching the Map (a delete and a set per hit cost more than the rest of it).
   */
  private oldest: Entry | undefined;
  private newest: Entry | undefined;
  /** pid -> until when it is known to have gone */
  private readonly goneUntil = new Map<number, number>();
  readonly stats: ProcessInfoStats = { hits: 0, misses: 0, gone: 0, reused: 0, otherImage: 0, evictions: 0 };

  private readonly redact: Redactor;

  constructor(opts: { procRoot?: string; maxEntries?: number; revalidateMs?: number; now?: () => number; redact?: Redactor } = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.redact = opts.redact ?? defaultRedactor;
    this.maxEntries = Math.max(1, opts.maxEntries ?? 16384);
    this.revalidateMs = opts.revalidateMs ?? 1000;
    // the clock read once per ring buffer batch, not once per record
    this.now = opts.now ?? batchNowMs;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Metadata of the process `pid` whose thread named `comm` (as the kernel
   * reported it) made the record; undefined when it has gone, or when none of
   * its threads carries that name (it has exec'd another program since).
   */
  get(pid: number, comm?: string): ProcessInfo | undefined {
    const now = this.now();
    const e = this.entries.get(pid);
    if (e) {
      const name = comm?.slice(0, COMM_LEN);
      const sameComm = name === undefined || sameName(name, e.info.comm) || e.aliases.includes(name);
      const fresh = now - e.checkedMs < this.revalidateMs;
      if (fresh && (sameComm || e.strangers.includes(name!))) {
        this.touch(e);
        this.stats.hits++;
        return sameComm ? e.info : this.otherImage();
      }
      // due for a check, or a comm never seen for it: the start time tells the same process from a new one
      const st = readStat(this.procRoot, pid);
      if (st && st.startTicks === e.info.startTicks && sameName(st.comm, e.info.comm)) {
        if (!fresh) e.strangers.length = 0; // threads come and go: ask again
        e.checkedMs = now;
        this.touch(e);
        this.stats.hits++;
        return sameComm ? e.info : this.byThreadName(e, name!);
      }
      this.forget(pid, e);
      if (st && st.startTicks !== e.info.startTicks) this.stats.reused++;
      // else gone, or the same process after an exec: read it afresh
    } else {
      const until = this.goneUntil.get(pid);
      if (until !== undefined) {
        if (now < until) {
          this.stats.hits++;
          return undefined;
        }
        this.goneUntil.delete(pid);
      }
    }
    const loaded = this.load(pid, now);
    if (!loaded || comm === undefined || sameName(comm, loaded.info.comm)) return loaded?.info;
    return this.byThreadName(loaded, comm.slice(0, COMM_LEN));
  }

  /** The process's info if one of its threads is named `name` (remembered either way). */
  private byThreadName(e: Entry, name: string): ProcessInfo | undefined {
    if (threadNamed(this.procRoot, e.info.pid, name)) {
      if (e.aliases.length < MAX_ALIASES) e.aliases.push(name);
      return e.info;
    }
    if (e.strangers.length < MAX_ALIASES) e.strangers.push(name);
    return this.otherImage();
  }

  private otherImage(): undefined {
    this.stats.otherImage++;
    return undefined;
  }

  private load(pid: number, now: number): Entry | undefined {
    this.stats.misses++;
    const info = readProcess(this.procRoot, pid, this.redact);
    if (!info) {
      this.stats.gone++;
      this.goneUntil.delete(pid);
      this.goneUntil.set(pid, now + this.revalidateMs);
      if (this.goneUntil.size > this.maxEntries) this.goneUntil.delete(this.goneUntil.keys().next().value as number);
      return undefined;
    }
    this.goneUntil.delete(pid);
    const e: Entry = { info, checkedMs: now, aliases: [], strangers: [], older: this.newest, newer: undefined };
    this.entries.set(pid, e);
    this.link(e);
    while (this.entries.size > this.maxEntries && this.oldest) {
      this.forget(this.oldest.info.pid, this.oldest);
      this.stats.evictions++;
    }
    return e;
  }

  /** `e` becomes the most recently used. */
  private touch(e: Entry): void {
    if (e === this.newest) return;
    this.unlink(e);
    this.link(e);
  }

  /** at the newest end */
  private link(e: Entry): void {
    e.older = this.newest;
    e.newer = undefined;
    if (this.newest) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: Entry): void {
    if (e.older) e.older.newer = e.newer;
    else this.oldest = e.newer;
    if (e.newer) e.newer.older = e.older;
    else this.newest = e.older;
    e.older = e.newer = undefined;
  }

  private forget(pid: number, e: Entry): void {
    this.entries.delete(pid);
    this.unlink(e);
  }
}

function sameName(a: string, b: string): boolean {
  return a === b || a.slice(0, COMM_LEN) === b.slice(0, COMM_LEN);
}

/** Does a thread of process `pid` carry the command name `name` now? */
function threadNamed(procRoot: string, pid: number, name: string): boolean {
  let tids: string[];
  try {
    tids = readdirSync(`${procRoot}/${pid}/task`);
  } catch {
    return false; // gone, or no task directory
  }
  for (const tid of tids) {
    try {
      if (sameName(readFileSync(`${procRoot}/${pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, ''), name)) return true;
    } catch {
      // the thread exited meanwhile
    }
  }
  return false;
}

/**
 * One process, read from /proc. The stat is read again last: if the process
 * exited or its pid was reused while its files were being read, the reads
 * may mix two processes, so they are retried once.
 */
function readProcess(procRoot: string, pid: number, redact: Redactor): ProcessInfo | undefined {
  for (let attempt = 0; attempt < 2; attempt++) {
    const st = readStat(procRoot, pid);
    if (!st) return undefined;
    const exe = readExe(procRoot, pid);
    const cmdline = readCmdline(procRoot, pid, redact);
    const again = readStat(procRoot, pid);
    if (!again) return undefined;
    if (again.startTicks === st.startTicks) return { pid, exe, cmdline, ppid: st.ppid, startTicks: st.startTicks, comm: st.comm };
  }
  return undefined;
}
