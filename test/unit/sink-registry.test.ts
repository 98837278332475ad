/**
 * The sink registry: every entry has a schema with defaults the configuration
 * can fill in, and a factory; any sink module can be imported first; and
 * checking the configuration does not import the sinks' client libraries
 * (only a configured sink's module is loaded, when it is made).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SINKS } from '../../src/sinks/registry.js';

const SINKS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/sinks');

describe('sink registry', () => {
  test('every entry has a schema and a factory', () => {
    for (const [name, plugin] of Object.entries(SINKS)) {
      assert.equal(typeof plugin.create, 'function', name);
      assert.equal(typeof plugin.schema.safeParse, 'function', name);
    }
  });

  test('each sink module can be imported first, then the registry and the configuration schema', () => {
    const modules = readdirSync(SINKS_DIR).filter((f) => f.endsWith('.js'));
    assert.ok(modules.includes('registry.js'));
    for (const m of modules) {
      const script = `
        await import(${JSON.stringify(path.join(SINKS_DIR, m))});
        const { SINKS } = await import(${JSON.stringify(path.join(SINKS_DIR, 'registry.js'))});
        const { configSchema } = await import(${JSON.stringify(path.join(SINKS_DIR, '../config/schema.js'))});
        for (const [name, p] of Object.entries(SINKS)) if (!p || !p.schema) throw new Error('sink ' + name + ' not loaded');
        configSchema().parse({});
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, `importing ${m} first: ${r.stderr}`);
    }
  });

  test("checking the configuration loads no sink's client library; making the sink does", () => {
    // CommonJS packages show up in require's cache once imported, from ESM too
    const script = `
      import { createRequire } from 'node:module';
      const cache = createRequire(import.meta.url).cache;
      const loaded = (pkg) => Object.keys(cache).some((k) => k.includes('/node_modules/' + pkg + '/'));
      const { loadConfig } = await import(${JSON.stringify(path.join(SINKS_DIR, '../config/load.js'))});
      const { SINKS } = await import(${JSON.stringify(path.join(SINKS_DIR, 'registry.js'))});
      const { config } = loadConfig({ env: {}, flags: [] });
      const before = [loaded('kafkajs'), loaded('@clickhouse/client')];
      const log = { child: () => log, warn() {}, error() {}, info() {}, debug() {} };
      const ctx = { node: 'n', log, intervalMs: 1000 };
      await SINKS.kafka.create(SINKS.kafka.schema.parse({ brokers: ['127.0.0.1:1'], topic: 't' }), ctx);
      await SINKS.clickhouse.create(SINKS.clickhouse.schema.parse({}), ctx);
      console.log(JSON.stringify({ interval: config.interval, before, after: [loaded('kafkajs'), loaded('@clickhouse/client')] }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { interval: number; before: boolean[]; after: boolean[] };
    assert.ok(out.interval > 0);
    assert.deepEqual(out.before, [false, false]);
    assert.deepEqual(out.after, [true, true]);
  });
});
