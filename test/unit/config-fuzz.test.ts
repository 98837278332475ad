/**
 * Property-based tests of the configuration (fast-check): every key through
 * its environment variable, random `bpfagent run` and `bpfagent trace`
 * command lines, random YAML files. Whatever the input, the result is a
 * configuration or a UsageError (exit 2) of one line that says where the bad
 * value came from (the file, the variable, the flag); never another
 * exception. Where the form is simple, values inside it round-trip exactly
 * and values outside it are refused naming the key.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { envName, leafPaths, loadConfig, type ConfigSources, type LoadedConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { parseRunArgs, RUN_FLAGS } from '../../src/cli/run-options.js';
import { parseTraceArgs } from '../../src/cli/trace-options.js';
import { UsageError } from '../../src/util/errors.js';

const RUNS = 400;
const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-config-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** The configuration, or the UsageError's message (one line, checked); anything else thrown fails the property. */
function load(sources: ConfigSources): LoadedConfig | string {
  try {
    return loadConfig(sources);
  } catch (e) {
    if (!(e instanceof UsageError)) throw new Error(`not a UsageError: ${(e as Error)?.stack ?? String(e)}`);
    assert.equal(e.exitCode, 2);
    assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
}

const LEAVES = leafPaths(configSchema()).filter((p) => p.length);
const text = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom('true', 'false', 'null', '0', '-1', '1e3', '10s', '100ms', '1h', '8M', '4k', '127.0.0.1:9745', '[::1]:0', '10.0.0.0/8', 'a=b', 'a=b,c=d', ',', '{}', '[]', '\u0000', '💥'),
);

describe('every key, any text, through its environment variable', () => {
  test('a configuration, or one line naming the variable and the key', () => {
    fc.assert(
      fc.property(fc.constantFrom(...LEAVES), text, (key, value) => {
        const variable = envName(key);
        const r = load({ env: { [variable]: value } });
        // names the variable, then the key or, when the key's section as a whole is refused, a key of that section
        // (a sink section begun by one variable lacks its required keys: sinks.kafka.brokers: missing)
        if (typeof r === 'string') {
          const why = `${variable}=${JSON.stringify(value)}: ${r}`;
          assert.ok(r.startsWith(`config: ${variable}: `), why);
          const named = r.slice(`config: ${variable}: `.length).split(':')[0]!.split('.');
          const common = named.findIndex((part, i) => part !== key[i]);
          assert.ok((common === -1 ? named.length : common) >= (key.length === 1 ? 1 : Math.min(2, key.length - 1)), why);
        }
        // an empty variable is as good as unset
        else assert.equal(r.overrides[key.join('.')], value === '' ? undefined : variable);
      }),
      { numRuns: RUNS * 4 },
    );
  });

  test('an unknown BPFAGENT_ variable is refused naming it', () => {
    const known = new Set(LEAVES.map(envName));
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Z][A-Z0-9_]{0,20}$/), text.filter((s) => s !== ''), (suffix, value) => {
        const variable = `BPFAGENT_${suffix}`;
        fc.pre(!known.has(variable) && variable !== 'BPFAGENT_CONFIG');
        const r = load({ env: { [variable]: value } });
        assert.equal(typeof r, 'string');
        assert.ok((r as string).startsWith(`config: ${variable}: unknown environment variable, expected one of: BPFAGENT_CONFIG, `), r as string);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('values round-trip inside their form and are refused outside it', () => {
  const cases: Array<{ key: string; ok: fc.Arbitrary<[string, unknown]>; bad: fc.Arbitrary<string> }> = [
    {
      key: 'trace.maxConnections',
      ok: fc.integer({ min: 16, max: 16_777_216 }).map((v) => [String(v), v]),
      bad: fc.oneof(fc.integer({ min: -100, max: 15 }).map(String), fc.integer({ min: 16_777_217, max: 2 ** 40 }).map(String), fc.constantFrom('1e3', '16.5', 'many', '0x10')),
    },
    {
      key: 'interval',
      ok: fc.oneof(fc.integer({ min: 100, max: 3_600_000 }).map((v): [string, unknown] => [`${v}ms`, v]), fc.integer({ min: 1, max: 3600 }).map((v): [string, unknown] => [`${v}s`, v * 1000])),
      bad: fc.oneof(fc.integer({ min: 0, max: 99 }).map((v) => `${v}ms`), fc.integer({ min: 3601, max: 10 ** 6 }).map((v) => `${v}s`), fc.constantFrom('10', 's', '1d', '-1s')),
    },
    {
      key: 'trace.ringbufSize',
      ok: fc.integer({ min: 12, max: 30 }).map((e) => [String(2 ** e), 2 ** e]),
      bad: fc.oneof(fc.integer({ min: 12, max: 29 }).map((e) => String(2 ** e + 1)), fc.integer({ min: 0, max: 11 }).map((e) => String(2 ** e)), fc.constant(String(2 ** 31))),
    },
    {
      key: 'listen',
      ok: fc
        .tuple(fc.oneof(fc.ipV4(), fc.constantFrom('localhost', 'node-1.example', '::1', '::', 'fd00::1')), fc.integer({ min: 0, max: 65535 }))
        .map(([host, port]) => [host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, { host, port }]),
      bad: fc.oneof(fc.ipV4(), fc.ipV4().map((h) => `${h}:65536`), fc.constantFrom('::1:9745', ':9745', 'host:', 'a b:1', '[::1]')),
    },
    {
      key: 'kubernetes.clusterCidrs',
      ok: fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })), { minLength: 1, maxLength: 4 }).map((cs) => [cs.map(([a, l]) => `${a}/${l}`).join(','), cs.map(([a, l]) => `${a}/${l}`)]),
      bad: fc.oneof(fc.ipV4().map((a) => `${a}/33`), fc.ipV4(), fc.constantFrom('banana', '10.0.0.0/8,x')),
    },
  ];
  const at = (c: Record<string, unknown>, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);

  for (const c of cases) {
    const variable = envName(c.key.split('.'));
    test(`${c.key} (${variable})`, () => {
      fc.assert(
        fc.property(c.ok, ([value, expected]) => {
          const r = load({ env: { [variable]: value } });
          assert.notEqual(typeof r, 'string', `${variable}=${value}: ${String(r)}`);
          assert.deepEqual(at((r as LoadedConfig).config as unknown as Record<string, unknown>, c.key), expected);
        }),
        { numRuns: RUNS },
      );
      fc.assert(
        fc.property(c.bad, (value) => {
          const r = load({ env: { [variable]: value } });
          assert.equal(typeof r, 'string', `${variable}=${value} was taken`);
          assert.ok((r as string).startsWith(`config: ${variable}: ${c.key}`), r as string);
          assert.ok((r as string).includes('expected'), r as string);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

/** A random command line: known flags (with a value, a value that looks like a flag, the = form, none), unknown ones, junk. */
function argv(flags: Record<string, { boolean?: boolean }>): fc.Arbitrary<string[]> {
  const names = Object.keys(flags);
  const one = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...names), text).map(([f, v]) => (flags[f]!.boolean ? [`--${f}`] : [`--${f}`, v])) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...names), text).map(([f, v]) => [`--${f}=${v}`]) },
    { weight: 1, arbitrary: fc.constantFrom(...names).map((f) => [`--${f}`]) },
    { weight: 1, arbitrary: fc.stringMatching(/^--?[a-z][a-z-]{0,12}$/).map((f) => [f]) },
    { weight: 1, arbitrary: text.map((t) => [t]) },
  );
  return fc.array(one, { maxLength: 6 }).map((parts) => parts.flat());
}

describe('command lines', () => {
  test('bpfagent run: a configuration, or one line naming the flag (or run:)', () => {
    fc.assert(
      fc.property(argv(RUN_FLAGS), (args) => {
        let parsed: ReturnType<typeof parseRunArgs>;
        try {
          parsed = parseRunArgs(args);
        } catch (e) {
          assert.ok(e instanceof UsageError, `not a UsageError: ${String(e)}`);
          assert.ok(!e.message.includes('\n') && e.message.startsWith('run: '), e.message);
          return;
        }
        if (parsed === 'help') return;
        const r = load({ flags: parsed.flags });
        if (typeof r === 'string') {
          const m = /^config: (--[a-z-]+): /.exec(r);
          assert.ok(m && args.some((a) => a === m[1] || a.startsWith(`${m[1]}=`)), `${JSON.stringify(args)}: ${r}`);
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('bpfagent trace: options, or one line naming the option (or trace:)', () => {
    const TRACE_FLAGS: Record<string, { boolean?: boolean }> = {};
    for (const f of ['json', 'debug', 'help']) TRACE_FLAGS[f] = { boolean: true };
    for (const f of ['attach', 'btf', 'max-connections', 'ringbuf-size', 'poll-interval', 'interval', 'max-udp-flows', 'max-nat-entries', 'kubeconfig', 'node-name', 'kube-watch', 'cluster-cidr']) TRACE_FLAGS[f] = {};
    fc.assert(
      fc.property(argv(TRACE_FLAGS), (args) => {
        try {
          parseTraceArgs(args);
        } catch (e) {
          assert.ok(e instanceof UsageError, `not a UsageError: ${String(e)}`);
          assert.ok(!e.message.includes('\n') && e.message.startsWith('trace: '), e.message);
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe('random configuration files', () => {
  /** Objects shaped like the configuration (its keys, nested as in the schema) with random values, and random keys. */
  const keyed = LEAVES.map((p) => p.join('.'));
  const doc = fc.oneof(
    fc.dictionary(fc.constantFrom(...keyed), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }).map((flat) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(flat)) {
        const parts = k.split('.');
        let cur = o;
        for (const p of parts.slice(0, -1)) cur = (cur[p] ??= {}) as Record<string, unknown>;
        if (typeof cur === 'object' && cur !== null) cur[parts.at(-1)!] = v;
      }
      return stringify(o);
    }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => stringify(v)),
    fc.string({ maxLength: 200 }),
  );

  test('a configuration, or one line naming the file', () => {
    fc.assert(
      fc.property(doc, (yamlText) => {
        const f = path.join(dir, `c${n++}.yaml`);
        writeFileSync(f, yamlText);
        const r = load({ file: f });
        if (typeof r === 'string') assert.ok(r.startsWith(`config: ${f}: `), r);
        else assert.equal(r.file, f);
      }),
      { numRuns: RUNS },
    );
  });
});
