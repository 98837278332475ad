import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { btfNamesIn } from '../../src/bpf/btf-names.js';

/** Raw BTF with no types and `strings` as its string section (starting with the empty string, as BTF's does). */
function btf(strings: string[], gap = 0): Buffer {
  const section = Buffer.from(`\0${strings.join('\0')}\0`, 'latin1');
  const header = Buffer.alloc(24 + gap);
  header.writeUInt16LE(0xeb9f, 0);
  header[2] = 1;
  header.writeUInt32LE(24, 4); // hdr_len
  header.writeUInt32LE(0, 8); // type_off
  header.writeUInt32LE(gap, 12); // type_len: the types section sits between header and strings
  header.writeUInt32LE(gap, 16); // str_off
  header.writeUInt32LE(section.length, 20);
  return Buffer.concat([header, section]);
}

describe('btfNamesIn', () => {
  test('whole names of the string section only: not a prefix, a suffix, or a name in the types section', () => {
    const b = btf(['sock', 'btf_trace_sock_send_length', 'trace_event_raw_cgroup'], 8);
    b.write('btf_tr', 24, 'latin1'); // bytes in the types section are not names
    assert.deepEqual(
      btfNamesIn(b, ['btf_trace_sock_send_length', 'btf_trace_sock', 'sock_send_length', 'sock', 'btf_tr', 'btf_trace_sock_recv_length']),
      new Set(['btf_trace_sock_send_length', 'sock']),
    );
  });
  test('not BTF (magic, or sections past its end) -> undefined', () => {
    assert.equal(btfNamesIn(Buffer.from('ELF not BTF at all, long enough to hold a header'), ['x']), undefined);
    const cut = btf(['a']).subarray(0, 26);
    assert.equal(btfNamesIn(cut, ['a']), undefined);
  });
});
