/**
 * Fails when the TypeScript decoder (src/events/layout.ts) and the C structs and
 * enums of bpf/events.h disagree.
 *
 * The struct is checked against the BTF of the compiled object
 * (build-bpf/tcp.bpf.o, `bpftool -j btf dump file`): its size, its member names,
 * and every member's offset and size. Without bpftool or the object the test
 * skips, except under CI=true where it fails: CI must always check the layout.
 *
 * The enums are checked against the text of bpf/events.h, and against BTF too
 * when the object carries them. clang emits BTF only for types the program
 * uses as types; tcp.bpf.c uses the enumerators as plain constants (and stores
 * them in __u8 fields), so today none of the bpfagent_* enums is in the BTF and
 * the header text is what they are compared with.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COUNTER_NAMES,
  DIRECTION,
  EVENT_KIND,
  OUTCOME,
  OWNER_SOURCE,
  TCP_CLOSE_EVENT,
  STRUCT_LAYOUTS,
  NET_COUNTER_NAMES,
  CGROUP_COUNTER_NAMES,
  PACKET_DIRECTION,
  type FieldLayout,
  type StructLayout,
} from '../../src/events/layout.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const OBJECT = path.join(ROOT, 'build-bpf/tcp.bpf.o');
const HEADER = path.join(ROOT, 'bpf/events.h');
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

// ---------------------------------------------------------------------------
// BTF as bpftool prints it
// ---------------------------------------------------------------------------

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  values?: { name: string; val: number }[];
}

type BtfTypes = ReadonlyMap<number, BtfType>;

/** Byte size of BTF type `id`, following typedefs, qualifiers and arrays. */
function btfTypeSize(types: BtfTypes, id: number, seen = new Set<number>()): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type id ${id} not found`);
  if (seen.has(id)) throw new Error(`BTF type id ${id} refers to itself`);
  seen.add(id);
  switch (t.kind) {
    case 'INT':
    case 'ENUM':
    case 'ENUM64':
    case 'STRUCT':
    case 'UNION':
    case 'FLOAT':
      if (typeof t.size !== 'number') throw new Error(`BTF ${t.kind} ${id} has no size`);
      return t.size;
    case 'PTR':
      return 8; // BPF is a 64-bit target
    case 'ARRAY':
      if (typeof t.nr_elems !== 'number' || typeof t.type_id !== 'number')
        throw new Error(`BTF ARRAY ${id} lacks nr_elems or type_id`);
      return t.nr_elems * btfTypeSize(types, t.type_id, seen);
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
    case 'RESTRICT':
    case 'TYPE_TAG':
      if (typeof t.type_id !== 'number') throw new Error(`BTF ${t.kind} ${id} has no type_id`);
      return btfTypeSize(types, t.type_id, seen);
    default:
      throw new Error(`BTF kind ${t.kind} (id ${id}) has no size`);
  }
}

function btfIndex(dump: { types: BtfType[] }): BtfTypes {
  return new Map(dump.types.map((t) => [t.id, t]));
}

/**
 * Every way `layout` differs from the STRUCT of the same name in `types`, one
 * message each; [] when they agree.
 */
function compareLayoutWithBtf(layout: StructLayout, types: BtfTypes): string[] {
  const structs = [...types.values()].filter((t) => t.kind === 'STRUCT' && t.name === layout.name);
  if (structs.length !== 1) return [`struct ${layout.name}: ${structs.length} definitions in BTF, expected 1`];
  const s = structs[0]!;
  const problems: string[] = [];
  if (s.size !== layout.size) problems.push(`struct ${layout.name}: size is ${s.size} in C, ${layout.size} in TypeScript`);

  const members = s.members ?? [];
  const cNames = new Set(members.map((m) => m.name));
  for (const name of Object.keys(layout.fields))
    if (!cNames.has(name)) problems.push(`${layout.name}.${name}: in TypeScript, not in C`);

  for (const m of members) {
    const f = layout.fields[m.name];
    if (!f) {
      problems.push(`${layout.name}.${m.name}: in C, not in TypeScript`);
      continue;
    }
    if (m.bitfield_size) {
      problems.push(`${layout.name}.${m.name}: a ${m.bitfield_size}-bit bitfield in C; the decoder reads whole bytes`);
      continue;
    }
    if (m.bits_offset % 8 !== 0) {
      problems.push(`${layout.name}.${m.name}: bit offset ${m.bits_offset} is not byte aligned`);
      continue;
    }
    const offset = m.bits_offset / 8;
    const size = btfTypeSize(types, m.type_id);
    if (offset !== f.offset) problems.push(`${layout.name}.${m.name}: offset is ${offset} in C, ${f.offset} in TypeScript`);
    if (size !== f.size) problems.push(`${layout.name}.${m.name}: size is ${size} in C, ${f.size} in TypeScript`);
  }
  return problems;
}

/** Values of the ENUM named `name` in BTF, undefined when the object does not carry it. */
function btfEnum(types: BtfTypes, name: string): Map<string, number> | undefined {
  const e = [...types.values()].find((t) => (t.kind === 'ENUM' || t.kind === 'ENUM64') && t.name === name);
  return e && new Map((e.values ?? []).map((v) => [v.name, v.val]));
}

// ---------------------------------------------------------------------------
// bpf/events.h as text, for the enums
// ---------------------------------------------------------------------------

/** `enum name { A = 1, B, ... };` blocks of a C header: enum name -> constant -> value. */
function parseHeaderEnums(text: string): Map<string, Map<string, number>> {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/.*$/gm, ' ');
  const enums = new Map<string, Map<string, number>>();
  for (const m of code.matchAll(/\benum\s+(\w+)\s*\{([^}]*)\}/g)) {
    const values = new Map<string, number>();
    let next = 0;
    for (const entry of m[2]!.split(',')) {
      const e = entry.trim();
      if (!e) continue;
      const em = /^(\w+)\s*(?:=\s*(-?(?:0[xX][0-9a-fA-F]+|\d+))[uUlL]*)?$/.exec(e);
      if (!em) throw new Error(`enum ${m[1]}: cannot parse '${e}'`);
      const value = em[2] !== undefined ? Number(em[2]) : next;
      values.set(em[1]!, value);
      next = value + 1;
    }
    enums.set(m[1]!, values);
  }
  return enums;
}

// ---------------------------------------------------------------------------
// Loading the object's BTF
// ---------------------------------------------------------------------------

function findBpftool(): string | undefined {
  if (process.env.BPFTOOL) return process.env.BPFTOOL;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) if (d && existsSync(path.join(d, 'bpftool'))) return path.join(d, 'bpftool');
  return undefined;
}

type BtfLoad = { types: BtfTypes } | { unavailable: string };

const loaded = new Map<string, BtfLoad>();

function loadObjectBtf(object = OBJECT): BtfLoad {
  const cached = loaded.get(object);
  if (cached) return cached;
  const bpftool = findBpftool();
  let r: BtfLoad;
  if (!bpftool) r = { unavailable: 'bpftool not found (PATH, /usr/sbin)' };
  else if (!existsSync(object)) r = { unavailable: `${path.relative(ROOT, object)} does not exist` };
  else {
    // bpftool present and the object present: a failure here is a real failure, not a skip
    const json = execFileSync(bpftool, ['-j', 'btf', 'dump', 'file', object], {
      encoding: 'utf8',
      maxBuffer: 512 * 1024 * 1024,
    });
    r = { types: btfIndex(JSON.parse(json) as { types: BtfType[] }) };
  }
  loaded.set(object, r);
  return r;
}

/** The object's BTF; skips the test without it, or fails under CI. */
function requireBtf(t: TestContext, object = OBJECT): BtfTypes | undefined {
  const r = loadObjectBtf(object);
  if ('types' in r) return r.types;
  const reason = `${r.unavailable}: run 'bash scripts/build-bpf.sh' (needs clang and bpftool) to check the event layout`;
  if (IN_CI) assert.fail(`CI=true and the BPF layout cannot be checked: ${reason}`);
  t.skip(reason);
  return undefined;
}

// ---------------------------------------------------------------------------
// The comparer itself, on a synthetic BTF: proves it can report each mismatch
// ---------------------------------------------------------------------------

/** struct demo { __u8 a; __u8 pad[3]; __u32 b; const __u64 c; char s[4]; } = 20 bytes, BTF as bpftool prints it */
const DEMO_BTF = btfIndex({
  types: [
    { id: 1, kind: 'INT', name: 'unsigned char', size: 1 },
    { id: 2, kind: 'TYPEDEF', name: '__u8', type_id: 1 },
    { id: 3, kind: 'INT', name: 'unsigned int', size: 4 },
    { id: 4, kind: 'TYPEDEF', name: '__u32', type_id: 3 },
    { id: 5, kind: 'INT', name: 'unsigned long long', size: 8 },
    { id: 6, kind: 'TYPEDEF', name: '__u64', type_id: 5 },
    { id: 7, kind: 'CONST', type_id: 6 },
    { id: 8, kind: 'INT', name: '__ARRAY_SIZE_TYPE__', size: 4 },
    { id: 9, kind: 'ARRAY', type_id: 2, nr_elems: 3 },
    { id: 10, kind: 'INT', name: 'char', size: 1 },
    { id: 11, kind: 'ARRAY', type_id: 10, nr_elems: 4 },
    {
      id: 12,
      kind: 'STRUCT',
      name: 'demo',
      size: 24,
      members: [
        { name: 'a', type_id: 2, bits_offset: 0 },
        { name: 'pad', type_id: 9, bits_offset: 8 },
        { name: 'b', type_id: 4, bits_offset: 32 },
        { name: 'c', type_id: 7, bits_offset: 64 },
        { name: 's', type_id: 11, bits_offset: 128 },
      ],
    },
    { id: 13, kind: 'ENUM', name: 'demo_enum', size: 4, values: [{ name: 'DEMO_X', val: 3 }] },
  ],
});

const DEMO: StructLayout = {
  name: 'demo',
  size: 24,
  fields: {
    a: { offset: 0, size: 1 },
    pad: { offset: 1, size: 3 },
    b: { offset: 4, size: 4 },
    c: { offset: 8, size: 8 },
    s: { offset: 16, size: 4 },
  },
};

function withField(l: StructLayout, name: string, f: FieldLayout | undefined): StructLayout {
  const fields: Record<string, FieldLayout> = { ...l.fields };
  if (f) fields[name] = f;
  else delete fields[name];
  return { ...l, fields };
}

describe('compareLayoutWithBtf (on a synthetic BTF)', () => {
  test('resolves sizes through TYPEDEF, CONST, ARRAY and INT', () => {
    assert.equal(btfTypeSize(DEMO_BTF, 2), 1);
    assert.equal(btfTypeSize(DEMO_BTF, 7), 8);
    assert.equal(btfTypeSize(DEMO_BTF, 9), 3);
    assert.equal(btfTypeSize(DEMO_BTF, 11), 4);
    assert.equal(btfTypeSize(DEMO_BTF, 13), 4);
    assert.throws(() => btfTypeSize(DEMO_BTF, 99), /99 not found/);
  });

  test('a matching layout has no differences', () => {
    assert.deepEqual(compareLayoutWithBtf(DEMO, DEMO_BTF), []);
  });

  test('reports a shifted offset', () => {
    assert.deepEqual(compareLayoutWithBtf(withField(DEMO, 'b', { offset: 5, size: 4 }), DEMO_BTF), [
      'demo.b: offset is 4 in C, 5 in TypeScript',
    ]);
  });

  test('reports a wrong field size, including an array length', () => {
    assert.deepEqual(compareLayoutWithBtf(withField(DEMO, 'pad', { offset: 1, size: 2 }), DEMO_BTF), [
      'demo.pad: size is 3 in C, 2 in TypeScript',
    ]);
    assert.deepEqual(compareLayoutWithBtf(withField(DEMO, 'c', { offset: 8, size: 4 }), DEMO_BTF), [
      'demo.c: size is 8 in C, 4 in TypeScript',
    ]);
  });

  test('reports a wrong struct size', () => {
    assert.deepEqual(compareLayoutWithBtf({ ...DEMO, size: 20 }, DEMO_BTF), ['struct demo: size is 24 in C, 20 in TypeScript']);
  });

  test('reports fields missing on either side', () => {
    assert.deepEqual(compareLayoutWithBtf(withField(DEMO, 's', undefined), DEMO_BTF), ['demo.s: in C, not in TypeScript']);
    assert.deepEqual(compareLayoutWithBtf(withField(DEMO, 'extra', { offset: 20, size: 4 }), DEMO_BTF), [
      'demo.extra: in TypeScript, not in C',
    ]);
  });

  test('reports a struct the BTF does not have', () => {
    assert.deepEqual(compareLayoutWithBtf({ ...DEMO, name: 'nope' }, DEMO_BTF), [
      'struct nope: 0 definitions in BTF, expected 1',
    ]);
  });
});

describe('parseHeaderEnums', () => {
  test('reads explicit and implicit values, ignoring comments', () => {
    const enums = parseHeaderEnums(`
      /* enum fake { NOT_ME = 9 }; */
      enum a { A_X = 1, /* one */ A_Y, A_Z = 0x10, };
      enum b { B_ONE = 2 // trailing comment, with a comma
      };`);
    assert.deepEqual([...enums.keys()], ['a', 'b']);
    assert.deepEqual(Object.fromEntries(enums.get('a')!), { A_X: 1, A_Y: 2, A_Z: 16 });
    assert.deepEqual(Object.fromEntries(enums.get('b')!), { B_ONE: 2 });
  });
});

// ---------------------------------------------------------------------------
// The real thing
// ---------------------------------------------------------------------------

describe('tcp_close_event: src/events/layout.ts against the BTF of build-bpf/tcp.bpf.o', () => {
  test('struct size, member names, and every offset and size agree', (t) => {
    const types = requireBtf(t);
    if (!types) return;
    const s = [...types.values()].find((x) => x.kind === 'STRUCT' && x.name === 'tcp_close_event');
    assert.ok(s, 'struct tcp_close_event is not in the BTF of build-bpf/tcp.bpf.o');
    assert.equal(s.size, TCP_CLOSE_EVENT.size, 'sizeof(struct tcp_close_event)');
    assert.deepEqual(
      new Set((s.members ?? []).map((m) => m.name)),
      new Set(Object.keys(TCP_CLOSE_EVENT.fields)),
      'member names',
    );
    const fields: Readonly<Record<string, FieldLayout>> = TCP_CLOSE_EVENT.fields;
    for (const m of s.members ?? []) {
      const f = fields[m.name]!;
      assert.equal(m.bitfield_size ?? 0, 0, `${m.name} is a bitfield`);
      assert.equal(m.bits_offset / 8, f.offset, `offset of ${m.name}`);
      assert.equal(btfTypeSize(types, m.type_id), f.size, `size of ${m.name}`);
    }
    assert.deepEqual(compareLayoutWithBtf(TCP_CLOSE_EVENT, types), []);
  });

  test('a copy of the layout with one offset shifted is reported', (t) => {
    const types = requireBtf(t);
    if (!types) return;
    const shifted = withField(TCP_CLOSE_EVENT, 'bytes_sent', { offset: TCP_CLOSE_EVENT.fields.bytes_sent.offset + 4, size: 8 });
    assert.deepEqual(compareLayoutWithBtf(shifted, types), [
      `tcp_close_event.bytes_sent: offset is ${TCP_CLOSE_EVENT.fields.bytes_sent.offset} in C, ${
        TCP_CLOSE_EVENT.fields.bytes_sent.offset + 4
      } in TypeScript`,
    ]);
    const resized = withField(TCP_CLOSE_EVENT, 'comm', { offset: TCP_CLOSE_EVENT.fields.comm.offset, size: 15 });
    assert.deepEqual(compareLayoutWithBtf(resized, types), ['tcp_close_event.comm: size is 16 in C, 15 in TypeScript']);
  });

  test('the layout covers the struct exactly: no gaps, no overlaps', () => {
    // independent of BTF: catches a layout.ts edit that leaves a hole even before the object is rebuilt
    const fields = Object.entries(TCP_CLOSE_EVENT.fields as Readonly<Record<string, FieldLayout>>).sort(
      (a, b) => a[1].offset - b[1].offset,
    );
    let end = 0;
    for (const [name, f] of fields) {
      assert.equal(f.offset, end, `${name} starts where the previous field ends`);
      end = f.offset + f.size;
    }
    assert.equal(end, TCP_CLOSE_EVENT.size);
  });
});

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------

const headerEnums = parseHeaderEnums(readFileSync(HEADER, 'utf8'));

/**
 * Constants of one C enum: from bpf/events.h, and also checked equal to the
 * object's BTF when it carries the enum (today it does not; see the top).
 */
function cEnum(t: TestContext, name: string): Map<string, number> {
  const fromHeader = headerEnums.get(name);
  assert.ok(fromHeader, `enum ${name} not found in bpf/events.h`);
  const r = loadObjectBtf();
  if ('types' in r) {
    const fromBtf = btfEnum(r.types, name);
    if (fromBtf) assert.deepEqual(fromHeader, fromBtf, `enum ${name}: bpf/events.h and the object's BTF differ (stale build?)`);
    else t.diagnostic(`enum ${name} is not in the object's BTF; compared with bpf/events.h`);
  }
  return fromHeader;
}

/** { value: lowercased name without `prefix` } for every constant of a C enum. */
function byValue(values: Map<string, number>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of values) {
    assert.ok(name.startsWith(prefix), `${name} does not start with ${prefix}`);
    out[String(value)] = name.slice(prefix.length).toLowerCase();
  }
  return out;
}

/** BPFAGENT_LOSS_RINGBUF_FULL -> lossRingbufFull; STAT_ is dropped, and STAT_EVENTS is 'eventsSubmitted'. */
function counterJsName(cName: string): string {
  const rest = cName.replace(/^BPFAGENT_/, '').replace(/^STAT_/, '');
  if (rest === 'EVENTS') return 'eventsSubmitted';
  return rest.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

describe('enums of bpf/events.h against src/events/layout.ts', () => {
  test('counterJsName', () => {
    assert.equal(counterJsName('BPFAGENT_LOSS_SOCK_MAP_FULL'), 'lossSockMapFull');
    assert.equal(counterJsName('BPFAGENT_STAT_UNTRACKED_CLOSE'), 'untrackedClose');
    assert.equal(counterJsName('BPFAGENT_STAT_EVENTS'), 'eventsSubmitted');
  });

  test('bpfagent_event_kind = EVENT_KIND', (t) => {
    const values = cEnum(t, 'bpfagent_event_kind');
    const expected: Record<string, number> = {};
    for (const [name, value] of values) expected[name.replace(/^BPFAGENT_EVENT_/, '')] = value;
    assert.deepEqual({ ...EVENT_KIND }, expected);
  });

  test('bpfagent_direction = DIRECTION', (t) => {
    assert.deepEqual({ ...DIRECTION }, byValue(cEnum(t, 'bpfagent_direction'), 'BPFAGENT_DIR_'));
  });

  test('bpfagent_outcome = OUTCOME', (t) => {
    assert.deepEqual({ ...OUTCOME }, byValue(cEnum(t, 'bpfagent_outcome'), 'BPFAGENT_OUTCOME_'));
  });

  test('bpfagent_owner_source = OWNER_SOURCE', (t) => {
    assert.deepEqual({ ...OWNER_SOURCE }, byValue(cEnum(t, 'bpfagent_owner_source'), 'BPFAGENT_OWNER_'));
  });

  test('bpfagent_counter slots = COUNTER_NAMES, and COUNTER_MAX leaves room for them', (t) => {
    const values = new Map(cEnum(t, 'bpfagent_counter'));
    const max = values.get('BPFAGENT_COUNTER_MAX');
    assert.equal(typeof max, 'number', 'BPFAGENT_COUNTER_MAX is defined');
    values.delete('BPFAGENT_COUNTER_MAX');
    const bySlot: string[] = [];
    for (const [name, slot] of values) {
      assert.equal(bySlot[slot], undefined, `slot ${slot} used twice`);
      bySlot[slot] = counterJsName(name);
    }
    assert.deepEqual(bySlot, [...COUNTER_NAMES], 'counter slots, in order (a hole shows as undefined)');
    assert.ok(max! >= COUNTER_NAMES.length, `BPFAGENT_COUNTER_MAX ${max} < ${COUNTER_NAMES.length} counters`);
  });
});

// ---------------------------------------------------------------------------
// Every struct the decoders read, against the object that carries it
// ---------------------------------------------------------------------------

const NET_OBJECT = path.join(ROOT, 'build-bpf/net.bpf.o');
const OBJECT_OF: Record<string, string> = {
  tcp_close_event: OBJECT,
  udp_flow_key: NET_OBJECT,
  udp_flow_value: NET_OBJECT,
  udp_flow_cached: NET_OBJECT,
  udp_flow_cache: NET_OBJECT,
  dns_event: NET_OBJECT,
  cgroup_mkdir_event: path.join(ROOT, 'build-bpf/cgroup.bpf.o'),
};

describe('every layout in STRUCT_LAYOUTS against its object\'s BTF', () => {
  for (const layout of STRUCT_LAYOUTS) {
    test(`${layout.name}: size, members, offsets and sizes agree`, (t) => {
      const object = OBJECT_OF[layout.name];
      assert.ok(object, `no object known for ${layout.name}: add it to OBJECT_OF`);
      const types = requireBtf(t, object);
      if (!types) return;
      assert.deepEqual(compareLayoutWithBtf(layout, types), []);
    });

    test(`${layout.name}: the layout covers the struct exactly`, () => {
      const fields = Object.entries(layout.fields as Readonly<Record<string, FieldLayout>>).sort((a, b) => a[1].offset - b[1].offset);
      let end = 0;
      for (const [name, f] of fields) {
        assert.equal(f.offset, end, `${layout.name}.${name} starts where the previous field ends`);
        end = f.offset + f.size;
      }
      assert.equal(end, layout.size);
    });
  }

  test('bpfagent_net_counter slots = NET_COUNTER_NAMES', (t) => {
    const values = new Map(cEnum(t, 'bpfagent_net_counter'));
    values.delete('BPFAGENT_NET_COUNTER_MAX');
    const bySlot: string[] = [];
    for (const [name, slot] of values) {
      // BPFAGENT_NET_LOSS_DNS_RINGBUF_FULL -> lossDnsRingbufFull; STAT_UDP_INSERTS_0 -> udpInserts0; STAT_DNS_EVENTS -> dnsEventsSubmitted
      const rest = name.replace(/^BPFAGENT_NET_/, '').replace(/^STAT_/, '');
      const js = rest === 'DNS_EVENTS' ? 'dnsEventsSubmitted' : rest.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
      bySlot[slot] = js;
    }
    assert.deepEqual(bySlot, [...NET_COUNTER_NAMES]);
  });

  test('bpfagent_cgroup_counter slots = CGROUP_COUNTER_NAMES', (t) => {
    const values = new Map(cEnum(t, 'bpfagent_cgroup_counter'));
    values.delete('BPFAGENT_CGROUP_COUNTER_MAX');
    // BPFAGENT_CGROUP_LOSS_RINGBUF_FULL -> lossCgroupRingbufFull, STAT_EVENTS -> cgroupEventsSubmitted, STAT_TRUNCATED -> cgroupPathsTruncated
    const js: Record<string, string> = { LOSS_RINGBUF_FULL: 'lossCgroupRingbufFull', STAT_EVENTS: 'cgroupEventsSubmitted', STAT_TRUNCATED: 'cgroupPathsTruncated' };
    const bySlot: string[] = [];
    for (const [name, slot] of values) bySlot[slot] = js[name.replace(/^BPFAGENT_CGROUP_/, '')] ?? name;
    assert.deepEqual(bySlot, [...CGROUP_COUNTER_NAMES]);
  });

  test('bpfagent_packet_direction = PACKET_DIRECTION', (t) => {
    const expected: Record<string, number> = {};
    for (const [name, value] of cEnum(t, 'bpfagent_packet_direction')) expected[name.replace(/^BPFAGENT_PKT_/, '')] = value;
    assert.deepEqual({ ...PACKET_DIRECTION }, expected);
  });
});
