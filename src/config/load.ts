/**
 * The configuration of `bpfagent run`, from three sources, each overriding the
 * one before: the YAML file (`--config`, or `$BPFAGENT_CONFIG`), environment
 * variables `BPFAGENT_<KEY_PATH>` (e.g. `BPFAGENT_TRACE_MAX_CONNECTIONS` for
 * `trace.maxConnections`), then flags. The merged whole is validated once;
 * the first problem becomes one line naming where the value came from, the
 * key, the value and the form expected, and exit code 2:
 *
 *   config: /etc/bpfagent.yaml: trace.maxConnections: got 15, expected a whole number from 16 to 16777216
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { SINKS, type SinkRegistry } from '../sinks/registry.js';
import { UsageError } from '../util/errors.js';
import { configSchema, type AgentConfig } from './schema.js';

type Path = readonly (string | number)[];

/** One value given on the command line: the flag as typed, the key path it sets, the text. */
export interface FlagValue {
  flag: string;
  path: readonly string[];
  value: string | boolean | string[];
}

export interface ConfigSources {
  /** the YAML file; when absent, `env.BPFAGENT_CONFIG` if set, else none (defaults) */
  file?: string;
  env?: Readonly<Record<string, string | undefined>>;
  flags?: readonly FlagValue[];
  /** the sinks whose sections `sinks:` may hold (default: every sink of this build) */
  sinks?: SinkRegistry;
}

export interface LoadedConfig {
  config: AgentConfig;
  /** the file read, if any */
  file: string | undefined;
  /** where each overridden key came from: key path -> env variable or flag */
  overrides: Record<string, string>;
}

/** The environment variable naming the file when --config is not given. */
export const CONFIG_ENV = 'BPFAGENT_CONFIG';

// ---- walking zod schemas ------------------------------------------------

/** Strip defaults, optionals, transforms; keep the first description met (the expected form). */
function unwrap(schema: z.ZodTypeAny): { inner: z.ZodTypeAny; description: string | undefined } {
  let s = schema;
  let description = s.description;
  for (;;) {
    if (s instanceof z.ZodDefault) s = s._def.innerType as z.ZodTypeAny;
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s.innerType() as z.ZodTypeAny;
    else if (s instanceof z.ZodPipeline) s = s._def.in as z.ZodTypeAny;
    else if (s instanceof z.ZodBranded) s = s.unwrap() as z.ZodTypeAny;
    else break;
    description ??= s.description;
  }
  return { inner: s, description };
}

/** The schema at a key path, if the path exists in it. */
function schemaAt(root: z.ZodTypeAny, path: Path): z.ZodTypeAny | undefined {
  let s: z.ZodTypeAny | undefined = root;
  for (const key of path) {
    if (!s) return undefined;
    const { inner } = unwrap(s);
    if (inner instanceof z.ZodObject) s = (inner.shape as Record<string, z.ZodTypeAny>)[String(key)];
    else if (inner instanceof z.ZodArray && typeof key === 'number') s = inner.element as z.ZodTypeAny;
    else if (inner instanceof z.ZodRecord) s = inner.valueSchema as z.ZodTypeAny;
    else return undefined;
  }
  return s;
}

/** Every leaf key path (objects are walked into, everything else is a leaf). */
export function leafPaths(root: z.ZodTypeAny, prefix: string[] = []): string[][] {
  const { inner } = unwrap(root);
  if (!(inner instanceof z.ZodObject)) return [prefix];
  const out: string[][] = [];
  for (const [k, v] of Object.entries(inner.shape as Record<string, z.ZodTypeAny>)) out.push(...leafPaths(v, [...prefix, k]));
  return out;
}

/** trace.maxConnections -> BPFAGENT_TRACE_MAX_CONNECTIONS */
export function envName(path: readonly string[]): string {
  return 'BPFAGENT_' + path.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** A string from the environment or a flag, typed as the leaf expects (anything else is left for validation to reject). */
function coerce(leaf: z.ZodTypeAny | undefined, text: string): unknown {
  if (!leaf) return text;
  const { inner } = unwrap(leaf);
  if (inner instanceof z.ZodNumber) return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
  if (inner instanceof z.ZodBoolean) return text === 'true' ? true : text === 'false' ? false : text;
  if (inner instanceof z.ZodArray) return text.split(',').map((s) => s.trim()).filter(Boolean);
  if (inner instanceof z.ZodRecord) return parseKeyValues(text) ?? text;
  if (leaf instanceof z.ZodNullable || (leaf instanceof z.ZodDefault && leaf._def.innerType instanceof z.ZodNullable)) {
    if (text === 'null') return null;
  }
  return text;
}

/**
 * A mapping from one string, as OTEL_EXPORTER_OTLP_HEADERS writes it:
 * `key=value,key2=value2`, values URL-encoded (a comma or percent sign in a
 * value is %2C or %25). Undefined when the text is not of that form.
 */
export function parseKeyValues(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const item of text.split(',')) {
    if (!item.trim()) continue;
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    if (!key) return undefined;
    try {
      out[key] = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      return undefined; // a malformed %-escape
    }
  }
  return out;
}

// ---- merging and messages ------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setAt(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (!isPlainObject(o[k])) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
}

function getAt(obj: unknown, path: Path): unknown {
  let o = obj;
  for (const k of path) {
    if (o === null || typeof o !== 'object') return undefined;
    o = (o as Record<string | number, unknown>)[k];
  }
  return o;
}

function showPath(path: Path): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s ? `.${k}` : k;
  return s || '(top level)';
}

function showValue(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const lowerFirst = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);

/** What was expected at an issue's path, in words. */
function expectedForm(root: z.ZodTypeAny, issue: z.ZodIssue): string {
  if (issue.code === z.ZodIssueCode.custom) return issue.message;
  const leaf = schemaAt(root, issue.path);
  const described = leaf && unwrap(leaf).description;
  if (described) return described;
  const a = (w: string): string => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);
  switch (issue.code) {
    case z.ZodIssueCode.invalid_type:
      return issue.expected === 'object' ? 'a mapping of keys' : issue.expected === 'array' ? 'a list' : a(issue.expected);
    case z.ZodIssueCode.invalid_string:
      return typeof issue.validation === 'string' ? a(issue.validation === 'url' ? 'URL' : issue.validation) : lowerFirst(issue.message);
    case z.ZodIssueCode.too_small:
    case z.ZodIssueCode.too_big: {
      const small = issue.code === z.ZodIssueCode.too_small;
      const bound = Number(small ? issue.minimum : issue.maximum);
      const op = issue.exact ? '=' : small ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      if (issue.type === 'number' || issue.type === 'bigint') return `a number ${op} ${bound}`;
      const what = issue.type === 'string' ? 'characters' : issue.type === 'array' || issue.type === 'set' ? 'items' : '';
      if (what) return `${issue.exact ? 'exactly' : small ? 'at least' : 'at most'} ${bound} ${what}`;
      return lowerFirst(issue.message);
    }
    case z.ZodIssueCode.invalid_enum_value:
      return `one of ${issue.options.join(', ')}`;
    case z.ZodIssueCode.invalid_literal:
      return JSON.stringify(issue.expected);
    default:
      return lowerFirst(issue.message);
  }
}

/** The keys an object schema at `path` accepts. */
function knownKeys(root: z.ZodTypeAny, path: Path): string[] {
  const s = schemaAt(root, path);
  const inner = s && unwrap(s).inner;
  return inner instanceof z.ZodObject ? Object.keys(inner.shape as object) : [];
}

interface Origins {
  file: string | undefined;
  /** what the file held, before the overrides */
  fileInput: Record<string, unknown>;
  /** key path -> the variable or flag that set it */
  overrides: Map<string, string>;
}

/**
 * Where the value at `path` came from: the variable or flag that set it (or a
 * key above it), else the file. A missing key belongs to whoever made its
 * section: the file if it has the section, else a variable or flag setting a
 * key beside it; so does a section's own rule broken by a key inside it.
 */
function originOf(path: Path, o: Origins, missing: boolean): string {
  for (let n = path.length; n >= 1; n--) {
    const hit = o.overrides.get(path.slice(0, n).join('.'));
    if (hit) return hit;
  }
  // a section's own rule (tls: certFile with keyFile) broken where the file does not have the section: a key inside it set it
  if (!missing && path.length && !(o.file !== undefined && getAt(o.fileInput, path) !== undefined)) {
    const prefix = path.join('.') + '.';
    for (const [k, v] of o.overrides) if (k.startsWith(prefix)) return v;
  }
  if (missing) {
    const parent = path.slice(0, -1);
    if (!(o.file !== undefined && isPlainObject(getAt(o.fileInput, parent)))) {
      const prefix = parent.length ? parent.join('.') + '.' : '';
      for (const [k, v] of o.overrides) if (k.startsWith(prefix)) return v;
    }
  }
  return o.file ?? 'defaults';
}

function describeIssue(root: z.ZodTypeAny, issue: z.ZodIssue, input: unknown, o: Origins): string {
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    const path = [...issue.path, issue.keys[0]!];
    const known = knownKeys(root, issue.path);
    const sink = issue.path.length === 1 && issue.path[0] === 'sinks';
    const what = sink ? 'unknown sink' : 'unknown key';
    const expected = known.length ? `expected one of: ${known.join(', ')}` : sink ? 'this build has no sinks' : 'no keys are expected here';
    return `config: ${originOf(path, o, false)}: ${showPath(path)}: ${what}, ${expected}`;
  }
  const value = getAt(input, issue.path);
  const got = value === undefined ? 'missing' : `got ${showValue(value)}`;
  return `config: ${originOf(issue.path, o, value === undefined)}: ${showPath(issue.path)}: ${got}, expected ${expectedForm(root, issue)}`;
}

// ---- the sources -----------------------------------------------------------

function readFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`config: ${file}: cannot read it (${err.code ?? err.message})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, prettyErrors: true, merge: false });
  } catch (e) {
    if (e instanceof YAMLParseError) {
      const where = e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}: ` : '';
      const msg = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new UsageError(`config: ${file}: ${where}not valid YAML (${msg})`);
    }
    // parsed, but it has no value: an alias without its anchor, or more aliases than yaml expands (its ReferenceError)
    if (e instanceof ReferenceError) throw new UsageError(`config: ${file}: not valid YAML (${e.message.split('\n')[0]})`);
    throw e;
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc))
    throw new UsageError(`config: ${file}: (top level): got ${showValue(doc)}, expected a mapping of keys such as listen, interval, trace, sinks`);
  return doc;
}

/** Read, merge and validate: file, then BPFAGENT_* variables, then flags. Throws a UsageError (exit 2) naming the first problem. */
export function loadConfig(sources: ConfigSources = {}): LoadedConfig {
  const schema = configSchema(sources.sinks ?? SINKS);
  const env = sources.env ?? {};
  const file = sources.file ?? (env[CONFIG_ENV] || undefined);
  const input: Record<string, unknown> = file !== undefined ? readFile(file) : {};
  const fileInput = structuredClone(input);
  const overrides = new Map<string, string>();

  // environment: every leaf key has its variable; an unknown BPFAGENT_ variable is a typo
  const byEnv = new Map(leafPaths(schema).map((p) => [envName(p), p]));
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('BPFAGENT_') || name === CONFIG_ENV || text === undefined || text === '') continue;
    const path = byEnv.get(name);
    if (!path)
      throw new UsageError(`config: ${name}: unknown environment variable, expected one of: ${[CONFIG_ENV, ...byEnv.keys()].join(', ')}`);
    setAt(input, path, coerce(schemaAt(schema, path), text));
    overrides.set(path.join('.'), name);
  }

  for (const f of sources.flags ?? []) {
    const leaf = schemaAt(schema, f.path);
    const value = typeof f.value === 'string' ? coerce(leaf, f.value) : f.value;
    setAt(input, f.path, value);
    overrides.set(f.path.join('.'), f.flag);
  }

  const result = schema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues;
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
    throw new UsageError(describeIssue(schema, issues[0]!, input, { file, fileInput, overrides }) + more);
  }
  return { config: result.data, file, overrides: Object.fromEntries(overrides) };
}
