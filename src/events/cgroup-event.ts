/** Decodes struct cgroup_mkdir_event: a cgroup v2 directory made, its id and path. */
import { CGROUP_MKDIR_EVENT } from './layout.js';
import { u16, u64 } from './read.js';

export interface CgroupMade {
  /** the cgroup's id, as records carry it (`cgroupId`) */
  id: number;
  /** from the hierarchy's root, e.g. /docker/<id>; undefined when the kernel had to cut it */
  path: string | undefined;
}

const F = CGROUP_MKDIR_EVENT.fields;

export function decodeCgroupMkdir(b: Buffer, off: number): CgroupMade | undefined {
  const id = u64(b, off + F.cgroup_id.offset);
  const len = u16(b, off + F.path_len.offset);
  if (!(id > 0) || len > F.path.size - 1) return undefined;
  const start = off + F.path.offset;
  const path = b.toString('utf8', start, start + len);
  // a cgroup v2 path from the root is absolute; anything else is not one
  if (!path.startsWith('/')) return undefined;
  return { id, path: b[off + F.truncated.offset] ? undefined : path };
}
