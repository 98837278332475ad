import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDurationMs, parseSizeBytes } from '../../src/util/units.js';

describe('parseDurationMs', () => {
  const good: [string, number][] = [
    ['250ms', 250],
    ['0ms', 0],
    ['1s', 1000],
    ['1.5m', 90_000],
    ['2h', 7_200_000],
    ['0.25s', 250],
    ['100ms', 100],
    [' 100ms\n', 100],
  ];
  for (const [text, ms] of good)
    test(`${JSON.stringify(text)} -> ${ms}`, () => {
      assert.equal(parseDurationMs(text), ms);
    });

  const bad = ['', 'ms', '10', '10x', '10 ms', '-5ms', '+5ms', '.5s', '1.s', '1e3ms', '1,5s', '5d', '1s1', 'abc', '10msx'];
  for (const text of bad)
    test(`${JSON.stringify(text)} -> undefined`, () => {
      assert.equal(parseDurationMs(text), undefined);
    });
});

describe('parseSizeBytes', () => {
  const good: [string, number][] = [
    ['65536', 65536],
    ['0', 0],
    ['256k', 262_144],
    ['4K', 4096],
    ['8M', 8_388_608],
    ['8m', 8_388_608],
    ['1g', 1_073_741_824],
    ['1G', 1_073_741_824],
    ['8MiB', 8_388_608],
    ['8MB', 8_388_608],
    ['4kb', 4096],
    ['512b', 512],
    [' 16M ', 16_777_216],
  ];
  for (const [text, bytes] of good)
    test(`${JSON.stringify(text)} -> ${bytes}`, () => {
      assert.equal(parseSizeBytes(text), bytes);
    });

  const bad = ['', 'M', 'k', '8T', '-1', '+1', '1.5M', '8 M', '8Mi', '8MBB', 'eight', '0x100', '1e3'];
  for (const text of bad)
    test(`${JSON.stringify(text)} -> undefined`, () => {
      assert.equal(parseSizeBytes(text), undefined);
    });
});
