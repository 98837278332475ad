import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AF_INET, AF_INET6, formatAddr, isV4Mapped } from '../../src/events/addr.js';
import { cString, u16, u32, u64 } from '../../src/events/read.js';

/** 16 address bytes from eight 16-bit groups, placed at `off` in a larger buffer filled with 0xee. */
function v6(groups: number[], off = 0): Buffer {
  assert.equal(groups.length, 8);
  const b = Buffer.alloc(off + 16 + 3, 0xee);
  groups.forEach((g, i) => b.writeUInt16BE(g, off + i * 2));
  return b;
}

function v4(bytes: number[], off = 0): Buffer {
  const b = Buffer.alloc(off + 16 + 3, 0xee);
  b.fill(0, off, off + 16); // the kernel side zeroes the 16-byte field
  Buffer.from(bytes).copy(b, off);
  return b;
}

const mapped = (a: number, b: number, c: number, d: number) => [0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d];

describe('constants', () => {
  test('address families are Linux values', () => {
    assert.equal(AF_INET, 2);
    assert.equal(AF_INET6, 10);
  });
});

describe('formatAddr IPv4', () => {
  test('dotted quad from the first 4 bytes', () => {
    assert.equal(formatAddr(AF_INET, v4([192, 168, 1, 20]), 0), '192.168.1.20');
    assert.equal(formatAddr(AF_INET, v4([0, 0, 0, 0]), 0), '0.0.0.0');
    assert.equal(formatAddr(AF_INET, v4([255, 255, 255, 255]), 0), '255.255.255.255');
  });

  test('reads at the given offset', () => {
    assert.equal(formatAddr(AF_INET, v4([10, 20, 30, 40], 7), 7), '10.20.30.40');
  });
});

describe('formatAddr IPv6 (RFC 5952)', () => {
  const cases: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0xfe80, 0, 0, 0, 0, 0, 0, 1], 'fe80::1'],
    [[1, 0, 0, 0, 0, 0, 0, 0], '1::'],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], '2001:db8::'],
    // two runs of two: the first is compressed
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
    // runs of two and three: the longer one is compressed
    [[0x2001, 0, 0, 1, 0, 0, 0, 1], '2001:0:0:1::1'],
    [[0x2001, 0xdb8, 0, 0, 0, 1, 0, 0], '2001:db8::1:0:0'],
    // a single zero group is never "::"
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], '2001:db8:0:1:1:1:1:1'],
    [[0x2001, 0xdb8, 1, 2, 3, 4, 5, 6], '2001:db8:1:2:3:4:5:6'],
    // lowercase, no leading zeros in a group
    [[0x2001, 0x0db8, 0xabcd, 0x00ef, 0x000a, 0xffff, 0xfe00, 0x0001], '2001:db8:abcd:ef:a:ffff:fe00:1'],
    // IPv4-compatible (deprecated, not mapped) is plain IPv6
    [[0, 0, 0, 0, 0, 0, 0x0a01, 0x0203], '::a01:203'],
  ];
  for (const [groups, text] of cases) {
    test(text, () => {
      assert.equal(formatAddr(AF_INET6, v6(groups), 0), text);
    });
  }

  test('reads at the given offset', () => {
    assert.equal(formatAddr(AF_INET6, v6([0xfe80, 0, 0, 0, 0x1234, 0, 0, 0x5678], 5), 5), 'fe80::1234:0:0:5678');
  });

  test('v4-mapped ::ffff:10.1.2.3 is shown as 10.1.2.3', () => {
    assert.equal(formatAddr(AF_INET6, v6(mapped(10, 1, 2, 3)), 0), '10.1.2.3');
    assert.equal(formatAddr(AF_INET6, v6(mapped(192, 0, 2, 255), 9), 9), '192.0.2.255');
  });

  test('::ffff:0:a01:203 (v4-translated, RFC 2765) is not v4-mapped', () => {
    assert.equal(formatAddr(AF_INET6, v6([0, 0, 0, 0, 0xffff, 0, 0x0a01, 0x0203]), 0), '::ffff:0:a01:203');
  });
});

describe('isV4Mapped', () => {
  test('true only for ::ffff:a.b.c.d', () => {
    assert.equal(isV4Mapped(v6(mapped(10, 1, 2, 3)), 0), true);
    assert.equal(isV4Mapped(v6(mapped(0, 0, 0, 0)), 0), true);
    assert.equal(isV4Mapped(v6(mapped(127, 0, 0, 1), 3), 3), true);
    assert.equal(isV4Mapped(v6([0, 0, 0, 0, 0, 0xfffe, 0x0a01, 0x0203]), 0), false);
    assert.equal(isV4Mapped(v6([0, 0, 0, 0, 0, 0xff, 0x0a01, 0x0203]), 0), false);
    assert.equal(isV4Mapped(v6([0, 0, 0, 0, 1, 0xffff, 0x0a01, 0x0203]), 0), false);
    assert.equal(isV4Mapped(v6([0x100, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203]), 0), false);
    assert.equal(isV4Mapped(v6([0, 0, 0, 0, 0, 0, 0, 1]), 0), false);
    // the offset matters: the same bytes one position later are not mapped
    assert.equal(isV4Mapped(v6(mapped(10, 1, 2, 3), 1), 0), false);
  });
});

describe('address texts are remembered', () => {
  test('many addresses over many /24s, past every bound, each asked twice: always the right text', () => {
    const b = Buffer.alloc(16);
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 40_000; i++) {
        const a = [(i * 7) & 255, (i >> 3) & 255, (i >> 8) & 255, (i * 13) & 255];
        b.set(a);
        assert.equal(formatAddr(AF_INET, b, 0), a.join('.'));
      }
  });
});

describe('struct readers', () => {
  test('little-endian integers from bytes, full range', () => {
    const b = Buffer.alloc(32);
    b.writeUInt16LE(0xfffe, 1);
    b.writeUInt32LE(0xfffefdfc, 3);
    b.writeBigUInt64LE(2n ** 53n - 2n, 7);
    b.writeBigUInt64LE(0x1_0000_0001n, 15);
    assert.equal(u16(b, 1), 0xfffe);
    assert.equal(u32(b, 3), 0xfffefdfc);
    assert.equal(u64(b, 7), 2 ** 53 - 2);
    assert.equal(u64(b, 15), 0x1_0000_0001);
  });

  test('cString: to the NUL or the end of the field; remembered names come back right, UTF-8 too', () => {
    const field = (s: string) => {
      const b = Buffer.alloc(16);
      b.write(s, 'utf8');
      return b;
    };
    assert.equal(cString(field('curl'), 0, 16), 'curl');
    assert.equal(cString(Buffer.from('0123456789abcdefXYZ'), 0, 16), '0123456789abcdef');
    assert.equal(cString(field(''), 0, 16), '');
    assert.equal(cString(field('naïve'), 0, 16), 'naïve');
    // past the bound, twice over, with names that differ in one byte or in length only
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 10_000; i++) {
        for (const name of [`w${i}`, `w${i}x`, `v${i}`]) assert.equal(cString(field(name), 0, 16), name);
      }
  });
});
