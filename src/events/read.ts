/** Little helpers for reading kernel structs out of Buffers. */

/** A __u64 as a number: exact below 2^53, which covers counters and ids. */
export function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 4) * 4294967296 + b.readUInt32LE(off);
}

/** A NUL-terminated char array. */
export function cString(b: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}
