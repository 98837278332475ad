/** The `bpfagent` command's usage errors and help; none of these loads BPF or needs privileges. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'bin/bpfagent.js');

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2, nothing on stdout, exactly one stderr line that mentions every string in `mentions`. */
function assertUsageError(args: string[], mentions: string[]): string {
  const r = run(...args);
  assert.equal(r.status, 2, `exit code of bpfagent ${args.join(' ')}; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.ok(r.stderr.endsWith('\n'), `stderr ends with a newline: ${JSON.stringify(r.stderr)}`);
  const lines = r.stderr.split('\n');
  lines.pop();
  assert.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(r.stderr)}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('bpfagent: '), line);
  for (const m of mentions) assert.ok(line.includes(m), `${JSON.stringify(line)} should mention ${m}`);
  return line;
}

describe('bpfagent usage errors: exit 2, one line on stderr', () => {
  test('unknown command', () => {
    const line = assertUsageError(['frobnicate'], ["'frobnicate'", 'trace']);
    assert.equal(line, "bpfagent: unknown command 'frobnicate'; commands: trace, flows, run, hub, help");
  });

  test('trace --bogus', () => {
    assertUsageError(['trace', '--bogus'], ['--bogus', 'bpfagent trace --help']);
  });

  test('trace --attach nope', () => {
    assertUsageError(['trace', '--attach', 'nope'], ['--attach', "'nope'"]);
  });

  test('trace --ringbuf-size 1000', () => {
    assertUsageError(['trace', '--ringbuf-size', '1000'], ['--ringbuf-size', "'1000'", 'power of two']);
  });

  test('trace --poll-interval 10x', () => {
    assertUsageError(['trace', '--poll-interval', '10x'], ['--poll-interval', "'10x'"]);
  });

  test('trace with a positional argument', () => {
    assertUsageError(['trace', 'eth0'], ["'eth0'"]);
  });

  test('trace --max-connections -5', () => {
    assertUsageError(['trace', '--max-connections', '-5'], ['--max-connections', '-5']);
  });
});

describe('bpfagent help: exit 0, usage on stdout', () => {
  for (const args of [['--help'], ['-h'], ['help'], []]) {
    test(`bpfagent ${args.join(' ')}`.trimEnd(), () => {
      const r = run(...args);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.startsWith('Usage: bpfagent <command>'), r.stdout);
      assert.match(r.stdout, /^\s+trace\s/m);
    });
  }

  for (const args of [['trace', '--help'], ['trace', '-h']]) {
    test(`bpfagent ${args.join(' ')}`, () => {
      const r = run(...args);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.startsWith('Usage: bpfagent trace [options]'), r.stdout);
      for (const o of ['--json', '--attach', '--ringbuf-size', '--poll-interval', '--max-connections'])
        assert.ok(r.stdout.includes(o), o);
    });
  }
});

describe('bpfagent run: help, and configuration errors before anything starts', () => {
  test('run --help: every option, exit 0', () => {
    const r = run('run', '--help');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.ok(r.stdout.startsWith('Usage: bpfagent run [--config FILE] [options]'), r.stdout);
    for (const o of ['--config', '--listen', '127.0.0.1:9745', '--interval', '--log-level', '--shutdown-timeout', '--max-series', '/readyz'])
      assert.ok(r.stdout.includes(o), o);
  });

  test('run --config with a missing file', () => {
    assertUsageError(['run', '--config', '/nonexistent/bpfagent.yaml'], ['config: /nonexistent/bpfagent.yaml: cannot read it (ENOENT)']);
  });

  test('run --interval 5 (no unit)', () => {
    const line = assertUsageError(['run', '--interval', '5'], ['--interval']);
    assert.equal(line, 'bpfagent: config: --interval: interval: got "5", expected a duration from 100ms to 1h, such as 10s');
  });

  test('run --bogus', () => {
    assertUsageError(['run', '--bogus'], ["'--bogus'", 'bpfagent run --help']);
  });
});
