/** Parsers for human-written durations and sizes in flags and config. */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "250ms", "1s", "1.5m" -> milliseconds; undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * DURATION_UNITS[m[2]!]!;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** "8M", "256k", "65536" -> bytes (binary units); undefined when malformed. */
export function parseSizeBytes(text: string): number | undefined {
  const m = /^(\d+)([kmg]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
}
