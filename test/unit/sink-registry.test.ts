/**
 * The sink registry: every registered sink loads whichever module is imported
 * first (a sink module importing defineSink from the registry that imports it
 * back must not trip over the cycle), and its schema has defaults the
 * configuration can fill in.
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
});
