/**
 * Which end of a UDP flow is the client, decided as connection tracking and
 * flow exporters decide it: the end that sent the flow's first datagram.
 * The kernel tells, per flow and interval, when the first datagram was sent
 * and when the first was received (struct udp_flow_value), and whether the
 * socket was made while the programs ran (so that its flows' first datagrams
 * were seen). The kernel's tables are drained every interval, so the
 * decision taken in a flow's first interval is remembered here, for as many
 * flows as the kernel counts in one interval; a flow forgotten to make room
 * and seen again is decided afresh by that interval's first datagram, and
 * counted in `forgotten`. Where the first datagram was not seen (a socket
 * older than the agent), the ports decide (directionByPorts).
 */
import { UDP_FLOW_KEY, UDP_FLOW_VALUE } from './layout.js';
import type { MapDump } from '../bpf/native.js';
import type { UdpRecord } from './records.js';

const K = UDP_FLOW_KEY.fields;
const V = UDP_FLOW_VALUE.fields;

/** Below this, a port the IANA assigns to services. */
const WELL_KNOWN_PORTS = 1024;
/** Where the kernel picks ports by default (ip_local_port_range 32768-60999). */
const EPHEMERAL_PORTS = 32768;

export type UdpDirection = Pick<UdpRecord, 'direction' | 'directionFrom'>;

const decided = (outbound: boolean, firstDatagram: boolean): UdpDirection =>
  Object.freeze({ direction: outbound ? 'outbound' : 'inbound', directionFrom: firstDatagram ? 'first-datagram' : 'ports' });
const OUT_FIRST = decided(true, true);
const IN_FIRST = decided(false, true);
const OUT_PORTS = decided(true, false);
const IN_PORTS = decided(false, false);

/**
 * The tie-break, for flows whose first datagram was not seen: a port the
 * kernel chose (no bind(), or bind() to port 0) is a client's; a port the
 * process bound itself is a server's, unless the peer's port is a
 * well-known one (below 1024) and this one is not, or this one is in the
 * ephemeral range and the peer's is not (a client that picks its own
 * source port, as resolvers do).
 */
export function directionByPorts(portBound: boolean, lport: number, rport: number): 'outbound' | 'inbound' {
  if (!portBound) return 'outbound';
  if (rport === 0) return 'inbound';
  if (rport < WELL_KNOWN_PORTS && lport >= WELL_KNOWN_PORTS) return 'outbound';
  return lport >= EPHEMERAL_PORTS && rport < EPHEMERAL_PORTS ? 'outbound' : 'inbound';
}

/** A flow as one end sees it, whatever process sends or reads: namespace, family, both addresses and ports. */
function flowId(keys: Buffer, at: number): string {
  return (
    keys.toString('latin1', at + K.netns.offset, at + K.netns.offset + 4) +
    keys.toString('latin1', at + K.lport.offset, at + K.family.offset + 1) +
    keys.toString('latin1', at + K.laddr.offset, at + K.raddr.offset + 16)
  );
}

interface FirstSeen {
  sent: bigint;
  received: bigint;
  seen: boolean;
}

export class UdpDirections {
  /** flow id -> outbound, decided by the first datagram; oldest first (a Map keeps insertion order) */
  private readonly known = new Map<string, boolean>();
  /** decisions dropped to stay within capacity */
  forgotten = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`UDP direction memory: capacity ${capacity}, expected at least 1`);
  }

  get size(): number {
    return this.known.size;
  }

  /** The direction of each entry of one drained interval (keys and values as decodeUdpFlows reads them). */
  decide(dump: MapDump, keySize: number, valueSize: number): UdpDirection[] {
    const ids: string[] = [];
    // a flow new to the memory: its first datagram is the earliest of the interval's entries (one per process)
    const fresh = new Map<string, FirstSeen>();
    for (let i = 0; i < dump.count; i++) {
      const id = flowId(dump.keys, i * keySize);
      ids.push(id);
      if (this.known.has(id)) continue;
      const vo = i * valueSize;
      const v = dump.values;
      const sent = v.readBigUInt64LE(vo + V.first_sent_ns.offset);
      const received = v.readBigUInt64LE(vo + V.first_received_ns.offset);
      const seen = v[vo + V.seen_from_start.offset] !== 0;
      const had = fresh.get(id);
      if (!had) {
        fresh.set(id, { sent, received, seen });
        continue;
      }
      if (sent && (!had.sent || sent < had.sent)) had.sent = sent;
      if (received && (!had.received || received < had.received)) had.received = received;
      had.seen ||= seen;
    }
    const firstNow = new Map<string, boolean>();
    for (const [id, f] of fresh) {
      if (!f.seen || (!f.sent && !f.received)) continue; // the ports decide, each interval alike
      firstNow.set(id, f.sent !== 0n && (f.received === 0n || f.sent < f.received));
    }
    const out: UdpDirection[] = [];
    for (let i = 0; i < dump.count; i++) {
      const id = ids[i]!;
      const outbound = this.known.get(id) ?? firstNow.get(id);
      if (outbound !== undefined) {
        out.push(outbound ? OUT_FIRST : IN_FIRST);
        continue;
      }
      const ko = i * keySize;
      const k = dump.keys;
      const byPorts = directionByPorts(k[ko + K.port_bound.offset] !== 0, k.readUInt16LE(ko + K.lport.offset), k.readUInt16LE(ko + K.rport.offset));
      out.push(byPorts === 'outbound' ? OUT_PORTS : IN_PORTS);
    }
    // seen again: the last to be forgotten; then the new ones
    for (const id of ids) {
      const outbound = this.known.get(id);
      if (outbound === undefined) continue;
      this.known.delete(id);
      this.known.set(id, outbound);
    }
    for (const [id, outbound] of firstNow) this.remember(id, outbound);
    return out;
  }

  private remember(id: string, outbound: boolean): void {
    this.known.set(id, outbound);
    if (this.known.size <= this.capacity) return;
    this.known.delete(this.known.keys().next().value!);
    this.forgotten++;
  }
}
