/**
 * The web UI of `bpfagent run` with a token (server.tokenFile), in Chromium:
 * the page loads, asks for the token, then draws the edge of real traffic
 * between two test hosts; every API request carries the token as a header,
 * none in its URL; a reload in the same tab does not ask again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { agentBrowser, CHROMIUM_SKIP } from '../helpers/chromium.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { RunAgent } from '../helpers/run-agent.js';
import { untilOk } from '../helpers/until.js';

const SKIP = KERNEL_SKIP || CHROMIUM_SKIP;
const TOKEN = 'ui-test-token-7f3a9c1e5b2d4f60';

const drawnEdges = (page: Page): Promise<Array<{ source: string; label: string }>> =>
  page.evaluate(() => (window as unknown as { bpfagentMap: any }).bpfagentMap.cy.edges().map((e: any) => ({ source: e.source().id(), label: e.data('label') })));

describe('bpfagent run: the web UI with a token', { skip: SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let dir: string;
  const port = 24500 + (process.pid % 100) * 4;
  const requests: Array<{ url: string; authorization: string | undefined }> = [];

  before(async () => {
    net = new TestNetwork(40);
    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-ui-token-'));
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    agent = new RunAgent(`listen: 127.0.0.1:0\ninterval: 1s\nserver:\n  tokenFile: ${tokenFile}\n`);
    await agent.ready;
    base = await agent.baseUrl();
    ({ context, page } = await agentBrowser(path.join(dir, 'profile'), base));
    page.on('request', (r) => requests.push({ url: r.url(), authorization: r.headers()['authorization'] }));
  });

  after(async () => {
    await context?.close();
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('the page asks for the token once, then draws the map with it', async () => {
    const server = new Peer('tksrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7', '--count', '1'], { netns: net.b.ns });
    await server.waitFor('listening');
    const c = new Peer('tkcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', '100'], { netns: net.a.ns });
    await c.waitFor('done');
    // the API itself refuses a request without the token
    assert.equal((await agent.get('/api/graph')).status, 401);

    await page.goto(`${base}/?refresh=1s`);
    const form = page.getByRole('form', { name: 'Access token' });
    await form.waitFor({ state: 'visible' });
    assert.match(await page.locator('#error').innerText(), /authorization: missing/);
    await form.getByLabel('Access token').fill(TOKEN);
    await form.getByRole('button', { name: 'Use token' }).click();
    await untilOk('the edge on the map', async () => (await drawnEdges(page)).some((e) => e.source === 'process:tkcli' && e.label.startsWith(`:${port}/tcp`)));
    assert.equal(await form.isVisible(), false);

    // a reload in this tab: no question, the map again
    await page.reload();
    await untilOk('the edge after a reload', async () => (await drawnEdges(page)).some((e) => e.source === 'process:tkcli'));
    assert.equal(await form.isVisible(), false);

    const api = requests.filter((r) => new URL(r.url).pathname.startsWith('/api/'));
    assert.ok(api.some((r) => r.authorization === `Bearer ${TOKEN}`), 'API requests carry the token');
    for (const r of requests) assert.ok(!r.url.includes(TOKEN), `no token in a URL: ${r.url}`);
    const metrics = await agent.get('/metrics');
    assert.match(metrics.body, /bpfagent_http_requests_refused_total\{reason="token"\} [1-9]/);
  });
});
