/**
 * A one-node Kafka broker on 127.0.0.1 that speaks the wire protocol as far
 * as a producer needs: ApiVersions (v0-v2), Metadata (v1-v6) and Produce
 * (v3-v7, record batches of magic 2). By default it offers the highest of
 * these, which kafkajs 2.2.4 then uses, as it would with Kafka 2.1 and later
 * (Produce v7, Metadata v6); `maxVersions` narrows the offer. Produce requests are decoded completely: the
 * batch header, its CRC-32C (checked: a mismatch is answered CORRUPT_MESSAGE),
 * the compression codec (none, or gzip through zlib; others are answered
 * UNSUPPORTED_COMPRESSION_TYPE), and each record's varint-encoded fields,
 * key, value and headers. Every topic asked for exists, with `partitions`
 * partitions led by this broker. Nothing is stored beyond `messages`.
 *
 * Written from the protocol's published description (request/response
 * layouts, record batch format); not a broker: no replication, no fetch, no
 * consumer groups, no transactions, no flexible (tagged-field) versions.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { closeServer, listenLocal } from './listen.js';

export interface ReceivedMessage {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  timestamp: number;
  headers: Record<string, string>;
  /** compression codec of the batch it came in: 0 none, 1 gzip */
  codec: number;
}

export interface ProduceLog {
  acks: number;
  timeoutMs: number;
  batches: { topic: string; partition: number; codec: number; records: number; crcOk: boolean; magic: number }[];
}

const API_PRODUCE = 0;
const API_METADATA = 3;
const API_VERSIONS = 18;

const UNSUPPORTED_VERSION = 35;
const CORRUPT_MESSAGE = 2;
const UNSUPPORTED_COMPRESSION_TYPE = 76;

export class FakeKafkaBroker {
  readonly messages: ReceivedMessage[] = [];
  readonly produces: ProduceLog[] = [];
  /** every request seen: "ApiName vN" */
  readonly requests: string[] = [];
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  private offsets = new Map<string, number>();
  port = 0;
  /** the port Metadata answers name for this broker (a proxy's in front of it); default its own */
  advertisedPort: number | undefined;
  /** answer every produce with this error code (0: success) */
  produceError = 0;
  /** allow_auto_topic_creation of each Metadata request (v4+) */
  readonly autoCreate: boolean[] = [];
  private readonly supported: Record<number, [number, number]>;

  constructor(
    readonly partitions = 3,
    maxVersions: { produce?: number; metadata?: number } = {},
  ) {
    this.supported = {
      [API_PRODUCE]: [3, Math.min(7, maxVersions.produce ?? 7)],
      [API_METADATA]: [1, Math.min(6, maxVersions.metadata ?? 6)],
      [API_VERSIONS]: [0, 2],
    };
  }

  /** Listen (on `port`, or the one used before, or any free one). */
  async start(port = this.port): Promise<number> {
    const server = createServer((s) => this.serve(s));
    this.port = await listenLocal(server, port);
    this.server = server;
    return this.port;
  }

  /** Go away: refuse new connections and drop the open ones. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await closeServer(server, this.sockets);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const size = buf.readInt32BE(0);
        if (buf.length < 4 + size) break;
        const frame = buf.subarray(4, 4 + size);
        buf = buf.subarray(4 + size);
        let reply: Buffer | undefined;
        try {
          reply = this.handle(frame);
        } catch (e) {
          socket.destroy(e as Error);
          return;
        }
        if (reply) {
          const head = Buffer.alloc(4);
          head.writeInt32BE(reply.length);
          socket.write(Buffer.concat([head, reply]));
        }
      }
    });
  }

  /** One request frame (after its size) -> the response frame (after its size), or none (acks 0). */
  private handle(frame: Buffer): Buffer | undefined {
    const r = new Reader(frame);
    const apiKey = r.int16();
    const version = r.int16();
    const correlationId = r.int32();
    r.string(); // client id
    const w = new Writer().int32(correlationId);
    const SUPPORTED = this.supported;
    const range = SUPPORTED[apiKey];
    this.requests.push(`${apiName(apiKey)} v${version}`);
    if (apiKey === API_VERSIONS) {
      if (!range || version > range[1]) return w.int16(UNSUPPORTED_VERSION).int32(0).done();
      const keys = Object.keys(SUPPORTED).map(Number);
      w.int16(0).int32(keys.length);
      for (const k of keys) w.int16(k).int16(SUPPORTED[k]![0]).int16(SUPPORTED[k]![1]);
      if (version >= 1) w.int32(0); // throttle time
      return w.done();
    }
    if (!range || version < range[0] || version > range[1]) throw new Error(`fake broker: ${apiName(apiKey)} v${version} not supported`);
    if (apiKey === API_METADATA) return this.metadata(r, w, version);
    return this.produce(r, w, version);
  }

  private metadata(r: Reader, w: Writer, v: number): Buffer {
    const n = r.int32(); // -1 (v1+): all topics, of which this broker keeps none
    const topics: string[] = [];
    for (let i = 0; i < n; i++) topics.push(r.string()!);
    if (v >= 4) this.autoCreate.push(r.int8() !== 0);
    if (v >= 3) w.int32(0); // throttle time
    // brokers: just this one
    w.int32(1).int32(0).string('127.0.0.1').int32(this.advertisedPort ?? this.port).string(null);
    if (v >= 2) w.string('fake-cluster');
    w.int32(0); // controller id
    w.int32(topics.length);
    for (const t of topics) {
      w.int16(0).string(t).int8(0).int32(this.partitions);
      for (let p = 0; p < this.partitions; p++) {
        // error, id, leader, replicas [0], isr [0], (v5+) offline replicas []
        w.int16(0).int32(p).int32(0).int32(1).int32(0).int32(1).int32(0);
        if (v >= 5) w.int32(0);
      }
    }
    return w.done();
  }

  private produce(r: Reader, w: Writer, v: number): Buffer | undefined {
    r.string(); // transactional id
    const acks = r.int16();
    const timeoutMs = r.int32();
    const log: ProduceLog = { acks, timeoutMs, batches: [] };
    const answers: { topic: string; parts: { partition: number; error: number; baseOffset: number }[] }[] = [];
    const nTopics = r.int32();
    for (let i = 0; i < nTopics; i++) {
      const topic = r.string()!;
      const parts: { partition: number; error: number; baseOffset: number }[] = [];
      const nParts = r.int32();
      for (let j = 0; j < nParts; j++) {
        const partition = r.int32();
        const set = r.bytes() ?? Buffer.alloc(0);
        const key = `${topic}/${partition}`;
        const base = this.offsets.get(key) ?? 0;
        const decoded = this.recordSet(topic, partition, set, log);
        const records = decoded.records;
        const error = decoded.error || this.produceError;
        if (!error) {
          records.forEach((m, k) => this.messages.push({ ...m, offset: base + k }));
          this.offsets.set(key, base + records.length);
        }
        parts.push({ partition, error, baseOffset: error ? -1 : base });
      }
      answers.push({ topic, parts });
    }
    this.produces.push(log);
    if (acks === 0) return undefined;
    w.int32(answers.length);
    for (const a of answers) {
      w.string(a.topic).int32(a.parts.length);
      for (const p of a.parts) {
        w.int32(p.partition).int16(p.error).int64(p.baseOffset).int64(-1); // log append time: none
        if (v >= 5) w.int64(0); // log start offset
      }
    }
    return w.int32(0).done(); // throttle time
  }

  /** The record batches of one partition's record set. */
  private recordSet(topic: string, partition: number, set: Buffer, log: ProduceLog): { error: number; records: Omit<ReceivedMessage, 'offset'>[] } {
    const records: Omit<ReceivedMessage, 'offset'>[] = [];
    let off = 0;
    while (off + 12 <= set.length) {
      const batchLength = set.readInt32BE(off + 8);
      const batch = set.subarray(off, off + 12 + batchLength);
      off += 12 + batchLength;
      const b = new Reader(batch);
      b.int64(); // base offset
      b.int32(); // batch length
      b.int32(); // partition leader epoch
      const magic = b.int8();
      const crc = b.uint32();
      const crcOk = crc32c(batch.subarray(b.pos)) === crc;
      const attributes = b.int16();
      const codec = attributes & 7;
      b.int32(); // last offset delta
      const firstTimestamp = b.int64();
      b.int64(); // max timestamp
      b.int64(); // producer id
      b.int16(); // producer epoch
      b.int32(); // base sequence
      const count = b.int32();
      log.batches.push({ topic, partition, codec, records: count, crcOk, magic });
      if (magic !== 2 || !crcOk) return { error: CORRUPT_MESSAGE, records: [] };
      let body = batch.subarray(b.pos);
      if (codec === 1) body = gunzipSync(body);
      else if (codec !== 0) return { error: UNSUPPORTED_COMPRESSION_TYPE, records: [] };
      const rr = new Reader(body);
      for (let i = 0; i < count; i++) {
        const len = rr.varint();
        const end = rr.pos + len;
        rr.int8(); // attributes
        const tsDelta = rr.varint();
        rr.varint(); // offset delta
        const key = rr.varbytes();
        const value = rr.varbytes();
        const headers: Record<string, string> = {};
        const nh = rr.varint();
        for (let h = 0; h < nh; h++) headers[rr.varbytes()!.toString()] = rr.varbytes()?.toString() ?? '';
        if (rr.pos !== end) throw new Error(`fake broker: record ${i} is ${len} bytes long but its fields took ${len + rr.pos - end}`);
        records.push({ topic, partition, key: key?.toString() ?? null, value: value?.toString() ?? null, timestamp: firstTimestamp + tsDelta, headers, codec });
      }
    }
    return { error: 0, records };
  }
}

function apiName(k: number): string {
  return k === API_PRODUCE ? 'Produce' : k === API_METADATA ? 'Metadata' : k === API_VERSIONS ? 'ApiVersions' : `api${k}`;
}

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  int8(): number {
    return this.b.readInt8((this.pos += 1) - 1);
  }
  int16(): number {
    return this.b.readInt16BE((this.pos += 2) - 2);
  }
  int32(): number {
    return this.b.readInt32BE((this.pos += 4) - 4);
  }
  uint32(): number {
    return this.b.readUInt32BE((this.pos += 4) - 4);
  }
  int64(): number {
    return Number(this.b.readBigInt64BE((this.pos += 8) - 8));
  }
  string(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    return this.b.toString('utf8', this.pos, (this.pos += n));
  }
  bytes(): Buffer | null {
    const n = this.int32();
    if (n < 0) return null;
    return this.b.subarray(this.pos, (this.pos += n));
  }
  /** zigzag varint (up to 64 bits) */
  varint(): number {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const byte = this.b[this.pos++];
      if (byte === undefined) throw new Error('fake broker: truncated varint');
      v |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
      shift += 7n;
    }
    return Number((v >> 1n) ^ -(v & 1n));
  }
  varbytes(): Buffer | null {
    const n = this.varint();
    if (n < 0) return null;
    return this.b.subarray(this.pos, (this.pos += n));
  }
}

class Writer {
  private parts: Buffer[] = [];
  private put(n: number, f: (b: Buffer) => void): this {
    const b = Buffer.alloc(n);
    f(b);
    this.parts.push(b);
    return this;
  }
  int8(v: number): this {
    return this.put(1, (b) => b.writeInt8(v));
  }
  int16(v: number): this {
    return this.put(2, (b) => b.writeInt16BE(v));
  }
  int32(v: number): this {
    return this.put(4, (b) => b.writeInt32BE(v));
  }
  int64(v: number): this {
    return this.put(8, (b) => b.writeBigInt64BE(BigInt(v)));
  }
  string(s: string | null): this {
    if (s === null) return this.int16(-1);
    const b = Buffer.from(s);
    return this.int16(b.length).put(b.length, (x) => b.copy(x));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as record batches carry. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
