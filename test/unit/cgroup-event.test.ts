import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBatch, type DecodeStats } from '../../src/events/batch.js';
import { decodeCgroupMkdir } from '../../src/events/cgroup-event.js';
import { CGROUP_MKDIR_EVENT, EVENT_KIND } from '../../src/events/layout.js';
import { MonotonicClock } from '../../src/util/clock.js';

const F = CGROUP_MKDIR_EVENT.fields;

/** struct cgroup_mkdir_event as the kernel writes it (the path NUL-terminated, the rest of the buffer left as it was) */
function event(id: bigint, path: string, o: { truncated?: boolean; pathLen?: number } = {}): Buffer {
  const b = Buffer.alloc(CGROUP_MKDIR_EVENT.size, 0xa5);
  b.writeUInt8(EVENT_KIND.CGROUP_MKDIR, F.kind.offset);
  b.writeUInt8(o.truncated ? 1 : 0, F.truncated.offset);
  const bytes = Buffer.from(path);
  b.writeUInt16LE(o.pathLen ?? bytes.length, F.path_len.offset);
  b.writeUInt32LE(path.split('/').length - 1, F.level.offset);
  b.writeBigUInt64LE(id, F.cgroup_id.offset);
  bytes.copy(b, F.path.offset);
  b[F.path.offset + bytes.length] = 0;
  return b;
}

function frame(record: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32LE(record.length);
  return Buffer.concat([h, record]);
}

const ID = `/system.slice/docker-${'ab'.repeat(32)}.scope`;

describe('decodeCgroupMkdir', () => {
  test('id and path, up to path_len (what follows the NUL is not read)', () => {
    assert.deepEqual(decodeCgroupMkdir(event(0x1_0000_0007n, ID), 0), { id: 0x1_0000_0007, path: ID });
  });

  test('a path the kernel cut: the id without a path', () => {
    assert.deepEqual(decodeCgroupMkdir(event(99n, '/a'.repeat(255) + '/', { truncated: true }), 0), { id: 99, path: undefined });
  });

  test('impossible values are refused: id 0, a length past the buffer, a relative path', () => {
    assert.equal(decodeCgroupMkdir(event(0n, ID), 0), undefined);
    assert.equal(decodeCgroupMkdir(event(5n, ID, { pathLen: F.path.size }), 0), undefined);
    assert.equal(decodeCgroupMkdir(event(5n, 'docker/x'), 0), undefined);
  });
});

describe('decodeBatch with cgroup records', () => {
  test('in ring order with the other records; short frames and bad values counted', () => {
    const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
    const seen: string[] = [];
    const batch = Buffer.concat([
      frame(event(10n, '/a')),
      frame(event(11n, '/b').subarray(0, CGROUP_MKDIR_EVENT.size - 1)),
      frame(event(0n, '/c')),
      frame(event(12n, '/d')),
    ]);
    decodeBatch(batch, new MonotonicClock(0, 0n), stats, { tcp: () => seen.push('tcp'), cgroup: (c) => seen.push(`${c.id}:${c.path}`) });
    assert.deepEqual(seen, ['10:/a', '12:/d']);
    assert.deepEqual(stats, { records: 0, dnsPackets: 0, cgroups: 2, decodeErrors: 2 });
  });
});
