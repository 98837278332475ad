/**
 * Who may read the agent over HTTP (docs/run.md, "Access").
 *
 * - With `server.tokenFile`, every path but `server.openPaths` (by default
 *   /metrics, /healthz, /readyz) and the web UI's static files (code, no
 *   data: the page asks for the token) needs `Authorization: Bearer <token>`.
 *   The file is re-read when it changes (a Kubernetes Secret mounted as a
 *   volume is updated in place), checked at most every few seconds.
 * - Without a token the listener must be on loopback, unless
 *   `server.allowUnauthenticated` says otherwise; start-up refuses it.
 * - On loopback, a request whose Host header is not a loopback name or
 *   address is refused: a web page the user opened elsewhere that made its own
 *   name resolve to 127.0.0.1 (DNS rebinding) must not read the map.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UsageError } from '../util/errors.js';

export interface AccessConfig {
  tokenFile: string | null;
  openPaths: readonly string[];
  allowUnauthenticated: boolean;
}

/** host:port as written in messages: [v6]:port */
export function showListen(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** 127.0.0.0/8, ::1, ::ffff:127.x, "localhost" and names under .localhost (RFC 6761). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    // canonical form: 0:0:0:0:0:0:0:1 is ::1, ::ffff:127.0.0.1 is ::ffff:7f00:1
    const c = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    return c === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(c);
  }
  return false;
}

/** The host part of a Host header ("127.0.0.1:9745", "[::1]:9745", "localhost"); undefined when malformed. */
export function hostOfHeader(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::\d{1,5})?$/.exec(header.trim());
  return m ? (m[1] ?? m[2]) : undefined;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** How often, at most, the token file is looked at for a change. */
const TOKEN_RECHECK_MS = 5_000;

/** A bearer token read from a file, re-read when the file changes; the last good one is kept if it turns bad. */
export class TokenFile {
  private token: Buffer;
  private stamp: string;
  private checkedMs: number;
  /** reason the file could not be re-read, when it could not */
  lastError: string | undefined;

  constructor(
    readonly file: string,
    private readonly now: () => number = Date.now,
  ) {
    const t = readToken(file);
    if (typeof t === 'string') throw new UsageError(`server.tokenFile: ${file}: ${t}; write the token (one line, at least 16 characters) to it, e.g. with: head -c 32 /dev/urandom | base64 > ${file}`);
    this.token = t.digest;
    this.stamp = t.stamp;
    this.checkedMs = this.now();
  }

  /** Whether `presented` is the token (compared in constant time). */
  matches(presented: string): boolean {
    this.refresh();
    return timingSafeEqual(digest(presented), this.token);
  }

  private refresh(): void {
    const now = this.now();
    if (now - this.checkedMs < TOKEN_RECHECK_MS) return;
    this.checkedMs = now;
    let stamp: string;
    try {
      stamp = fileStamp(this.file);
    } catch (e) {
      this.lastError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      return;
    }
    if (stamp === this.stamp) return;
    const t = readToken(this.file);
    if (typeof t === 'string') {
      this.lastError = t;
      return;
    }
    this.token = t.digest;
    this.stamp = t.stamp;
    this.lastError = undefined;
  }
}

function fileStamp(file: string): string {
  const s = statSync(file);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

const MIN_TOKEN_LENGTH = 16;

function readToken(file: string): { digest: Buffer; stamp: string } | string {
  let text: string;
  let stamp: string;
  try {
    stamp = fileStamp(file);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH) return token ? `the token is ${token.length} characters, fewer than ${MIN_TOKEN_LENGTH}` : 'it is empty';
  if (/\s/.test(token)) return 'the token has white space inside it';
  return { digest: digest(token), stamp };
}

export interface AccessPolicy {
  /** loopback listener: the Host header is checked */
  loopback: boolean;
  token: TokenFile | undefined;
  openPaths: ReadonlySet<string>;
  /** server.allowUnauthenticated: a listener beyond loopback may serve without a token */
  allowUnauthenticated: boolean;
}

/**
 * The policy for a listener on `host`; throws a UsageError (one line, how to
 * fix it) when a non-loopback listener would serve the API to anyone.
 */
export function accessPolicy(cfg: AccessConfig, host: string, shownListen: string): AccessPolicy {
  const loopback = isLoopbackHost(host);
  const token = cfg.tokenFile !== null ? new TokenFile(cfg.tokenFile) : undefined;
  if (!loopback && !token && !cfg.allowUnauthenticated)
    throw new UsageError(
      `listen: ${shownListen} is not a loopback address and the API has no token: set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE) to a file holding a bearer token, ` +
        `or set server.allowUnauthenticated: true to serve the map to anyone who reaches the port`,
    );
  return { loopback, token, openPaths: new Set(cfg.openPaths), allowUnauthenticated: cfg.allowUnauthenticated };
}

/** What the metrics listener (metrics.listen) serves, and nothing else. */
export const METRICS_LISTENER_PATHS = ['/metrics', '/healthz', '/readyz'] as const;

/**
 * The policy of the metrics listener on `host`: the main listener's token and
 * open paths, the Host check where it is on loopback. Beyond loopback without
 * a token it serves its paths to anyone, which is what it is for (Prometheus,
 * the kubelet's probes) while they are open paths; one that server.openPaths
 * leaves closed there is refused at start (a UsageError), as the API is,
 * unless server.allowUnauthenticated.
 */
export function metricsAccessPolicy(main: AccessPolicy, host: string, shownListen: string): AccessPolicy {
  const loopback = isLoopbackHost(host);
  const closed = METRICS_LISTENER_PATHS.filter((p) => !main.openPaths.has(p));
  if (!loopback && !main.token && !main.allowUnauthenticated && closed.length)
    throw new UsageError(
      `metrics.listen: ${shownListen} is not a loopback address and there is no token, yet server.openPaths leaves ${closed.join(', ')} closed: set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE), ` +
        `add ${closed.length > 1 ? 'them' : 'it'} to server.openPaths, or set server.allowUnauthenticated: true`,
    );
  return { ...main, loopback };
}

/** Paths anyone may fetch whatever the policy: the web UI's page and assets (code only; the data is under /api). */
function isUiAsset(path: string): boolean {
  return path === '/' || path === '/ui' || path.startsWith('/ui/');
}

/** Counts of refused requests, for /metrics. */
export interface AccessStats {
  /** by reason: host (DNS rebinding), token (missing or wrong) */
  refused: Record<'host' | 'token', number>;
}

/** Register the checks as the first hook of every request. */
export function registerAccess(app: FastifyInstance, policy: AccessPolicy, stats: AccessStats = { refused: { host: 0, token: 0 } }): AccessStats {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (policy.loopback) {
      const host = hostOfHeader(req.headers.host);
      if (host === undefined || !isLoopbackHost(host)) {
        stats.refused.host++;
        return reply
          .code(403)
          .send({ error: `host: got ${JSON.stringify(req.headers.host ?? '')}, expected a loopback name or address (localhost, 127.0.0.1, [::1]): this agent listens on loopback only` });
      }
    }
    if (!policy.token) return;
    const path = req.url.split('?', 1)[0]!;
    if (policy.openPaths.has(path) || isUiAsset(path)) return;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m && policy.token.matches(m[1]!)) return;
    stats.refused.token++;
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="bpfagent"')
      .send({ error: `authorization: ${m ? 'wrong token' : 'missing'}, expected "Authorization: Bearer <the token in server.tokenFile>"` });
  });
  return stats;
}
