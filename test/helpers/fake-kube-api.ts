/**
 * A Kubernetes API server for tests: speaks the real list and watch protocol
 * over HTTP (loopback, no auth) for the cluster-wide lists the agent reads.
 *
 * - Lists: `kind: XList`, `metadata.resourceVersion`, `limit`/`continue`
 *   chunking over a consistent snapshot (a continue token older than the
 *   expired history gets 410, as from etcd compaction).
 * - Watches (`watch=true`): a chunked stream of newline-delimited
 *   `{"type","object"}` events, replayed from a per-resource history after the
 *   requested resourceVersion, then live. One global, increasing
 *   resourceVersion.
 * - A watch from a resourceVersion older than the history gets 410 Gone: by
 *   default an ERROR event carrying a Status (code 410, reason Expired) and the
 *   end of the stream, as the real server sends; `goneMode = 'http'` answers
 *   with HTTP 410 instead.
 * - BOOKMARK events, to watches that asked with allowWatchBookmarks=true.
 * - Field selectors (`fieldSelector=spec.nodeName=node-1,status.podIP=...`,
 *   `=`/`==`/`!=` on any dotted field path) on lists and watches: a watch
 *   sends an object that comes to match as ADDED and one that stops matching
 *   as DELETED, as the API server does.
 * - One object by name: `GET /apis/apps/v1/namespaces/NS/replicasets/NAME`
 *   (and every resource's namespaced path), 404 NotFound when absent.
 * - Counting: every request is logged with what it asked and the bytes and
 *   watch events sent to it (`requests`, `totals()`), so a test or a
 *   benchmark can say what an agent cost the API server.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';

export type Kind = 'Pod' | 'Service' | 'EndpointSlice' | 'Node' | 'ReplicaSet' | 'Job';

interface Resource {
  kind: Kind;
  apiVersion: string;
  path: string;
}

const RESOURCES: Resource[] = [
  { kind: 'Pod', apiVersion: 'v1', path: '/api/v1/pods' },
  { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services' },
  { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes' },
  { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  { kind: 'ReplicaSet', apiVersion: 'apps/v1', path: '/apis/apps/v1/replicasets' },
  { kind: 'Job', apiVersion: 'batch/v1', path: '/apis/batch/v1/jobs' },
];

/** A Kubernetes object as JSON; only `metadata` is looked at by the server. */
export interface KObject {
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; creationTimestamp?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface LoggedRequest {
  kind: Kind | undefined;
  path: string;
  watch: boolean;
  /** a GET of one object by name */
  get: boolean;
  fieldSelector?: string;
  resourceVersion?: string;
  limit?: number;
  continue?: string;
  allowWatchBookmarks: boolean;
  timeoutSeconds?: number;
  /** what the server answered: 'list', 'watch', 'get', 'gone' (410 by event or status) or an HTTP status */
  outcome: string;
  /** body bytes sent: the list page, the object, or every event of the watch so far */
  bytes: number;
  /** ADDED, MODIFIED and DELETED events sent (watches) */
  events: number;
}

/** One `field=value` or `field!=value` term of a field selector. */
interface FieldTerm {
  path: string[];
  value: string;
  negate: boolean;
}

function parseFieldSelector(s: string | null): FieldTerm[] {
  if (!s) return [];
  return s.split(',').filter(Boolean).map((term) => {
    const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term);
    if (!m) throw new Error(`bad field selector term ${term}`);
    return { path: m[1]!.split('.'), value: m[3]!, negate: m[2] === '!=' };
  });
}

function fieldValue(o: unknown, path: string[]): string {
  let v: unknown = o;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v === undefined || v === null ? '' : String(v);
}

function matches(o: KObject, terms: FieldTerm[]): boolean {
  return terms.every((t) => (fieldValue(o, t.path) === t.value) !== t.negate);
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KObject;
  /** the object before this event (MODIFIED, DELETED): whether a selector matched it before */
  previous?: KObject;
}

interface OpenWatch {
  kind: Kind;
  res: http.ServerResponse;
  socket: Socket;
  bookmarks: boolean;
  fields: FieldTerm[];
  logged: LoggedRequest;
}

interface Snapshot {
  rv: number;
  items: KObject[];
}

const key = (o: KObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const clone = <T>(o: T): T => structuredClone(o);

export class FakeKubeApi {
  private rv = 100;
  /** events at or below this resourceVersion are gone from the history */
  private expiredThrough = 0;
  private readonly objects = new Map<Kind, Map<string, KObject>>();
  private readonly history = new Map<Kind, HistoryEvent[]>();
  private readonly watches = new Set<OpenWatch>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly sockets = new Set<Socket>();
  readonly requests: LoggedRequest[] = [];
  /** how a too-old watch is refused: an ERROR event in a 200 stream (the API server's way) or HTTP 410 */
  goneMode: 'event' | 'http' = 'event';
  /** answer the next N list requests with HTTP `failStatus` */
  failNextLists = 0;
  failStatus = 500;
  /** expire the history right after serving the next page that has a continue token (its token is then too old) */
  expireAfterNextPage = false;
  /** leave watches open past their timeoutSeconds (a dead connection, as the client sees it) */
  ignoreWatchTimeouts = false;

  private constructor(private readonly server: http.Server, readonly url: string) {}

  /** `host`: the address to listen on (default 127.0.0.1; a test network's, for agents in network namespaces) */
  static async start(host = '127.0.0.1'): Promise<FakeKubeApi> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { port } = server.address() as { port: number };
    const api = new FakeKubeApi(server, `http://${host}:${port}`);
    for (const r of RESOURCES) {
      api.objects.set(r.kind, new Map());
      api.history.set(r.kind, []);
    }
    server.on('connection', (s) => {
      api.sockets.add(s);
      s.on('close', () => api.sockets.delete(s));
    });
    server.on('request', (req, res) => api.handle(req, res));
    return api;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /** A kubeconfig (JSON is YAML) pointing at this server, without auth. */
  writeKubeconfig(dir: string): string {
    const file = join(dir, 'kubeconfig');
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }], // the client refuses http:// otherwise
      users: [{ name: 'fake', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    };
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  add(kind: Kind, obj: KObject): KObject {
    if (this.store(kind).has(key(obj))) throw new Error(`fake-kube-api: ${kind} ${key(obj)} already exists`);
    const o = clone(obj);
    o.metadata.uid ??= randomUUID();
    o.metadata.creationTimestamp ??= new Date(Date.now() + this.rv).toISOString();
    return this.record(kind, 'ADDED', o);
  }

  update(kind: Kind, obj: KObject): KObject {
    const old = this.store(kind).get(key(obj));
    if (!old) throw new Error(`fake-kube-api: ${kind} ${key(obj)} does not exist`);
    const o = clone(obj);
    o.metadata.uid = old.metadata.uid;
    o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    return this.record(kind, 'MODIFIED', o);
  }

  delete(kind: Kind, namespace: string | undefined, name: string): KObject {
    const k = `${namespace ?? ''}/${name}`;
    const old = this.store(kind).get(k);
    if (!old) throw new Error(`fake-kube-api: ${kind} ${k} does not exist`);
    return this.record(kind, 'DELETED', clone(old));
  }

  get(kind: Kind, namespace: string | undefined, name: string): KObject | undefined {
    return this.store(kind).get(`${namespace ?? ''}/${name}`);
  }

  /** Compact: every event so far leaves the history; watches from before now get 410 Gone. */
  expireHistory(): void {
    this.expiredThrough = this.rv;
    for (const events of this.history.values()) events.length = 0;
  }

  /** Destroy every open watch connection mid-stream (no clean end of the chunked body). */
  dropWatches(): void {
    for (const w of this.watches) w.socket.destroy();
    this.watches.clear();
  }

  /** A BOOKMARK at the current resourceVersion on every watch that allowed bookmarks. */
  sendBookmarks(): number {
    let sent = 0;
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      const r = resourceOf(w.kind);
      w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: r.kind, apiVersion: r.apiVersion, metadata: { resourceVersion: this.resourceVersion } } }) + '\n');
      sent++;
    }
    return sent;
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private store(kind: Kind): Map<string, KObject> {
    return this.objects.get(kind)!;
  }

  private record(kind: Kind, type: HistoryEvent['type'], o: KObject): KObject {
    const previous = this.store(kind).get(key(o));
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    if (type === 'DELETED') this.store(kind).delete(key(o));
    else this.store(kind).set(key(o), o);
    const event: HistoryEvent = { rv: this.rv, type, object: o, previous };
    this.history.get(kind)!.push(event);
    for (const w of this.watches) if (w.kind === kind) this.send(w, event);
    return clone(o);
  }

  /** Totals over the requests so far: what an agent cost the server. */
  totals(): { lists: number; watches: number; gets: number; bytes: number; events: number } {
    const t = { lists: 0, watches: 0, gets: 0, bytes: 0, events: 0 };
    for (const r of this.requests) {
      if (r.watch) t.watches++;
      else if (r.get) t.gets++;
      else t.lists++;
      t.bytes += r.bytes;
      t.events += r.events;
    }
    return t;
  }

  /** One event to one watch, through its field selector: ADDED when the object comes to match it, DELETED when it stops. */
  private send(w: OpenWatch, e: HistoryEvent): void {
    if (!w.fields.length) return this.write(w, e.type, e.object);
    const now = matches(e.object, w.fields);
    const before = e.previous !== undefined && matches(e.previous, w.fields);
    if (e.type === 'DELETED') {
      if (before || now) this.write(w, 'DELETED', e.object);
    } else if (now) this.write(w, before ? 'MODIFIED' : 'ADDED', e.object);
    else if (before) this.write(w, 'DELETED', e.object);
  }

  private write(w: OpenWatch, type: HistoryEvent['type'], o: KObject): void {
    const r = resourceOf(w.kind);
    const line = JSON.stringify({ type, object: { kind: r.kind, apiVersion: r.apiVersion, ...o } }) + '\n';
    w.res.write(line);
    w.logged.bytes += Buffer.byteLength(line);
    w.logged.events++;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const q = url.searchParams;
    // a collection (cluster-wide or namespaced), or one object of a namespaced collection
    let resource = RESOURCES.find((r) => r.path === url.pathname);
    let one: { namespace: string; name: string } | undefined;
    let inNamespace: string | undefined;
    if (!resource) {
      for (const r of RESOURCES) {
        const base = r.path.slice(0, r.path.lastIndexOf('/'));
        const plural = r.path.slice(r.path.lastIndexOf('/') + 1);
        const m = new RegExp(`^${base}/namespaces/([^/]+)/${plural}(?:/([^/]+))?$`).exec(url.pathname);
        if (!m) continue;
        resource = r;
        if (m[2]) one = { namespace: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]) };
        else inNamespace = decodeURIComponent(m[1]!);
        break;
      }
    }
    const logged: LoggedRequest = {
      kind: resource?.kind,
      path: url.pathname,
      watch: q.get('watch') === 'true' || q.get('watch') === '1',
      get: one !== undefined,
      allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
      outcome: '',
      bytes: 0,
      events: 0,
      ...(q.has('fieldSelector') ? { fieldSelector: q.get('fieldSelector')! } : {}),
      ...(q.has('resourceVersion') ? { resourceVersion: q.get('resourceVersion')! } : {}),
      ...(q.has('limit') ? { limit: Number(q.get('limit')) } : {}),
      ...(q.has('continue') ? { continue: q.get('continue')! } : {}),
      ...(q.has('timeoutSeconds') ? { timeoutSeconds: Number(q.get('timeoutSeconds')) } : {}),
    };
    this.requests.push(logged);
    if (!resource || req.method !== 'GET') {
      logged.outcome = '404';
      return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`, logged);
    }
    if (one) {
      const o = this.store(resource.kind).get(`${one.namespace}/${one.name}`);
      if (!o) {
        logged.outcome = '404';
        return sendStatus(res, 404, 'NotFound', `${resource.path.slice(resource.path.lastIndexOf('/') + 1)} "${one.name}" not found`, logged);
      }
      logged.outcome = 'get';
      return sendJson(res, 200, { kind: resource.kind, apiVersion: resource.apiVersion, ...o }, logged);
    }
    let fields: FieldTerm[];
    try {
      fields = parseFieldSelector(q.get('fieldSelector'));
    } catch (e) {
      logged.outcome = '400';
      return sendStatus(res, 400, 'BadRequest', (e as Error).message, logged);
    }
    if (inNamespace !== undefined) fields.push({ path: ['metadata', 'namespace'], value: inNamespace, negate: false });
    if (logged.watch) return this.watch(resource, logged, res, req.socket, fields);
    if (this.failNextLists > 0) {
      this.failNextLists--;
      logged.outcome = String(this.failStatus);
      if (this.failStatus === 403) return sendStatus(res, 403, 'Forbidden', `${r0(url.pathname)} is forbidden: User "system:anonymous" cannot list resource`, logged);
      return sendStatus(res, this.failStatus, 'InternalError', 'etcdserver: request timed out', logged);
    }
    this.list(resource, logged, res, fields);
  }

  private list(r: Resource, logged: LoggedRequest, res: http.ServerResponse, fields: FieldTerm[]): void {
    let snap: Snapshot;
    let start = 0;
    if (logged.continue) {
      const [id, offset] = logged.continue.split(':');
      const s = this.snapshots.get(id ?? '');
      if (!s || s.rv < this.expiredThrough) {
        logged.outcome = 'gone';
        return sendStatus(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.', logged);
      }
      snap = s;
      start = Number(offset);
    } else {
      const items = [...this.store(r.kind).values()].filter((o) => matches(o, fields)).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      snap = { rv: this.rv, items };
    }
    const limit = logged.limit && logged.limit > 0 ? logged.limit : Infinity;
    const page = snap.items.slice(start, start + limit);
    const next = start + page.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (next < snap.items.length) {
      const id = randomUUID();
      this.snapshots.set(id, snap);
      metadata.continue = `${id}:${next}`;
      metadata.remainingItemCount = snap.items.length - next;
      if (this.expireAfterNextPage) {
        this.expireAfterNextPage = false;
        this.rv++; // a write elsewhere, then compaction: the snapshot is older than the history
        this.expireHistory();
      }
    }
    logged.outcome = 'list';
    sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: r.apiVersion, metadata, items: page }, logged);
  }

  private watch(r: Resource, logged: LoggedRequest, res: http.ServerResponse, socket: Socket, fields: FieldTerm[]): void {
    const from = logged.resourceVersion ? Number(logged.resourceVersion) : undefined;
    if (from !== undefined && from < this.expiredThrough) {
      logged.outcome = 'gone';
      const message = `too old resource version: ${from} (${this.expiredThrough})`;
      if (this.goneMode === 'http') return sendStatus(res, 410, 'Expired', message, logged);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', message) }) + '\n');
      return;
    }
    logged.outcome = 'watch';
    // No Content-Length: node sends Transfer-Encoding: chunked, one chunk per write.
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    const w: OpenWatch = { kind: r.kind, res, socket, bookmarks: logged.allowWatchBookmarks, fields, logged };
    if (from === undefined || from === 0) {
      // "any version": the current state as synthetic ADDED events
      for (const o of this.store(r.kind).values()) if (matches(o, fields)) this.write(w, 'ADDED', o);
    } else {
      for (const e of this.history.get(r.kind)!) if (e.rv > from) this.send(w, e);
    }
    this.watches.add(w);
    // the server ends a watch cleanly after timeoutSeconds
    const timer = logged.timeoutSeconds && !this.ignoreWatchTimeouts ? setTimeout(() => res.end(), logged.timeoutSeconds * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      this.watches.delete(w);
    });
  }
}

function r0(path: string): string {
  return path.split('/').pop() ?? path;
}

function resourceOf(kind: Kind): Resource {
  return RESOURCES.find((r) => r.kind === kind)!;
}


function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function sendJson(res: http.ServerResponse, code: number, body: unknown, logged?: LoggedRequest): void {
  const text = JSON.stringify(body);
  if (logged) logged.bytes += Buffer.byteLength(text);
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(text);
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string, logged?: LoggedRequest): void {
  sendJson(res, code, status(code, reason, message), logged);
}
