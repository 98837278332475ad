/**
 * Which names the kernel's BTF holds, read from its string section (every
 * type's name is there). For choosing among hook variants where tracefs,
 * the other way to see which tracepoints a kernel has, is not mounted: in a
 * container, /sys/kernel/tracing is an empty directory unless the host's is
 * mounted into it, and mounting one needs CAP_SYS_ADMIN. A tracepoint NAME
 * can be attached as tp_btf exactly when BTF has the typedef
 * `btf_trace_NAME` (what libbpf looks up for it).
 */
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;
/** struct btf_header: magic u16, version u8, flags u8, hdr_len u32, type_off u32, type_len u32, str_off u32, str_len u32 */
const HEADER_BYTES = 24;

/** The names of `names` that `btf` (raw BTF, as /sys/kernel/btf/vmlinux) holds; undefined when it is not BTF. */
export function btfNamesIn(btf: Buffer, names: readonly string[]): Set<string> | undefined {
  if (btf.length < HEADER_BYTES || btf.readUInt16LE(0) !== BTF_MAGIC) return undefined;
  const hdrLen = btf.readUInt32LE(4);
  const start = hdrLen + btf.readUInt32LE(16);
  const end = start + btf.readUInt32LE(20);
  if (end > btf.length || start < hdrLen) return undefined;
  const strings = btf.subarray(start, end);
  // each string is NUL-terminated and the section starts with the empty string: a whole name sits between two NULs
  return new Set(names.filter((n) => strings.indexOf(`\0${n}\0`, 0, 'latin1') >= 0));
}

/** btfNamesIn for a file; undefined when it cannot be read or is not BTF. */
export function btfFileHasNames(path: string, names: readonly string[]): Set<string> | undefined {
  let btf: Buffer;
  try {
    btf = readFileSync(path);
  } catch {
    return undefined;
  }
  return btfNamesIn(btf, names);
}
