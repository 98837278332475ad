/**
 * Where x86-64 kernels map all of memory: the addresses of the kernel's
 * page_offset_base and vmemmap_base variables, from /proc/kallsyms. With
 * them the UDP/DNS programs read packets' page fragments where tracing
 * programs have no skb dynptrs (before Linux 6.12): see net.bpf.c's
 * direct_map. The two are next to each other in kallsyms (both in
 * arch/x86/mm/kaslr.c); reading stops once both are found.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface DirectMap {
  /** addresses of the variables, not their values (the programs read those) */
  pageOffsetBase: bigint;
  vmemmapBase: bigint;
}

/** undefined where this is not x86-64, or kallsyms hides addresses (kptr_restrict without CAP_SYSLOG) or lacks them. */
export async function findDirectMap(kallsyms = '/proc/kallsyms', arch: string = process.arch): Promise<DirectMap | undefined> {
  if (arch !== 'x64') return undefined;
  const found: Partial<Record<'page_offset_base' | 'vmemmap_base', bigint>> = {};
  const stream = createReadStream(kallsyms);
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      // "ffffffff8b8f3a28 D page_offset_base"
      const name = line.slice(line.lastIndexOf(' ') + 1);
      if (name !== 'page_offset_base' && name !== 'vmemmap_base') continue;
      found[name] = BigInt(`0x${line.slice(0, line.indexOf(' '))}`);
      if (found.page_offset_base !== undefined && found.vmemmap_base !== undefined) break;
    }
  } catch {
    return undefined;
  } finally {
    lines.close();
    stream.destroy();
  }
  const { page_offset_base: pageOffsetBase, vmemmap_base: vmemmapBase } = found;
  return pageOffsetBase && vmemmapBase ? { pageOffsetBase, vmemmapBase } : undefined;
}
