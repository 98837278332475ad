import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveCapabilities, missingNetCapabilities, missingTracingCapabilities, seccompFiltered } from '../../src/util/capabilities.js';

const CAP_SYS_ADMIN = 1n << 21n;
const CAP_PERFMON = 1n << 38n;
const CAP_BPF = 1n << 39n;
const CAP_NET_ADMIN = 1n << 12n;

/** The shape of /proc/self/status around the capability lines. */
function status(capEff: string): string {
  return [
    'Name:\tnode',
    'Umask:\t0022',
    'State:\tR (running)',
    'Pid:\t4242',
    'CapInh:\t0000000000000000',
    'CapPrm:\t000001ffffffffff',
    `CapEff:\t${capEff}`,
    'CapBnd:\t000001ffffffffff',
    'CapAmb:\t0000000000000000',
    'NoNewPrivs:\t0',
    '',
  ].join('\n');
}

describe('effectiveCapabilities', () => {
  test('parses the CapEff hex mask, not CapPrm or CapBnd', () => {
    assert.equal(effectiveCapabilities(status('000001ffffffffff')), 0x1ffffffffffn);
    assert.equal(effectiveCapabilities(status('00000000a80425fb')), 0xa80425fbn);
    assert.equal(effectiveCapabilities(status('000000c000000000')), CAP_BPF | CAP_PERFMON);
    assert.equal(effectiveCapabilities(status('0000000000000000')), 0n);
  });

  test('no CapEff line -> 0', () => {
    assert.equal(effectiveCapabilities('Name:\tnode\nCapPrm:\t000001ffffffffff\n'), 0n);
  });
});

describe('missingTracingCapabilities', () => {
  test('full root set (0x1ffffffffff) -> none missing', () => {
    assert.deepEqual(missingTracingCapabilities(0x1ffffffffffn), []);
  });
  test('CAP_BPF + CAP_PERFMON -> none missing', () => {
    assert.deepEqual(missingTracingCapabilities(CAP_BPF | CAP_PERFMON), []);
  });
  test('CAP_SYS_ADMIN alone stands in for both', () => {
    assert.deepEqual(missingTracingCapabilities(CAP_SYS_ADMIN), []);
  });
  test('nothing -> CAP_BPF and CAP_PERFMON', () => {
    assert.deepEqual(missingTracingCapabilities(0n), ['CAP_BPF', 'CAP_PERFMON']);
  });
  test('one of the two -> the other', () => {
    assert.deepEqual(missingTracingCapabilities(CAP_BPF), ['CAP_PERFMON']);
    assert.deepEqual(missingTracingCapabilities(CAP_PERFMON), ['CAP_BPF']);
  });
  test('neighbouring bits do not count (CAP_NET_ADMIN 12, CAP_SYS_PTRACE 19, CAP_CHECKPOINT_RESTORE 40)', () => {
    assert.deepEqual(missingTracingCapabilities((1n << 12n) | (1n << 19n) | (1n << 20n) | (1n << 22n) | (1n << 40n)), [
      'CAP_BPF',
      'CAP_PERFMON',
    ]);
    assert.deepEqual(missingTracingCapabilities((1n << 37n) | CAP_BPF), ['CAP_PERFMON']);
  });
});

describe('missingNetCapabilities (the UDP object\'s cgroup socket programs)', () => {
  test('CAP_NET_ADMIN, or CAP_SYS_ADMIN standing in for it -> none missing', () => {
    assert.deepEqual(missingNetCapabilities(CAP_BPF | CAP_PERFMON | CAP_NET_ADMIN), []);
    assert.deepEqual(missingNetCapabilities(CAP_SYS_ADMIN), []);
  });
  test('CAP_BPF + CAP_PERFMON alone -> CAP_NET_ADMIN', () => {
    assert.deepEqual(missingNetCapabilities(CAP_BPF | CAP_PERFMON), ['CAP_NET_ADMIN']);
    assert.deepEqual(missingNetCapabilities((1n << 11n) | (1n << 13n)), ['CAP_NET_ADMIN']);
  });
});

describe('seccompFiltered', () => {
  test('the Seccomp line: 2 is a filter, 0 none, 1 strict; absent (old kernels) none', () => {
    assert.equal(seccompFiltered(status('0').replace('NoNewPrivs:\t0', 'NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1')), true);
    assert.equal(seccompFiltered(status('0').replace('NoNewPrivs:\t0', 'NoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0')), false);
    assert.equal(seccompFiltered(status('0').replace('NoNewPrivs:\t0', 'NoNewPrivs:\t0\nSeccomp:\t1')), false);
    assert.equal(seccompFiltered(status('0')), false);
  });
});
