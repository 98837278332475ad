/** Poll `check` (every 200 ms) until it gives a value; throws naming `what` after `timeoutMs`. */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Poll `check` (every 250 ms) until it answers something truthy, through its
 * errors (a page still loading, a server not up yet); the timeout names the
 * last answer or error.
 */
export async function untilOk<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 250): Promise<T> {
  let last: unknown;
  const answer = async (): Promise<T | undefined> => {
    try {
      last = await check();
      return last ? (last as T) : undefined;
    } catch (e) {
      last = e;
      return undefined;
    }
  };
  return until(answer, what, timeoutMs, everyMs).catch((e: Error) => {
    throw new Error(`${e.message}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
  });
}
