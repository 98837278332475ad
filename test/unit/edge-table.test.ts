import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { RTT_BOUNDS_US } from '../../src/flows/histogram.js';
import type { TcpRecord, UdpRecord } from '../../src/events/records.js';

let nextPort = 40000;
function tcp(over: Partial<TcpRecord> & { comm?: string; remoteAddr?: string; serverPort?: number; name?: string } = {}): TcpRecord {
  const { comm = 'curl', remoteAddr = '10.0.0.2', serverPort = 443, name, ...rest } = over;
  const outbound = (rest.direction ?? 'outbound') === 'outbound';
  const ephemeral = nextPort++;
  return {
    ts: '2026-01-01T00:00:00.000Z', proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.0.0.1', port: outbound ? ephemeral : serverPort, pid: 7, comm, cgroupId: 1, netns: 1 },
    remote: { addr: remoteAddr, port: outbound ? serverPort : ephemeral, ...(name ? { name } : {}) },
    bytesSent: 0, bytesReceived: 0, retransmits: 0, srttUs: 0, durationMs: 1,
    ...rest,
  };
}

describe('EdgeTable', () => {
  test('open connections: their bytes and retransmits count in the interval they moved, the connection once, at its end', () => {
    const t = new EdgeTable();
    const { outcome: _o, ...base } = tcp({ bytesSent: 100, bytesReceived: 10, srttUs: 80, retransmits: 1 });
    t.add({ ...base, state: 'open' });
    let [e] = t.drain();
    assert.deepEqual([e!.connections, e!.failed, e!.bytesSent, e!.bytesReceived, e!.retransmits, e!.rttUs.count], [0, { refused: 0, timeout: 0, reset: 0 }, 100, 10, 1, 0]);
    t.add({ ...base, state: 'open', bytesSent: 5, bytesReceived: 0, retransmits: 0 });
    t.add({ ...base, outcome: 'reset', bytesSent: 1, bytesReceived: 2, retransmits: 0 });
    [e] = t.drain();
    assert.deepEqual([e!.connections, e!.failed.reset, e!.bytesSent, e!.bytesReceived, e!.rttUs.count], [1, 1, 6, 2, 1]);
  });

  test('a known pattern: counts, failures, bytes, retransmits and the RTT histogram are exact', () => {
    const t = new EdgeTable();
    t.add(tcp({ bytesSent: 100, bytesReceived: 1000, srttUs: 80, retransmits: 1 }));
    t.add(tcp({ bytesSent: 200, bytesReceived: 2000, srttUs: 300 }));
    t.add(tcp({ bytesSent: 300, bytesReceived: 3000, srttUs: 2_000_000, outcome: 'reset' }));
    t.add(tcp({ outcome: 'refused' }));
    t.add(tcp({ outcome: 'timeout' }));
    t.add(tcp({ outcome: 'timeout' }));
    const edges = t.drain();
    assert.equal(edges.length, 1, 'ephemeral client ports never split an edge');
    const e = edges[0]!;
    assert.deepEqual(
      { proto: e.proto, observedBy: e.observedBy, source: e.source, destination: e.destination, port: e.port },
      { proto: 'tcp', observedBy: 'client', source: { id: 'process:curl', process: 'curl' }, destination: { id: '10.0.0.2', addr: '10.0.0.2' }, port: 443 },
    );
    assert.deepEqual([e.connections, e.failed, e.bytesSent, e.bytesReceived, e.retransmits], [6, { refused: 1, timeout: 2, reset: 1 }, 600, 6000, 1]);
    const h = e.rttUs.toJSON();
    assert.deepEqual(h.bounds, RTT_BOUNDS_US);
    // 80 µs <= 100; 300 µs <= 500; 2 s only in +Inf; failed attempts without an RTT are not observed
    const expected = RTT_BOUNDS_US.map((b) => (80 <= b ? 1 : 0) + (300 <= b ? 1 : 0));
    assert.deepEqual(h.counts, [...expected, 3]);
    assert.deepEqual([h.count, h.sum], [3, 2_000_380]);
    assert.equal(t.drain().length, 0, 'drain empties the table');
  });

  test('the server side keys the edge by its listening port, caller as source, bytes in the caller -> callee direction', () => {
    const t = new EdgeTable();
    t.add(tcp({ direction: 'inbound', comm: 'nginx', remoteAddr: '10.0.0.9', serverPort: 8080, bytesSent: 5000, bytesReceived: 50 }));
    t.add(tcp({ direction: 'inbound', comm: 'nginx', remoteAddr: '10.0.0.9', serverPort: 8080, bytesSent: 7000, bytesReceived: 70 }));
    const [e] = t.drain();
    assert.deepEqual(
      [e!.observedBy, e!.source.id, e!.destination.id, e!.port, e!.connections, e!.bytesSent, e!.bytesReceived],
      ['server', '10.0.0.9', 'process:nginx', 8080, 2, 120, 12000],
    );
  });

  test('DNS names and DNAT backends: the name is the destination, the port is the one reached', () => {
    const t = new EdgeTable();
    t.add(tcp({ name: 'api.example.com', remote: { addr: '10.96.0.10', port: 80, name: 'api.example.com', reached: { addr: '10.244.0.5', port: 8080 } } }));
    const [e] = t.drain();
    assert.deepEqual([e!.destination.id, e!.destination.name, e!.port], ['dns:api.example.com', 'api.example.com', 8080]);
  });

  test('different destinations, ports, protocols and sides are different edges', () => {
    const t = new EdgeTable();
    t.add(tcp({ serverPort: 443 }));
    t.add(tcp({ serverPort: 80 }));
    t.add(tcp({ remoteAddr: '10.0.0.3' }));
    t.add(tcp({ direction: 'inbound' }));
    assert.equal(t.drain().length, 4);
  });

  test('bounded: past maxEdges new edges fold into one overflow edge, counted', () => {
    const t = new EdgeTable(undefined, 3);
    for (let i = 0; i < 10; i++) t.add(tcp({ remoteAddr: `10.1.0.${i}`, bytesSent: 1 }));
    const edges = t.drain();
    assert.equal(edges.length, 4);
    const overflow = edges.find((e) => e.source.id === '(overflow)')!;
    assert.deepEqual([overflow.connections, overflow.bytesSent, overflow.port], [7, 7, 0]);
    assert.equal(t.overflowed, 7);
  });

  test('UDP: packets and bytes, the client from the record\'s direction', () => {
    const udp = (localPort: number, remotePort: number): UdpRecord => ({
      ts: '2026-01-01T00:00:00.000Z', proto: 'udp', family: 4, direction: localPort === 8125 ? 'inbound' : 'outbound', directionFrom: 'first-datagram',
      local: { addr: '10.0.0.1', port: localPort, pid: 7, comm: 'statsd', cgroupId: 1, netns: 1 },
      remote: { addr: '10.0.0.2', port: remotePort },
      packetsSent: 3, packetsReceived: 1, bytesSent: 300, bytesReceived: 10, intervalMs: 1000,
    });
    const t = new EdgeTable();
    t.add(udp(45000, 8125));
    t.add(udp(45001, 8125));
    t.add(udp(8125, 45002)); // the server's view of a third client
    const edges = t.drain();
    const client = edges.find((e) => e.observedBy === 'client')!;
    const server = edges.find((e) => e.observedBy === 'server')!;
    assert.deepEqual([client.port, client.packetsSent, client.packetsReceived, client.bytesSent, client.connections], [8125, 6, 2, 600, 0]);
    assert.deepEqual([server.port, server.packetsSent, server.packetsReceived, server.bytesSent, server.bytesReceived], [8125, 1, 3, 10, 300]);
  });

  test('Kubernetes ends: workloads key the edge, not pods; a Service alone, a node; locality kept', () => {
    const t = new EdgeTable();
    const checkout = { namespace: 'payments', pod: 'checkout-1', workload: 'checkout', workloadKind: 'Deployment', node: 'n1', zone: 'a' };
    const ledgerPod = (pod: string) => ({ namespace: 'payments', pod, workload: 'ledger', workloadKind: 'StatefulSet', service: 'ledger', node: 'n2', zone: 'b' });
    for (const pod of ['ledger-0', 'ledger-1', 'ledger-0']) {
      const r = tcp({ remoteAddr: '10.244.2.' + pod.slice(-1), serverPort: 5432, bytesSent: 10, locality: 'cross-zone' });
      r.local.k8s = checkout;
      r.remote.k8s = ledgerPod(pod);
      t.add(r);
    }
    const svcOnly = tcp({ remoteAddr: '10.96.0.10', serverPort: 80, locality: 'cluster' });
    svcOnly.local.k8s = checkout;
    svcOnly.remote.k8s = { namespace: 'payments', service: 'ledger' };
    t.add(svcOnly);
    const node = tcp({ remoteAddr: '192.168.0.3', serverPort: 10250, locality: 'same-zone' });
    node.remote.k8s = { node: 'n3', zone: 'a' };
    t.add(node);
    const edges = t.drain();
    assert.equal(edges.length, 3, 'two ledger pods are one workload');
    const toLedger = edges.find((e) => e.destination.id === 'payments/ledger')!;
    assert.deepEqual(toLedger.source, { id: 'payments/checkout', namespace: 'payments', workload: 'checkout', workloadKind: 'Deployment' });
    assert.deepEqual(toLedger.destination, { id: 'payments/ledger', namespace: 'payments', workload: 'ledger', workloadKind: 'StatefulSet', service: 'ledger' });
    assert.deepEqual([toLedger.connections, toLedger.bytesSent, toLedger.port, toLedger.locality], [3, 30, 5432, 'cross-zone']);
    const toSvc = edges.find((e) => e.destination.id === 'svc:payments/ledger')!;
    assert.deepEqual([toSvc.destination.service, toSvc.port, toSvc.locality], ['ledger', 80, 'cluster']);
    const toNode = edges.find((e) => e.destination.id === 'node:n3')!;
    assert.deepEqual([toNode.source.id, toNode.destination.node, toNode.destination.addr, toNode.locality], ['process:curl', 'n3', '192.168.0.3', 'same-zone']);
  });

  test('found from what records carry: shared answers, names and addresses lead to the same edges as their ends', () => {
    const t = new EdgeTable();
    const checkout = Object.freeze({ namespace: 'payments', pod: 'checkout-1', workload: 'checkout', workloadKind: 'Deployment' });
    const ledger = Object.freeze({ namespace: 'payments', pod: 'ledger-0', workload: 'ledger', workloadKind: 'StatefulSet' });
    const call = (k8s: typeof ledger, over: Partial<TcpRecord> = {}) => {
      const r = tcp({ remoteAddr: '10.244.2.1', serverPort: 5432, bytesSent: 1, ...over });
      r.local.k8s = checkout;
      r.remote.k8s = k8s;
      return r;
    };
    for (let i = 0; i < 3; i++) t.add(call(ledger)); // the same answer object: found in the index
    t.add(call({ ...ledger })); // an equal answer after a change of the cluster: a new key, the same edge
    t.add(call(ledger, { direction: 'inbound' })); // the other side: another edge
    // a DNS name spelt like an address is not that address
    t.add(tcp({ remoteAddr: '10.0.0.9', name: '10.0.0.9', remote: { addr: '10.0.0.9', port: 443, name: '10.0.0.9' } }));
    t.add(tcp({ remoteAddr: '10.0.0.9' }));
    t.add(tcp({ remoteAddr: '10.0.0.9' }));
    const edges = t.drain();
    const ids = edges.map((e) => `${e.observedBy} ${e.source.id} -> ${e.destination.id}:${e.port} x${e.connections}`).sort();
    assert.deepEqual(ids, [
      'client payments/checkout -> payments/ledger:5432 x4',
      'client process:curl -> 10.0.0.9:443 x2',
      'client process:curl -> dns:10.0.0.9:443 x1',
      'server payments/ledger -> payments/checkout:5432 x1',
    ]);
    // drained: the same records start new edges
    t.add(call(ledger));
    const [again] = t.drain();
    assert.equal(again!.connections, 1);
  });

  test('the index is bounded: answers renewed on every record still count exactly, and the table stays bounded', () => {
    const t = new EdgeTable(undefined, 3);
    for (let i = 0; i < 20_000; i++) {
      const r = tcp({ remoteAddr: '10.244.2.1', serverPort: 5432 + (i % 3), bytesSent: 1 });
      r.remote.k8s = { namespace: 'payments', pod: 'ledger-0', workload: 'ledger', workloadKind: 'StatefulSet' }; // a new object each time
      t.add(r);
    }
    t.add(tcp({ remoteAddr: '10.9.9.9' })); // a fourth edge: overflow
    const edges = t.drain();
    assert.equal(edges.length, 4);
    assert.deepEqual(edges.filter((e) => e.destination.id === 'payments/ledger').map((e) => e.connections), [6667, 6667, 6666]);
    assert.equal(t.overflowed, 1);
  });

  test('counts past the first rows, and nothing carried over to the next interval', () => {
    const t = new EdgeTable(undefined, 5000);
    for (let round = 0; round < 3; round++) {
      const n = round === 1 ? 3000 : 40; // the table grows, then gives memory back
      for (let i = 0; i < n; i++)
        for (let k = 0; k <= i % 3; k++) t.add(tcp({ remoteAddr: `10.${i >> 8}.${i & 255}.1`, bytesSent: i, bytesReceived: 1, srttUs: 60 + k, outcome: k === 2 ? 'reset' : 'closed' }));
      const edges = t.drain();
      assert.equal(edges.length, n);
      for (const [i, e] of edges.entries()) {
        const records = (i % 3) + 1;
        assert.equal(e.destination.id, `10.${i >> 8}.${i & 255}.1`, 'drained in the order made');
        assert.deepEqual([e.connections, e.bytesSent, e.bytesReceived, e.failed.reset], [records, i * records, records, records === 3 ? 1 : 0]);
        const h = e.rttUs.toJSON();
        assert.deepEqual([h.count, h.sum, h.counts[0], h.counts[1], h.counts.at(-1)], [records, 60 * records + (records * (records - 1)) / 2, 0, records, records]);
      }
    }
  });
});
