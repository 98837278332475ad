/** The web UI's routes: the page, its assets and cytoscape from the agent itself; nothing else of the file system. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { registerUi } from '../../src/server/ui.js';

async function app() {
  const a = Fastify({ logger: false });
  registerUi(a);
  await a.ready();
  return a;
}

test('/ is the page, loading its script, styles and cytoscape from /ui only', async () => {
  const a = await app();
  const r = await a.inject('/');
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.match(r.body, /<script src="\/ui\/vendor\/cytoscape\.min\.js"><\/script>/);
  assert.match(r.body, /<script type="module" src="\/ui\/app\.js"><\/script>/);
  // no asset from anywhere else
  for (const m of r.body.matchAll(/(?:src|href)="([^"]+)"/g)) assert.match(m[1]!, /^\/ui\//, m[1]);
  await a.close();
});

test('assets with their content types; cytoscape served from node_modules', async () => {
  const a = await app();
  const js = await a.inject('/ui/app.js');
  assert.equal(js.statusCode, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.match(js.body, /window\.bpfagentMap/);
  const css = await a.inject('/ui/style.css');
  assert.equal(css.statusCode, 200);
  assert.match(String(css.headers['content-type']), /^text\/css/);
  const cy = await a.inject('/ui/vendor/cytoscape.min.js');
  assert.equal(cy.statusCode, 200);
  assert.match(String(cy.headers['content-type']), /^text\/javascript/);
  assert.ok(cy.body.length > 100_000);
  assert.ok(!/https?:\/\/(?!www\.w3\.org)/.test(js.body), 'the page fetches nothing from other hosts');
  // the modules app.js imports, from /ui too
  for (const m of js.body.matchAll(/^import .* from '\.\/([a-z-]+\.js)';$/gm)) {
    const r = await a.inject(`/ui/${m[1]}`);
    assert.equal(r.statusCode, 200, m[1]);
    assert.match(String(r.headers['content-type']), /^text\/javascript/);
    assert.ok(!/https?:\/\/(?!www\.w3\.org)/.test(r.body), `${m[1]} fetches nothing from other hosts`);
  }
  assert.match(js.body, /from '\.\/diff\.js'/);
  await a.close();
});

test('anything else under /ui is 404, traversal included', async () => {
  const a = await app();
  for (const p of [
    '/ui/nope.js',
    '/ui/../package.json',
    '/ui/%2e%2e/package.json',
    '/ui/..%2f..%2fpackage.json',
    '/ui/vendor/../../../package.json',
    '/ui/vendor/cytoscape.js',
    '/ui/%2fetc%2fpasswd',
    '/ui/',
  ]) {
    const r = await a.inject(p);
    assert.notEqual(r.statusCode, 200, p);
    assert.ok(!r.body.includes('"dependencies"') && !r.body.includes('root:'), p);
  }
  const r = await a.inject('/ui');
  assert.equal(r.statusCode, 302);
  assert.equal(r.headers.location, '/');
  await a.close();
});
