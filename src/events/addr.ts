/** Text forms of the 16-byte address fields of bpf/events.h. */

export const AF_INET = 2;
export const AF_INET6 = 10;

function ipv4(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text: lowercase, longest run (>= 2) of zero groups as "::". */
function ipv6(b: Buffer, off: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(off + i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** True for ::ffff:a.b.c.d */
export function isV4Mapped(b: Buffer, off: number): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

/*
 * IPv4 text by address: the same few addresses recur in nearly every record,
 * and building the string is most of the cost. Looked up by the first three
 * bytes (a small integer: the cheapest Map key), then by the last byte in an
 * array. Bounded (texts and /24 rows of 1 kB): cleared when either is full.
 */
const v4ByPrefix = new Map<number, (string | undefined)[]>();
let v4Texts = 0;
const V4_TEXTS_MAX = 16_384;
const V4_ROWS_MAX = 1024;

function ipv4Cached(b: Buffer, off: number): string {
  const prefix = (b[off]! << 16) | (b[off + 1]! << 8) | b[off + 2]!;
  const last = b[off + 3]!;
  const text = v4ByPrefix.get(prefix)?.[last];
  return text !== undefined ? text : rememberIpv4(prefix, last, ipv4(b, off));
}

function rememberIpv4(prefix: number, last: number, text: string): string {
  let byLast = v4ByPrefix.get(prefix);
  if (v4Texts >= V4_TEXTS_MAX || (byLast === undefined && v4ByPrefix.size >= V4_ROWS_MAX)) {
    v4ByPrefix.clear();
    v4Texts = 0;
    byLast = undefined;
  }
  if (byLast === undefined) v4ByPrefix.set(prefix, (byLast = new Array<string | undefined>(256).fill(undefined)));
  byLast[last] = text;
  v4Texts++;
  return text;
}

/** Address text; v4-mapped IPv6 is shown as IPv4. */
export function formatAddr(family: number, b: Buffer, off: number): string {
  if (family === AF_INET) return ipv4Cached(b, off);
  if (isV4Mapped(b, off)) return ipv4Cached(b, off + 12);
  return ipv6(b, off);
}
