/**
 * One watched resource, kept current with the client library's informer
 * (ListWatch: list, then watch from the list's resourceVersion, resume a
 * closed watch from the last one seen, relist on 410 Gone). Around it:
 *
 * - lists in pages (`limit`/`continue`), starting over if a continue token
 *   expires;
 * - watches ask for BOOKMARK events, which move the resume point forward
 *   without objects changing;
 * - watches ask the server to end them after 5-10 minutes (as client-go does)
 *   and are abandoned if they outlive that by half: a silently dead
 *   connection costs minutes, not hours;
 * - objects are cut down to the fields the agent needs before the library
 *   caches them;
 * - the library stops on any other error and waits to be started again: this
 *   restarts it with exponential back-off (resuming the watch, or relisting).
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeKubeError, statusOf } from './errors.js';

export interface InformerHandlers<T> {
  upsert(obj: T): void;
  remove(obj: T): void;
}

/** One page of a list, as the generated API client returns it (`continue` is `_continue` there). */
export interface ListPage {
  metadata?: { resourceVersion?: string; _continue?: string };
  items: unknown[];
}

export interface InformerOptions<T> {
  kc: KubeConfig;
  /** plural resource name, for logs and errors: 'pods' */
  resource: string;
  /** cluster-wide collection path: /api/v1/pods */
  path: string;
  /** only the objects this selects, in the list and the watch (`spec.nodeName=node-1`) */
  fieldSelector?: string;
  listPage(page: { limit: number; _continue?: string; fieldSelector?: string }): Promise<ListPage>;
  /** the fields kept, or undefined to ignore a malformed object */
  slim(raw: unknown): T | undefined;
  handlers: InformerHandlers<T>;
  log: Logger;
  pageSize: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** timeoutSeconds of each watch; default a random 300-600 */
  watchTimeoutSeconds?: number;
}

export interface InformerStats {
  /** complete lists, the first included */
  lists: number;
  /** lists after the first: after 410 Gone or a failed first list */
  relists: number;
  /** failed lists, failed or refused watches, ERROR events */
  watchErrors: number;
  /** restarts after an error, each after a back-off */
  restarts: number;
  bookmarks: number;
  /** ADDED, MODIFIED and DELETED events received */
  events: number;
}

/** A watch that closes this soon without a single event counts as a failure (no hot reconnect loop). */
const EMPTY_WATCH_MIN_MS = 1000;

function watchTimeoutSeconds(o: { watchTimeoutSeconds?: number }): number {
  return o.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
}

export class ResilientInformer<T extends KubernetesObject> {
  readonly stats: InformerStats = { lists: 0, relists: 0, watchErrors: 0, restarts: 0, bookmarks: 0, events: 0 };
  /** the last error, for start-up failures */
  lastError: unknown;
  private readonly lw: ListWatch<T>;
  private stopped = true;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private isSynced = false;
  private readonly synced: Promise<void>;
  private settleSync!: (err?: Error) => void;

  constructor(private readonly o: InformerOptions<T>) {
    this.synced = new Promise<void>((resolve, reject) => {
      this.settleSync = (err) => (err ? reject(err) : resolve());
    });
    this.synced.catch(() => {}); // rejection is for start(); never unhandled
    this.lw = new ListWatch<T>(o.path, new SlimWatch(o.kc, this, o.slim, () => watchTimeoutSeconds(o)), () => this.list(), false, undefined, o.fieldSelector);
    this.lw.on('add', (obj) => o.handlers.upsert(obj));
    this.lw.on('update', (obj) => o.handlers.upsert(obj));
    this.lw.on('delete', (obj) => o.handlers.remove(obj));
    this.lw.on('error', (err) => this.failed(err));
  }

  get resource(): string {
    return this.o.resource;
  }

  get hasSynced(): boolean {
    return this.isSynced;
  }

  start(): void {
    this.stopped = false;
    this.lw.start().catch((err: unknown) => this.failed(err));
  }

  /** Resolves after the first complete list; rejects when the API server refuses us (401, 403). */
  whenSynced(): Promise<void> {
    return this.synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.lw.stop();
  }

  /** The list the library asks for, in pages, cut down. */
  private async list(): Promise<KubernetesListObject<T>> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    let token: string | undefined;
    for (let restarts = 0; ; ) {
      let page: ListPage;
      try {
        page = await this.o.listPage({ limit: this.o.pageSize, ...(token ? { _continue: token } : {}), ...(this.o.fieldSelector ? { fieldSelector: this.o.fieldSelector } : {}) });
      } catch (err) {
        // the snapshot behind the continue token was compacted: list again from the start
        if (token && statusOf(err) === 410 && restarts++ < 3) {
          items.length = 0;
          token = undefined;
          continue;
        }
        throw err;
      }
      for (const raw of page.items) {
        const obj = this.o.slim(raw);
        if (obj) items.push(obj);
      }
      resourceVersion = page.metadata?.resourceVersion;
      token = page.metadata?._continue || undefined;
      if (!token) break;
    }
    if (this.stats.lists++ > 0) this.stats.relists++;
    this.failures = 0;
    return { metadata: { resourceVersion }, items };
  }

  /** Called by SlimWatch when the library starts a watch: the list before it has been applied. */
  watchStarting(): void {
    if (this.isSynced) return;
    this.isSynced = true;
    this.settleSync();
  }

  /** Called by SlimWatch for each event, before the library sees it. */
  watchEvent(type: string, obj: unknown): void {
    if (type === 'BOOKMARK') {
      this.stats.bookmarks++;
    } else if (type === 'ERROR') {
      this.stats.watchErrors++;
      const status = obj as { code?: number; message?: string };
      if (status?.code === 410) this.o.log.info({ resource: this.o.resource, message: status.message }, 'kubernetes: watch history expired (410 Gone); relisting');
      else this.o.log.warn({ resource: this.o.resource, status }, 'kubernetes: watch error event');
      return;
    } else {
      this.stats.events++;
    }
    this.failures = 0;
  }

  /** The library gave up (a failed list, a failed or broken watch): start it again after a back-off. */
  private failed(err: unknown): void {
    if (this.stopped) return; // stop() aborts the watch, which the library reports as an error
    this.stats.watchErrors++;
    this.lastError = err;
    const status = statusOf(err);
    if (!this.isSynced && (status === 401 || status === 403)) {
      this.settleSync(new Error(`${this.o.resource}: ${describeKubeError(err)}`));
    }
    if (this.retryTimer) return;
    const delay = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** Math.min(this.failures++, 20));
    this.o.log.warn({ resource: this.o.resource, err: describeKubeError(err), retryInMs: delay }, 'kubernetes: list/watch failed; retrying');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopped) return;
      this.stats.restarts++;
      this.lw.start().catch((e: unknown) => this.failed(e));
    }, delay);
  }
}

/** The library's Watch, asking for bookmarks and cutting objects down before the informer caches them. */
class SlimWatch<T extends KubernetesObject> extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly informer: ResilientInformer<T>,
    private readonly slim: (raw: unknown) => T | undefined,
    private readonly timeoutSeconds: () => number,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    this.informer.watchStarting();
    const started = Date.now();
    const timeoutSeconds = this.timeoutSeconds();
    let events = 0;
    let finished = false;
    let watchdog: NodeJS.Timeout | undefined;
    const onEvent = (phase: string, obj: unknown, raw: unknown) => {
      events++;
      this.informer.watchEvent(phase, obj);
      if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
        const slim = this.slim(obj);
        if (slim) callback(phase, slim, raw);
        return;
      }
      callback(phase, obj, raw);
    };
    const onDone = (err: unknown) => {
      finished = true;
      clearTimeout(watchdog);
      if (!err && events === 0 && Date.now() - started < Math.min(EMPTY_WATCH_MIN_MS, timeoutSeconds * 500)) {
        done(new Error('the watch closed at once without events'));
        return;
      }
      done(err);
    };
    let controller: AbortController;
    try {
      controller = await super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, onEvent, onDone);
    } catch (err) {
      // credentials failing before the request (an unreadable token file, an exec plugin) would otherwise be an
      // unhandled rejection inside the library: report them as a failed watch
      onDone(err);
      return new AbortController();
    }
    // the server should have ended it by now: the connection is dead (the abort reaches done() as an error)
    if (!finished) watchdog = setTimeout(() => controller.abort(), timeoutSeconds * 1500);
    return controller;
  }
}
