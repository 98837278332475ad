/**
 * The UDP/DNS object loads in each of its ways of reading packets: the
 * older ways are what kernels before 6.12 (no skb dynptrs in tracing
 * programs) and before direct packet loads get, and this kernel's verifier
 * must accept them too, or those kernels would lose UDP and DNS.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { loadNative } from '../../src/bpf/native.js';
import { chooseUdpHook, hasUdpTracepoints, READ_MODES, UDP_HOOKS } from '../../src/bpf/net-tracer.js';
import { ensureTracefs } from '../../src/bpf/features.js';
import { NET_OBJECT } from '../../src/bpf/probe-load.js';

describe('UDP/DNS object read modes', { skip: KERNEL_SKIP }, () => {
  for (const mode of READ_MODES) {
    test(`loads with skb dynptrs ${mode.skbDynptr ? 'on' : 'off'}, direct packet loads ${mode.directReads ? 'on' : 'off'}`, async () => {
      const native = loadNative();
      const obj = native.open(NET_OBJECT, null);
      try {
        native.setGlobal(obj, 'skb_dynptr', Buffer.from([mode.skbDynptr ? 1 : 0]));
        native.setGlobal(obj, 'direct_reads', Buffer.from([mode.directReads ? 1 : 0]));
        // the UDP hook variant this kernel gets; the other is not loaded (fexit needs kernels with it)
        const { hook } = chooseUdpHook(native, ensureTracefs(native));
        for (const [h, v] of Object.entries(UDP_HOOKS)) for (const p of [...v.tracing, ...v.cgroup]) native.setAutoload(obj, p, h === hook);
        await native.loadAsync(obj);
        const names = native.programs(obj).map((p) => p.name);
        for (const p of ['udp_send', 'udp_recv', 'dns_xmit', 'dns_receive', 'udp4_sendmsg', 'udp6_recvmsg'])
          assert.ok(names.includes(p), `${p} in the object`);
      } finally {
        native.close(obj);
      }
    });
  }

  test('where no tracefs is mounted (a container), the kernel\'s BTF picks the UDP hook tracefs would', () => {
    const tracefs = ensureTracefs(loadNative());
    assert.ok(tracefs, 'tracefs is mounted here');
    const byTracefs = hasUdpTracepoints(tracefs, undefined);
    assert.equal(hasUdpTracepoints(undefined, '/sys/kernel/btf/vmlinux'), byTracefs);
    // the tracepoints came with Linux 6.3
    const [major, minor] = os.release().split('.').map(Number) as [number, number];
    assert.equal(byTracefs, major > 6 || (major === 6 && minor >= 3));
    // and the chooser takes them from BTF alone when asked for them
    if (byTracefs) assert.equal(chooseUdpHook(loadNative(), undefined, 'tp_btf', '/sys/kernel/btf/vmlinux').hook, 'tp_btf');
    // no BTF to read, no tracefs: not the tracepoints
    assert.equal(hasUdpTracepoints(undefined, '/nonexistent/vmlinux'), false);
  });

  test('an object is off-limits while it loads on its worker thread; a failed load rejects with errno and libbpf\'s words', async () => {
    const native = loadNative();
    const obj = native.open(NET_OBJECT, null);
    const { hook } = chooseUdpHook(native, ensureTracefs(native));
    for (const [h, v] of Object.entries(UDP_HOOKS)) for (const p of [...v.tracing, ...v.cgroup]) native.setAutoload(obj, p, h === hook);
    const loading = native.loadAsync(obj);
    assert.throws(() => native.close(obj), /object is loading/);
    assert.throws(() => native.programs(obj), /object is loading/);
    await loading;
    native.close(obj);

    // a map the kernel refuses (a hash of no entries): the load fails on the worker thread
    const bad = native.open(NET_OBJECT, null);
    native.setMaxEntries(bad, 'udp_flows_0', 0);
    const err = await native.loadAsync(bad).then(() => undefined, (e: unknown) => e as Error & { errno: number; code: string });
    native.close(bad);
    assert.ok(err, 'the load failed');
    assert.match(err.message, /^load BPF object \S+: Invalid argument/);
    assert.equal(err.code, 'EINVAL');
    assert.equal(err.errno, 22);
    assert.match(err.message, /libbpf: /, 'libbpf\'s messages from the worker thread come with it');
  });
});
