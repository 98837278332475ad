import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTraceArgs, TRACE_HELP, type TraceOptions } from '../../src/cli/trace-options.js';
import { UsageError } from '../../src/util/errors.js';

const DEFAULTS: TraceOptions = {
  json: false,
  attach: 'auto',
  btf: null,
  maxConnections: 65536,
  ringbufBytes: 8 * 1024 * 1024,
  pollMs: 100,
  intervalMs: 10_000,
  maxUdpFlows: 65536,
  maxNatEntries: 16384,
  udpHook: 'auto',
  debug: false,
  kubeconfig: undefined,
  nodeName: undefined,
  clusterCidrs: [],
  kubeWatch: 'node',
};

function parse(...argv: string[]): TraceOptions {
  const r = parseTraceArgs(argv);
  assert.notEqual(r, 'help');
  return r as TraceOptions;
}

/** parseTraceArgs(argv) throws a UsageError, exit code 2, one line, naming every string in `mentions`. */
function rejects(argv: string[], mentions: string[]): UsageError {
  let caught: unknown;
  try {
    parseTraceArgs(argv);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UsageError, `${JSON.stringify(argv)} threw ${String(caught)}, expected a UsageError`);
  assert.equal(caught.exitCode, 2);
  assert.ok(!caught.message.includes('\n'), `one line: ${JSON.stringify(caught.message)}`);
  for (const m of mentions) assert.ok(caught.message.includes(m), `${JSON.stringify(caught.message)} should mention ${m}`);
  return caught;
}

describe('parseTraceArgs: values', () => {
  test('defaults', () => {
    assert.deepEqual(parse(), DEFAULTS);
  });

  test('--json', () => {
    assert.deepEqual(parse('--json'), { ...DEFAULTS, json: true });
  });

  test('--debug', () => {
    assert.deepEqual(parse('--debug'), { ...DEFAULTS, debug: true });
  });

  test('--attach each mode, both spellings', () => {
    for (const mode of ['auto', 'tp_btf', 'raw_tp', 'tracepoint'] as const) {
      assert.deepEqual(parse('--attach', mode), { ...DEFAULTS, attach: mode });
      assert.deepEqual(parse(`--attach=${mode}`), { ...DEFAULTS, attach: mode });
    }
  });

  test('--btf', () => {
    assert.deepEqual(parse('--btf', '/tmp/vmlinux.btf'), { ...DEFAULTS, btf: '/tmp/vmlinux.btf' });
  });

  test('--max-connections, bounds included', () => {
    assert.equal(parse('--max-connections', '1024').maxConnections, 1024);
    assert.equal(parse('--max-connections', '16').maxConnections, 16);
    assert.equal(parse('--max-connections=16777216').maxConnections, 16_777_216);
  });

  test('--ringbuf-size, bounds included', () => {
    assert.equal(parse('--ringbuf-size', '16M').ringbufBytes, 16 * 1024 * 1024);
    assert.equal(parse('--ringbuf-size', '4k').ringbufBytes, 4096);
    assert.equal(parse('--ringbuf-size', '4096').ringbufBytes, 4096);
    assert.equal(parse('--ringbuf-size', '1G').ringbufBytes, 1024 ** 3);
  });

  test('--poll-interval, bounds included, rounded to ms', () => {
    assert.equal(parse('--poll-interval', '250ms').pollMs, 250);
    assert.equal(parse('--poll-interval', '1s').pollMs, 1000);
    assert.equal(parse('--poll-interval', '1ms').pollMs, 1);
    assert.equal(parse('--poll-interval', '5s').pollMs, 5000);
    assert.equal(parse('--poll-interval', '1.4ms').pollMs, 1);
  });

  test('everything at once', () => {
    assert.deepEqual(
      parse('--json', '--attach', 'raw_tp', '--btf', '/b', '--max-connections', '100', '--ringbuf-size', '1M', '--poll-interval', '20ms', '--debug',
        '--interval', '2s', '--max-udp-flows', '4096', '--max-nat-entries', '64', '--udp-hook', 'tp_btf'),
      { json: true, attach: 'raw_tp', btf: '/b', maxConnections: 100, ringbufBytes: 1 << 20, pollMs: 20, debug: true,
        intervalMs: 2000, maxUdpFlows: 4096, maxNatEntries: 64, udpHook: 'tp_btf', kubeconfig: undefined, nodeName: undefined, clusterCidrs: [], kubeWatch: 'node' },
    );
  });

  test('-h and --help -> help', () => {
    assert.equal(parseTraceArgs(['-h']), 'help');
    assert.equal(parseTraceArgs(['--help']), 'help');
    assert.equal(parseTraceArgs(['--json', '--help']), 'help');
  });

  test('the help text documents every option', () => {
    for (const o of ['--json', '--attach', '--btf', '--max-connections', '--ringbuf-size', '--poll-interval', '--interval',
      '--max-udp-flows', '--udp-hook', '--debug', '--help'])
      assert.ok(TRACE_HELP.includes(o), o);
  });
});

describe('parseTraceArgs: errors are UsageError, exit code 2, naming option and value', () => {
  test('unknown flag', () => {
    rejects(['--nope'], ['--nope', 'bpfagent trace --help']);
    rejects(['-x'], ['-x', 'bpfagent trace --help']);
  });

  test('--attach foo', () => {
    rejects(['--attach', 'foo'], ['--attach', "'foo'", 'tp_btf']);
  });

  test('--udp-hook kprobes', () => {
    rejects(['--udp-hook', 'kprobes'], ['--udp-hook', "'kprobes'", 'one of auto, fexit, tp_btf, kprobe']);
  });

  test('--attach without a value', () => {
    rejects(['--attach'], ['--attach', 'bpfagent trace --help']);
  });

  test('--btf with an empty value', () => {
    rejects(['--btf='], ['--btf']);
  });

  test('--ringbuf-size not a power of two, out of range, malformed', () => {
    rejects(['--ringbuf-size', '3000'], ['--ringbuf-size', "'3000'"]);
    rejects(['--ringbuf-size', '1000'], ['--ringbuf-size', "'1000'"]);
    rejects(['--ringbuf-size', '2k'], ['--ringbuf-size', "'2k'"]);
    rejects(['--ringbuf-size', '2G'], ['--ringbuf-size', "'2G'"]);
    rejects(['--ringbuf-size', '8X'], ['--ringbuf-size', "'8X'"]);
  });

  test('--poll-interval 0ms, 10x, too long, below 1ms', () => {
    rejects(['--poll-interval', '0ms'], ['--poll-interval', "'0ms'"]);
    rejects(['--poll-interval', '10x'], ['--poll-interval', "'10x'"]);
    rejects(['--poll-interval', '6s'], ['--poll-interval', "'6s'"]);
    rejects(['--poll-interval', '0.5ms'], ['--poll-interval', "'0.5ms'"]);
  });

  test('--max-connections=-5, too small, too large, not a whole number', () => {
    rejects(['--max-connections=-5'], ['--max-connections', "'-5'"]);
    rejects(['--max-connections', '15'], ['--max-connections', "'15'"]);
    rejects(['--max-connections', '16777217'], ['--max-connections', "'16777217'"]);
    rejects(['--max-connections', '1e3'], ['--max-connections', "'1e3'"]);
    rejects(['--max-connections', '100.5'], ['--max-connections', "'100.5'"]);
  });

  test(
    '--max-connections -5 (separate argument)',
    () => {
      rejects(['--max-connections', '-5'], ['--max-connections', '-5']);
    },
  );

  test('a positional argument', () => {
    rejects(['eth0'], ['eth0']);
  });

  test('a value given to a boolean flag', () => {
    rejects(['--json=yes'], ['--json']);
  });
});

describe('UDP options', () => {
  test('--interval takes durations', () => {
    assert.equal(parse('--interval', '500ms').intervalMs, 500);
    assert.equal(parse('--interval', '1s').intervalMs, 1000);
    assert.equal(parse('--interval', '10s').intervalMs, 10_000);
  });

  test('--interval rejects what is not a duration or out of range', () => {
    for (const bad of ['10', '1x', '50ms', '2h']) {
      assert.throws(() => parseTraceArgs(['--interval', bad]), (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.equal(e.exitCode, 2);
        assert.match(e.message, new RegExp(`--interval '${bad}'`));
        return true;
      });
    }
  });

  test('--max-nat-entries', () => {
    assert.equal(parse('--max-nat-entries', '1024').maxNatEntries, 1024);
    assert.throws(() => parseTraceArgs(['--max-nat-entries', '3']), /--max-nat-entries '3'/);
  });

  test('--max-udp-flows', () => {
    assert.equal(parse('--max-udp-flows', '1024').maxUdpFlows, 1024);
    assert.throws(() => parseTraceArgs(['--max-udp-flows', '3']), /--max-udp-flows '3'/);
  });
});

describe('Kubernetes and locality options', () => {
  test('--kubeconfig, --node-name, --cluster-cidr (repeatable, comma-separated)', () => {
    assert.deepEqual(
      parse('--kubeconfig', '/etc/kube.conf', '--node-name', 'node-1.zone-a', '--cluster-cidr', '10.244.0.0/16, 10.96.0.0/12', '--cluster-cidr', 'fd00:10::/56'),
      { ...DEFAULTS, kubeconfig: '/etc/kube.conf', nodeName: 'node-1.zone-a', clusterCidrs: ['10.244.0.0/16', '10.96.0.0/12', 'fd00:10::/56'] },
    );
    assert.equal(parse('--kube-watch', 'cluster').kubeWatch, 'cluster');
    assert.equal(parse('--kube-watch', 'node').kubeWatch, 'node');
  });

  test('bad values name the option, the value and the expected form', () => {
    rejects(['--cluster-cidr', '10.0.0.0/33'], ['--cluster-cidr', "'10.0.0.0/33'", 'CIDR']);
    rejects(['--cluster-cidr', '10.244.0.0/16,banana'], ['--cluster-cidr', 'banana']);
    rejects(['--node-name', 'Node_1'], ['--node-name', 'Node_1', 'node name']);
    rejects(['--kubeconfig='], ['--kubeconfig', 'kubeconfig file']);
    rejects(['--kube-watch', 'all'], ['--kube-watch', "'all'", 'node or cluster']);
  });
});
