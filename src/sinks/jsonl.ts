/**
 * The JSON-lines sink: one shipped record per line, to stdout or to a file
 * rotated by size (file, file.1, ..., file.<maxFiles-1>; the oldest deleted).
 *
 * Each line is exactly what `trace --json` prints for the record (same fields,
 * same order), followed by `cluster`, `node`, `intervalStart` and `intervalMs` (UDP
 * records already carry `intervalMs` in its place, and keep it there).
 *
 * Writes are asynchronous and batched (one write per batch, one batch in
 * flight); the queue in front of them is bounded: when the disk or stdout's
 * reader is slower than the flow, new records are dropped and counted.
 */
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { formatJsonLines } from '../output/jsonl.js';
import { BatchingSink } from './batching-sink.js';
import type { ShippedRecord } from './sink.js';
import type { AgentRecord } from '../events/records.js';

import { jsonlSinkSchema, type JsonlSinkConfig, type JsonlSinkOptions } from './sink-configs.js';

/** One shipped record as one JSON line (with its newline): the `trace --json` line plus cluster, node, intervalStart, intervalMs. */
export function shippedLine(r: ShippedRecord): string {
  const { cluster, node, intervalStart, intervalMs, ...rest } = r as ShippedRecord & { intervalMs: number };
  const base = r.proto === 'udp' ? ({ ...rest, intervalMs } as AgentRecord) : (rest as AgentRecord);
  const line = formatJsonLines([base]);
  return (
    line.slice(0, -2) +
    `,"cluster":${JSON.stringify(cluster ?? null)},"node":${JSON.stringify(node)},"intervalStart":${JSON.stringify(intervalStart)}` +
    (r.proto === 'udp' ? '}\n' : `,"intervalMs":${intervalMs}}\n`)
  );
}

/** Where lines go when the path is "-": anything with a Node-style write(chunk, callback). */
export interface LineStream {
  write(chunk: string, cb: (err?: Error | null) => void): boolean;
  on?(event: 'error', listener: (err: Error) => void): unknown;
}

export class JsonlSink extends BatchingSink {
  readonly name: string;
  private fh: FileHandle | undefined;
  private size = 0;

  private readonly config: JsonlSinkConfig;
  private readonly stream: LineStream;

  /** `ctx.stream`: where lines go for path "-" (process.stdout unless given) */
  constructor(options: JsonlSinkOptions = {}, ctx: { stream?: LineStream } = {}) {
    const config = jsonlSinkSchema.parse(options);
    super(config.batching);
    this.config = config;
    this.stream = ctx.stream ?? process.stdout;
    this.name = config.path === '-' ? 'jsonl:stdout' : `jsonl:${config.path}`;
  }

  private get toStdout(): boolean {
    return this.config.path === '-';
  }

  protected async open(): Promise<void> {
    if (this.toStdout) {
      // write errors (EPIPE when the reader has gone) reach each write's callback, and are
      // retried and counted there; without a listener the stream's 'error' event would end the process
      this.stream.on?.('error', () => {});
      return;
    }
    try {
      this.fh = await open(this.config.path, 'a');
      this.size = (await this.fh.stat()).size;
    } catch (e) {
      throw new Error(`jsonl sink: cannot open ${this.config.path} for appending: ${(e as Error).message}`);
    }
  }

  protected async send(batch: ShippedRecord[]): Promise<void> {
    if (this.toStdout) {
      let text = '';
      for (const r of batch) text += shippedLine(r);
      await new Promise<void>((resolve, reject) => {
        this.stream.write(text, (err) => (err ? reject(err) : resolve()));
      });
      return;
    }
    // cut the batch into pieces that each fit the current file; rotate between them
    let piece = '';
    let pieceBytes = 0;
    for (const r of batch) {
      const line = shippedLine(r);
      const n = Buffer.byteLength(line);
      if (this.size + pieceBytes + n > this.config.maxBytes && this.size + pieceBytes > 0) {
        await this.write(piece);
        piece = '';
        pieceBytes = 0;
        await this.rotate();
      }
      piece += line;
      pieceBytes += n;
    }
    await this.write(piece);
  }

  /**
   * Write all of `text`: a disk that fills up takes part of a write (a short
   * write), then refuses the rest (ENOSPC). A failed piece is cut back off
   * the file, so no line is left torn and the retry (BatchingSink retries the
   * batch whole) writes none of it twice; only the pieces of a batch written
   * to a file before it was rotated can appear twice.
   */
  private async write(text: string): Promise<void> {
    if (!text) return;
    if (!this.fh) await this.reopen();
    const buf = Buffer.from(text);
    const before = this.size;
    try {
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await this.fh!.write(buf, off, buf.length - off, null);
        if (bytesWritten <= 0) throw new Error(`jsonl sink: ${this.config.path}: write took no bytes`);
        off += bytesWritten;
      }
      this.size += buf.length;
    } catch (e) {
      await this.fh?.truncate(before).catch(() => {});
      await this.fh?.close().catch(() => {});
      this.fh = undefined;
      throw e;
    }
  }

  private async reopen(): Promise<void> {
    this.fh = await open(this.config.path, 'a');
    this.size = (await this.fh.stat()).size;
  }

  /** path -> path.1 -> ... -> path.<maxFiles-1>; the oldest is deleted. */
  private async rotate(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
    const p = this.config.path;
    const keep = this.config.maxFiles;
    if (keep <= 1) {
      await rm(p, { force: true });
    } else {
      await rm(`${p}.${keep - 1}`, { force: true });
      for (let i = keep - 2; i >= 1; i--) {
        if (await exists(`${p}.${i}`)) await rename(`${p}.${i}`, `${p}.${i + 1}`);
      }
      if (await exists(p)) await rename(p, `${p}.1`);
    }
    await this.reopen();
  }

  protected async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** `sinks.jsonl` in the configuration of `bpfagent run`. */
