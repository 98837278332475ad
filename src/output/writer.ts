import { JsonBytes } from './json-bytes.js';
import { writeJsonLines } from './jsonl.js';
import { formatTableRows, tableHeader } from './table.js';
import type { AgentRecord } from '../events/records.js';

/**
 * Collects records and writes them in one write per flush, as JSON lines or
 * table rows. Once the reader has gone (EPIPE) it stops writing.
 */
export class RecordWriter {
  private pending: AgentRecord[] = [];
  private broken = false;
  private readonly bytes = new JsonBytes();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly json: boolean,
  ) {}

  header(): void {
    if (!this.json) this.write(tableHeader());
  }

  add(r: AgentRecord): void {
    this.pending.push(r);
  }

  flush(): void {
    if (!this.pending.length) return;
    if (this.json) {
      writeJsonLines(this.bytes, this.pending);
      this.pending = [];
      const view = this.bytes.takeView();
      if (!this.broken) this.out.write(view, () => this.bytes.release(view));
      return;
    }
    const text = formatTableRows(this.pending);
    this.pending = [];
    this.write(text);
  }

  markBroken(): void {
    this.broken = true;
  }

  private write(text: string): void {
    if (!this.broken) this.out.write(text);
  }
}
