/**
 * Redaction of secrets passed as command-line arguments (`--password=x`,
 * `mysql://user:pw@db`, `Authorization: Bearer x`). A command line is read
 * bounded (process-info.ts) and redacted before it is cut to length or kept
 * anywhere, so no secret reaches a cache, a record or a log.
 *
 * Each pattern is a JavaScript regular expression, matched case-insensitively
 * against the arguments joined by spaces; the text of its first group (or the
 * whole match when it has no group) becomes `***`.
 */
import { UsageError } from '../util/errors.js';

export const REDACTED = '***';

const KEYWORDS = String.raw`(?:password|passwd|passphrase|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?)`;

/** The patterns used when `privacy.redactCmdline` is not set. */
export const DEFAULT_REDACT_PATTERNS: readonly string[] = [
  // --db-password=x, --token x, -secret x
  String.raw`(?:^|\s)--?[\w.-]*${KEYWORDS}[\w.-]*(?:=|\s+)(\S+)`,
  // DB_PASSWORD=x, api_key=x (environment assignments, key=value arguments)
  String.raw`(?:^|\s)[\w.-]*${KEYWORDS}[\w.-]*=(\S+)`,
  // scheme://user:password@host
  String.raw`://[^\s/:@]*:([^\s/@]+)@`,
  // Authorization: Bearer x, Basic x
  String.raw`\b(?:bearer|basic)\s+(\S+)`,
  // curl -u user:password, --user=user:password
  String.raw`(?:^|\s)(?:-u|--user)(?:=|\s+)[^\s:]*:(\S+)`,
];

export type Redactor = (text: string) => string;

/** A redactor for `patterns` (default: DEFAULT_REDACT_PATTERNS); a pattern that does not compile is a UsageError. */
export function makeRedactor(patterns: readonly string[] = DEFAULT_REDACT_PATTERNS): Redactor {
  const compiled = patterns.map((p, i) => {
    try {
      return new RegExp(p, 'gid');
    } catch (e) {
      throw new UsageError(`config: privacy.redactCmdline[${i}]: got ${JSON.stringify(p)}, expected a regular expression (${(e as Error).message})`);
    }
  });
  if (!compiled.length) return (text) => text;
  return (text) => {
    let out = text;
    for (const re of compiled) out = redactWith(re, out);
    return out;
  };
}

function redactWith(re: RegExp, text: string): string {
  re.lastIndex = 0;
  let out = '';
  let from = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const span = m.indices?.[1] ?? m.indices?.[0];
    if (m[0] === '') re.lastIndex++; // an empty match must not loop
    if (!span || span[0] < from || span[1] === span[0]) continue;
    out += text.slice(from, span[0]) + REDACTED;
    from = span[1];
  }
  return out + text.slice(from);
}
