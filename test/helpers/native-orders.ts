/**
 * Exercises the native addon's handles in every order of detach(link),
 * ringStop(ring) and close(object), each twice (the 90 orderings of that
 * multiset), on a freshly loaded and attached TCP object each time; then
 * the orders in which the garbage collector finalizes handles: the object's
 * handle collected while its link and ring handles live on, and the other
 * way round. Run as a program (under AddressSanitizer by the test, which
 * then sees any use after free):
 *
 *   node --expose-gc native-orders.js ADDON.node
 *
 * Prints one JSON line: { orders, calls, errors: [...] } and exits 0 when
 * no call threw and every handle answered as it should.
 */
import { createRequire } from 'node:module';
import { setImmediate as tick } from 'node:timers/promises';
import type { BpfNative, LinkHandle, ObjectHandle, RingHandle } from '../../src/bpf/native.js';
import { TCP_OBJECT } from '../../src/bpf/probe-load.js';

const native = createRequire(import.meta.url)(process.argv[2]!) as BpfNative;
const PROGRAM = process.argv[3] ?? 'btf_state';
const errors: string[] = [];
let calls = 0;

interface Handles {
  obj: ObjectHandle;
  link: LinkHandle;
  ring: RingHandle;
}

async function loaded(): Promise<Handles> {
  const obj = native.open(TCP_OBJECT, null);
  for (const p of native.programs(obj)) native.setAutoload(obj, p.name, p.name === PROGRAM);
  const fd = native.ringCreate('events', 4096);
  native.reuseMapFd(obj, 'events', fd);
  native.closeFd(fd);
  await native.loadAsync(obj);
  const link = native.attach(obj, PROGRAM);
  const ring = native.ringOpen(obj, 'events', () => undefined, 5);
  return { obj, link, ring };
}

const OPS = { detach: (h: Handles) => native.detach(h.link), ringStop: (h: Handles) => native.ringStop(h.ring), close: (h: Handles) => native.close(h.obj) };
type Op = keyof typeof OPS;

function call(what: string, f: () => void): void {
  calls++;
  try {
    f();
  } catch (e) {
    errors.push(`${what}: ${(e as Error).message}`);
  }
}

/** Every distinct ordering of the multiset. */
function orderings(items: Op[]): Op[][] {
  if (!items.length) return [[]];
  const out: Op[][] = [];
  for (const first of new Set(items)) {
    const rest = [...items];
    rest.splice(rest.indexOf(first), 1);
    for (const tail of orderings(rest)) out.push([first, ...tail]);
  }
  return out;
}

const gc = (globalThis as { gc?: () => void }).gc;
async function collect(): Promise<void> {
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await tick();
  }
}

let orders = 0;
for (const order of orderings(['detach', 'detach', 'ringStop', 'ringStop', 'close', 'close'])) {
  const h = await loaded();
  for (const op of order) call(`${order.join(',')}: ${op}`, () => OPS[op](h));
  // a closed object answers with a clear error, not a crash
  calls++;
  try {
    native.maps(h.obj);
    errors.push(`${order.join(',')}: maps() after close() did not throw`);
  } catch (e) {
    if (!/already closed/.test((e as Error).message)) errors.push(`${order.join(',')}: maps() after close(): ${(e as Error).message}`);
  }
  orders++;
}

// the object's handle collected first (its finalizer frees the object), then the link and ring handles used
{
  let h: Partial<Handles> | undefined = await loaded();
  const { link, ring } = h;
  h.obj = undefined;
  h = undefined;
  await collect();
  call('gc(object): detach', () => native.detach(link!));
  call('gc(object): ringStop', () => native.ringStop(ring!));
  orders++;
}
// the link and ring handles collected first, then the object closed
{
  const h: Partial<Handles> = await loaded();
  h.link = undefined;
  h.ring = undefined;
  await collect();
  call('gc(link, ring): close', () => native.close(h.obj!));
  orders++;
}
// everything collected without any call
{
  let h: Handles | undefined = await loaded();
  void h;
  h = undefined;
  await collect();
  orders++;
}
await collect();

process.stdout.write(JSON.stringify({ orders, calls, errors }) + '\n');
process.exitCode = errors.length ? 1 : 0;
