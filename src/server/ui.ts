/**
 * The web UI: a static single page (src/ui/static) and the graph library it
 * draws with (cytoscape, from node_modules), all served by the agent itself
 * so that the page needs no network but the agent's own listener.
 *
 * `/` is the page; `/ui/<file>` its assets; `/ui/vendor/cytoscape.min.js`
 * the library. The set of files is read once, at registration, into a fixed
 * table: a request names an entry of that table or gets a 404, so no path a
 * client sends ever reaches the file system.
 */
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const here = path.dirname(fileURLToPath(import.meta.url));

/** src/ui/static, whether this module runs compiled (dist/src/server) or from the sources (src/server). */
export function defaultUiRoot(): string {
  const candidates = [path.resolve(here, '../../../src/ui/static'), path.resolve(here, '../ui/static')];
  const found = candidates.find((d) => existsSync(path.join(d, 'index.html')));
  if (!found) throw new Error(`web UI: no index.html in ${candidates.join(' or ')}`);
  return found;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

interface Asset {
  body: Buffer;
  type: string;
}

// the page talks to this agent only; cytoscape sets inline styles on its own elements
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export interface UiOptions {
  /** the directory with index.html and the page's assets (default: src/ui/static) */
  root?: string;
}

/** Register `/`, `/ui/*` and `/ui/vendor/cytoscape.min.js` on `app`. */
export function registerUi(app: FastifyInstance, { root = defaultUiRoot() }: UiOptions = {}): void {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(root)) {
    const type = TYPES[path.extname(name).toLowerCase()];
    const file = path.join(root, name);
    if (type && statSync(file).isFile()) assets.set(name, { body: readFileSync(file), type });
  }
  const index = assets.get('index.html');
  if (!index) throw new Error(`web UI: no index.html in ${root}`);
  const require = createRequire(import.meta.url);
  assets.set('vendor/cytoscape.min.js', { body: readFileSync(require.resolve('cytoscape/dist/cytoscape.min.js')), type: TYPES['.js']! });

  const send = (asset: Asset, reply: import('fastify').FastifyReply) =>
    reply
      .code(200)
      .header('content-type', asset.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP)
      .send(asset.body);

  app.get('/', async (_req, reply) => send(index, reply));
  app.get('/ui', async (_req, reply) => reply.redirect('/'));
  app.get('/ui/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'];
    const asset = assets.get(name);
    if (!asset) return reply.code(404).send({ error: `no such file: /ui/${name}` });
    return send(asset, reply);
  });
}
