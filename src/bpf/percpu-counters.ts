import type { BpfNative, ObjectHandle } from './native.js';

/**
 * Read a per-CPU array of __u64 counters (one slot per name, in order) and
 * sum each slot over CPUs.
 */
export function readPerCpuCounters<N extends string>(
  native: BpfNative,
  obj: ObjectHandle,
  map: string,
  names: readonly N[],
): Record<N, number> {
  const dump = native.mapDump(obj, map, false);
  const perSlot = dump.count ? dump.values.length / dump.count : 0;
  const out = Object.fromEntries(names.map((n) => [n, 0])) as Record<N, number>;
  for (let i = 0; i < dump.count; i++) {
    const name = names[dump.keys.readUInt32LE(i * 4)];
    if (name === undefined) continue;
    let sum = 0n;
    for (let off = i * perSlot; off < (i + 1) * perSlot; off += 8) sum += dump.values.readBigUInt64LE(off);
    out[name] = Number(sum);
  }
  return out;
}
