/**
 * Command lines: read bounded and redacted before they are kept. The default
 * patterns on the usual ways secrets are passed; configured patterns; a real
 * process's /proc/PID/cmdline read through the process cache.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { CMDLINE_MAX, formatCmdline, ProcessInfoCache } from '../../src/enrich/process-info.js';
import { makeRedactor } from '../../src/enrich/redact.js';
import { UsageError } from '../../src/util/errors.js';
import { until } from '../helpers/until.js';

const args = (...a: string[]): Buffer => Buffer.from(a.join('\0') + '\0');

describe('redaction: the default patterns', () => {
  const r = makeRedactor();
  const cases: Array<[string, string]> = [
    ['app --password=hunter2 --port 80', 'app --password=*** --port 80'],
    ['app --db-password hunter2 -v', 'app --db-password *** -v'],
    ['app -token abc.def', 'app -token ***'],
    ['app --API_KEY=xyz', 'app --API_KEY=***'],
    ['app --client-secret=s1 --access-key AKIA1', 'app --client-secret=*** --access-key ***'],
    ['env DB_PASSWORD=pw1 MYSQL_ROOT_PASSWORD=pw2 mysqld', 'env DB_PASSWORD=*** MYSQL_ROOT_PASSWORD=*** mysqld'],
    ['psql postgres://admin:s3cr3t@db.internal:5432/app', 'psql postgres://admin:***@db.internal:5432/app'],
    ['curl -H Authorization: Bearer eyJhbGciOi.x.y https://api', 'curl -H Authorization: Bearer *** https://api'],
    ['curl -u alice:wonderland https://api', 'curl -u alice:*** https://api'],
    ['curl --user=alice:wonderland https://api', 'curl --user=alice:*** https://api'],
    // what is no secret stays
    ['nginx -g daemon off;', 'nginx -g daemon off;'],
    ['postgres -D /var/lib/postgresql/data -p 5432', 'postgres -D /var/lib/postgresql/data -p 5432'],
    ['java -jar app.jar --server.port=8080', 'java -jar app.jar --server.port=8080'],
  ];
  for (const [input, want] of cases) test(input, () => assert.equal(r(input), want));
});

describe('redaction: bounded and configurable', () => {
  test('a secret past the length bound is redacted before the cut: no part of it is kept', () => {
    // the secret starts at character 250 and crosses the cut at 255
    const pad = 'x'.repeat(CMDLINE_MAX - 22);
    const line = formatCmdline(args('app', pad, '--password=ABCDEFGHIJKLMNOPQRSTUVWXYZ', '--tail', 'y'.repeat(20)), false);
    assert.equal([...line].length, CMDLINE_MAX);
    assert.ok(line.endsWith('…'));
    assert.ok(!/[A-Z]{3}/.test(line), line);
    assert.ok(line.includes('--password=**'), line);
  });

  test('configured patterns replace the defaults: group 1, or the whole match', () => {
    const r = makeRedactor([String.raw`--pin (\d+)`, 'internal-[a-z]+']);
    assert.equal(r('app --pin 1234 --host internal-db --password=x'), 'app --pin *** --host *** --password=x');
    assert.equal(makeRedactor([])('app --password=x'), 'app --password=x', 'an empty list redacts nothing');
  });

  test('a pattern that does not compile is a configuration error naming it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-redact-'));
    try {
      const f = path.join(dir, 'c.yaml');
      writeFileSync(f, 'privacy:\n  redactCmdline: ["--pin (\\\\d+"]\n');
      assert.throws(
        () => loadConfig({ file: f }),
        (e: Error) => e instanceof UsageError && /^config: .*c\.yaml: privacy\.redactCmdline\[0\]: got "--pin \(\\\\d\+", expected a regular expression \(Invalid regular expression: .*\)$/.test(e.message),
      );
      assert.deepEqual(loadConfig({ env: { BPFAGENT_PRIVACY_REDACT_CMDLINE: String.raw`--pin (\d+)` } }).config.privacy.redactCmdline, [String.raw`--pin (\d+)`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('redaction: a real process', () => {
  const children: Array<ReturnType<typeof spawn>> = [];
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  test("its /proc/PID/cmdline is read bounded and redacted, whatever its length", async () => {
    // 200 kB of arguments, a secret among the first ones
    const long = Array.from({ length: 2000 }, (_, i) => `--opt${i}=${'v'.repeat(90)}`);
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', '--db-password', 'Tr0ub4dor', 'postgres://u:pw9@db/x', ...long], { stdio: 'ignore' });
    children.push(child);
    // its arguments are in /proc once it has exec'd
    await until(() => readFileSync(`/proc/${child.pid!}/cmdline`, 'latin1').includes('Tr0ub4dor') || undefined, 'the child to exec', 5000, 10);
    const cache = new ProcessInfoCache();
    const info = cache.get(child.pid!);
    assert.ok(info, 'the process is read');
    assert.equal([...info.cmdline].length, CMDLINE_MAX);
    assert.ok(info.cmdline.includes('--db-password *** postgres://u:***@db/x --opt0='), info.cmdline);
    assert.ok(!info.cmdline.includes('Tr0ub4dor') && !info.cmdline.includes('pw9'), info.cmdline);
    // a configured redactor
    const custom = new ProcessInfoCache({ redact: makeRedactor(['--opt0=(v+)']) }).get(child.pid!);
    assert.ok(custom!.cmdline.includes('--db-password Tr0ub4dor') && custom!.cmdline.includes('--opt0=*** --opt1=v'), custom!.cmdline);
  });
});
