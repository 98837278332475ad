/**
 * JSON text written straight into a growing byte buffer.
 *
 * `trace --json` writes two records per connection, tens of thousands a
 * second. Building each line as a string and converting the batch to a
 * Buffer for the write costs more than everything else the agent does per
 * record (rope strings flattened and re-encoded, garbage for the collector).
 * Writing bytes as the fields are visited allocates nothing per record.
 */
export class JsonBytes {
  private buf: Buffer;
  private pos = 0;
  private readonly spare: Buffer[] = [];

  constructor(private readonly initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
  }

  get length(): number {
    return this.pos;
  }

  /** A copy of what was written, and a fresh start. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    return out;
  }

  /** What was written, as text, and a fresh start. */
  takeText(): string {
    const text = this.buf.toString('utf8', 0, this.pos);
    this.pos = 0;
    return text;
  }

  /**
   * What was written, as a view of this writer's buffer, and a fresh start in
   * another one: no copy. Give the view back with release() once it has been
   * written out, so that its memory is used again (fresh memory costs page
   * faults each time).
   */
  takeView(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.initialBytes);
    this.pos = 0;
    return out;
  }

  release(view: Buffer): void {
    // a buffer grown for one huge batch is let go
    if (this.spare.length < 2 && view.buffer.byteLength <= 64 * this.initialBytes) {
      this.spare.push(Buffer.from(view.buffer)); // all of it: allocUnsafeSlow, never a shared pool
    }
  }

  /** Bytes prepared once (keys, punctuation, cached fragments): see `jsonPiece`. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.reserve(n);
    if (n > 32) {
      this.buf.set(bytes, this.pos);
      this.pos += n;
      return;
    }
    // short pieces: a loop costs less than set()'s call
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = bytes[i]!;
    this.pos = p;
  }

  /**
   * Text known to be printable ASCII with nothing to escape: addresses, enum
   * values, ISO times, hex ids. Only for text the agent made itself.
   */
  ascii(s: string): void {
    const n = s.length;
    this.reserve(n);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** A JSON string (with its quotes) of any text: escaped as JSON.stringify escapes it. */
  string(s: string): void {
    const n = s.length;
    this.reserve(n + 2);
    const b = this.buf;
    const start = this.pos;
    let p = start;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
        // something to escape or to encode as UTF-8: rare, leave it to the runtime
        this.pos = start;
        this.utf8(JSON.stringify(s));
        return;
      }
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** Text already in JSON form (e.g. from JSON.stringify), encoded as UTF-8. */
  utf8(text: string): void {
    this.reserve(text.length * 3);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** A number as JSON.stringify writes it. */
  number(x: number): void {
    if (x >>> 0 === x) this.uint(x); // ports, pids, counts: the common case, -0 included
    else if (Number.isSafeInteger(x) && x > 0) this.uint(x);
    else if (!this.thousandths(x)) this.ascii(Number.isFinite(x) ? String(x) : 'null');
  }

  private uint(x: number): void {
    const digits = decimalDigits(x);
    this.reserve(digits);
    const b = this.buf;
    let p = this.pos + digits;
    this.pos = p;
    // small integers (ports, pids, byte counts) in 32-bit arithmetic, the rest in doubles
    while (x > 0x7fffffff) {
      const q = Math.floor(x / 10);
      b[--p] = 0x30 + (x - q * 10);
      x = q;
    }
    do {
      const q = (x / 10) | 0;
      b[--p] = 0x30 + (x - q * 10);
      x = q;
    } while (x > 0);
  }

  /**
   * A positive number with at most three decimals (durations in ms rounded to
   * µs), written without the double-to-shortest-string conversion. The
   * shortest decimal that reads back as such a number is its digits with
   * trailing zeros trimmed, which is what this writes; anything else is left
   * to the caller.
   */
  private thousandths(x: number): boolean {
    if (!(x > 0 && x < 1e15)) return false;
    const scaled = Math.round(x * 1000);
    if (scaled / 1000 !== x) return false;
    let frac = scaled % 1000;
    this.uint((scaled - frac) / 1000);
    if (frac === 0) return true;
    let digits = 3;
    while (frac % 10 === 0) {
      frac /= 10;
      digits--;
    }
    this.reserve(digits + 1);
    const b = this.buf;
    let p = this.pos;
    b[p] = 0x2e;
    for (let i = digits; i > 0; i--) {
      b[p + i] = 0x30 + (frac % 10);
      frac = Math.floor(frac / 10);
    }
    this.pos = p + digits + 1;
    return true;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}

/** Digits of a non-negative integer. */
function decimalDigits(x: number): number {
  if (x < 100000) return x < 10 ? 1 : x < 100 ? 2 : x < 1000 ? 3 : x < 10000 ? 4 : 5;
  let digits = 6;
  for (let limit = 1000000; x >= limit && digits < 17; limit *= 10) digits++;
  return digits;
}

/** A constant piece of JSON, encoded once. */
export function jsonPiece(text: string): Uint8Array {
  // a plain Uint8Array, like every piece, so that raw()'s loop sees one type
  return new Uint8Array(Buffer.from(text, 'utf8'));
}
