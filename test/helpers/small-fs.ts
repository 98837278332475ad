/**
 * A small file system a test fills up: a size-limited tmpfs mounted on a
 * temporary directory (root), named for this branch's tests, unmounted and
 * removed by destroy(). fill() takes every free byte but `leave` with a
 * filler file; free() deletes the filler.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, statfsSync, writeSync, ftruncateSync, fstatSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export class SmallFs {
  readonly dir: string;
  private readonly filler: string;

  constructor(bytes: number) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-hardening-fs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'bpfagent-hardening-test', this.dir]);
    this.filler = path.join(this.dir, '.filler');
  }

  /** bytes free now */
  get free(): number {
    const s = statfsSync(this.dir);
    return s.bavail * s.bsize;
  }

  /** Take all the room but `leave` bytes (rounded to pages by tmpfs). */
  fill(leave = 0): void {
    const fd = openSync(this.filler, 'a');
    try {
      const chunk = Buffer.alloc(4096, 0x78);
      for (;;) {
        try {
          if (writeSync(fd, chunk) < chunk.length) break;
        } catch {
          break; // ENOSPC
        }
      }
      if (leave > 0) ftruncateSync(fd, Math.max(0, fstatSync(fd).size - leave));
    } finally {
      closeSync(fd);
    }
  }

  /** Give the room back. */
  release(): void {
    rmSync(this.filler, { force: true });
  }

  destroy(): void {
    try {
      execFileSync('umount', [this.dir]);
    } finally {
      rmdirSync(this.dir);
    }
  }
}
