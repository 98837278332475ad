/**
 * Little helpers for reading kernel structs out of Buffers. Little-endian
 * integers are assembled from bytes: the optimiser inlines these, while
 * Buffer.readUInt32LE and friends validate their arguments on every call.
 * Callers have checked the struct's length first.
 */

export function u16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

export function u32(b: Uint8Array, off: number): number {
  // the top byte multiplied, not shifted: a shift would make the result negative
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + b[off + 3]! * 16777216;
}

/** A __u64 as a number: exact below 2^53, which covers counters and ids. */
export function u64(b: Uint8Array, off: number): number {
  return u32(b, off + 4) * 4294967296 + u32(b, off);
}

/*
 * Command names recur in nearly every record, and turning bytes into a
 * string is a native call: ASCII names are remembered by a hash of their
 * bytes (and checked byte for byte on a hit). Bounded; cleared when full.
 */
const asciiText = new Map<number, string>();
const ASCII_TEXT_MAX = 4096;

/** A NUL-terminated char array. */
export function cString(b: Buffer, off: number, len: number): string {
  let end = off;
  let hash = 0x811c9dc5; // FNV-1a
  let ascii = true;
  while (end < off + len) {
    const c = b[end]!;
    if (c === 0) break;
    if (c >= 0x80) ascii = false;
    hash = Math.imul(hash ^ c, 16777619);
    end++;
  }
  if (!ascii) return b.toString('utf8', off, end);
  const key = hash & 0x3fffffff; // a small integer: the cheapest Map key
  const known = asciiText.get(key);
  if (known !== undefined && sameAscii(known, b, off, end)) return known;
  const text = b.toString('latin1', off, end);
  if (asciiText.size >= ASCII_TEXT_MAX) asciiText.clear();
  asciiText.set(key, text);
  return text;
}

function sameAscii(text: string, b: Uint8Array, start: number, end: number): boolean {
  if (text.length !== end - start) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) !== b[start + i]) return false;
  return true;
}
