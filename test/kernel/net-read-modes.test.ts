/**
 * The UDP/DNS object loads in each of its ways of reading packets: the
 * older ways are what kernels before 6.12 (no skb dynptrs in tracing
 * programs) and before direct packet loads get, and this kernel's verifier
 * must accept them too, or those kernels would lose UDP and DNS.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { loadNative } from '../../src/bpf/native.js';
import { READ_MODES } from '../../src/bpf/net-tracer.js';
import { NET_OBJECT } from '../../src/agent/collector.js';

describe('UDP/DNS object read modes', { skip: KERNEL_SKIP }, () => {
  for (const mode of READ_MODES) {
    test(`loads with skb dynptrs ${mode.skbDynptr ? 'on' : 'off'}, direct packet loads ${mode.directReads ? 'on' : 'off'}`, () => {
      const native = loadNative();
      const obj = native.open(NET_OBJECT, null);
      try {
        native.setGlobal(obj, 'skb_dynptr', Buffer.from([mode.skbDynptr ? 1 : 0]));
        native.setGlobal(obj, 'direct_reads', Buffer.from([mode.directReads ? 1 : 0]));
        native.load(obj);
        const names = native.programs(obj).map((p) => p.name);
        for (const p of ['udp_send', 'udp_recv', 'dns_xmit', 'dns_receive', 'udp4_sendmsg', 'udp6_recvmsg'])
          assert.ok(names.includes(p), `${p} in the object`);
      } finally {
        native.close(obj);
      }
    });
  }
});
