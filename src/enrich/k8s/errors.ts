/**
 * One line for an error from the client library: an API status (list
 * requests throw ApiException with the Status body), an HTTP status from a
 * watch, or a network error.
 */
export function describeKubeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
    const status = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
    if (status !== undefined) {
      const body = parseBody(e.body);
      const detail = body?.message ?? (typeof e.statusCode === 'number' && typeof e.message === 'string' ? e.message : undefined);
      return `HTTP ${status}${body?.reason ? ` ${body.reason}` : ''}${detail ? `: ${detail}` : ''}`;
    }
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

/** The HTTP status an error carries, if any. */
export function statusOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

function parseBody(body: unknown): { message?: string; reason?: string } | undefined {
  let b = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body ? { message: body } : undefined;
    }
  }
  if (!b || typeof b !== 'object') return undefined;
  const { message, reason } = b as { message?: unknown; reason?: unknown };
  return {
    ...(typeof message === 'string' ? { message } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}
