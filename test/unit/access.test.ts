/**
 * Access to the agent's listener, with real HTTP(S) requests to a real
 * listener (startHttpServer, the API over an in-memory store, the web UI):
 * the Host check on loopback (DNS rebinding), the bearer token and its open
 * paths, TLS from certificate files and their renewal, and start-up refusing
 * a non-loopback listener without a token; the same on the metrics listener
 * (metrics.listen).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pino from 'pino';
import { accessPolicy, hostOfHeader, isLoopbackHost, metricsAccessPolicy, TokenFile, type AccessConfig } from '../../src/server/access.js';
import { registerApi } from '../../src/server/api.js';
import { startHttpServer, type HttpServer } from '../../src/server/http.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { UsageError } from '../../src/util/errors.js';
import { runOnce } from '../helpers/run-agent.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
const TOKEN = 'k3Jx9-very-secret-token-0123456789';
let n = 0;
function file(text: string): string {
  const f = path.join(dir, `f${n++}`);
  writeFileSync(f, text);
  return f;
}

const config = (c: Partial<AccessConfig> = {}): AccessConfig => ({ tokenFile: null, openPaths: ['/metrics', '/healthz', '/readyz'], allowUnauthenticated: false, ...c });

async function serve(host: string, access: AccessConfig, extra: { tls?: { certFile: string; keyFile: string }; tlsRecheckMs?: number; metricsListen?: { host: string; port: number } } = {}): Promise<HttpServer> {
  const store = new MemoryFlowStore({ retentionMs: 3_600_000 });
  return startHttpServer({
    host,
    port: 0,
    log,
    access: accessPolicy(access, host, `${host}:0`),
    metrics: async () => ({ text: 'bpfagent_up 1\n', contentType: 'text/plain' }),
    readiness: () => ({ ready: true, checks: {} }),
    routes: (app) => registerApi(app, { store, status: () => ({ node: 'n1' }) }),
    ...extra,
  });
}

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One request with exactly these headers (a Host header fetch() would not let us set). */
function request(port: number, pathname: string, headers: Record<string, string>, opts: { tls?: { ca: Buffer; servername?: string }; address?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const o = { host: opts.address ?? '127.0.0.1', port, path: pathname, headers, agent: false as const, ...(opts.tls ? { ca: opts.tls.ca, servername: opts.tls.servername ?? 'localhost' } : {}) };
    const req = (opts.tls ? https : http).request(o, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request written by hand: HTTP/1.0 with no Host header at all. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(text));
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

describe('access: names', () => {
  test('loopback names and addresses', () => {
    for (const h of ['localhost', 'LOCALHOST', 'localhost.', 'app.localhost', '127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])
      assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', '10.0.0.1', '0.0.0.0', '::', '::ffff:10.0.0.1', '128.0.0.1', 'fe80::1', ''])
      assert.equal(isLoopbackHost(h), false, h);
  });

  test('the host of a Host header', () => {
    assert.equal(hostOfHeader('127.0.0.1:9745'), '127.0.0.1');
    assert.equal(hostOfHeader('[::1]:9745'), '::1');
    assert.equal(hostOfHeader('localhost'), 'localhost');
    assert.equal(hostOfHeader(undefined), undefined);
    assert.equal(hostOfHeader('a b'), undefined);
    assert.equal(hostOfHeader('[::1'), undefined);
  });
});

describe('access: loopback listener, no token', () => {
  let s: HttpServer;
  test('a Host naming loopback is served; any other name is refused, on every path', async () => {
    s = await serve('127.0.0.1', config());
    for (const host of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, `[::1]:${s.port}`, 'localhost']) {
      const r = await request(s.port, '/api/status', { host });
      assert.equal(r.status, 200, `${host}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { node: string }).node, 'n1');
    }
    for (const p of ['/api/status', '/api/graph', '/metrics', '/healthz', '/', '/ui/app.js']) {
      const r = await request(s.port, p, { host: `rebind.evil.example:${s.port}` });
      assert.equal(r.status, 403, p);
      assert.equal(
        (JSON.parse(r.body) as { error: string }).error,
        `host: got "rebind.evil.example:${s.port}", expected a loopback name or address (localhost, 127.0.0.1, [::1]): this agent listens on loopback only`,
      );
    }
    // an address that is not loopback, written as a Host
    assert.equal((await request(s.port, '/api/status', { host: `10.1.2.3:${s.port}` })).status, 403);
    // no Host header at all (HTTP/1.0)
    assert.match(await rawRequest(s.port, 'GET /api/status HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 403 /);
    assert.equal(s.accessStats.refused.host, 8);
    assert.equal(s.accessStats.refused.token, 0);
    await s.close();
  });
});

describe('access: bearer token', () => {
  test('the API needs the token; the open paths and the page do not', async () => {
    const s = await serve('127.0.0.1', config({ tokenFile: file(`${TOKEN}\n`) }));
    const host = `127.0.0.1:${s.port}`;
    const missing = await request(s.port, '/api/status', { host });
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="bpfagent"');
    assert.equal((JSON.parse(missing.body) as { error: string }).error, 'authorization: missing, expected "Authorization: Bearer <the token in server.tokenFile>"');
    const wrong = await request(s.port, '/api/graph?window=5m', { host, authorization: `Bearer ${TOKEN}x` });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /wrong token/);
    assert.equal((await request(s.port, '/api/status', { host, authorization: `Basic ${TOKEN}` })).status, 401);
    assert.equal((await request(s.port, '/api/status', { host, authorization: TOKEN })).status, 401);
    // the token in the query string is not a token (URLs get logged)
    assert.equal((await request(s.port, `/api/status?token=${TOKEN}`, { host })).status, 401);
    for (const p of ['/api/status', '/api/graph?window=1m', '/api/localities', '/api/external']) {
      const ok = await request(s.port, p, { host, authorization: `Bearer ${TOKEN}` });
      assert.equal(ok.status, 200, `${p}: ${ok.body}`);
    }
    assert.equal((await request(s.port, '/api/status', { host, authorization: `bearer   ${TOKEN}` })).status, 200);
    for (const p of ['/metrics', '/healthz', '/readyz', '/', '/ui/app.js', '/ui/style.css']) assert.equal((await request(s.port, p, { host })).status, 200, p);
    // an unknown path is refused before it is looked up: nothing tells what exists
    assert.equal((await request(s.port, '/api/nope', { host })).status, 401);
    assert.equal(s.accessStats.refused.token, 6);
    await s.close();
  });

  test('server.openPaths: [] puts /metrics and the health endpoints behind the token too', async () => {
    const s = await serve('127.0.0.1', config({ tokenFile: file(TOKEN), openPaths: [] }));
    const host = `127.0.0.1:${s.port}`;
    for (const p of ['/metrics', '/healthz', '/readyz']) {
      assert.equal((await request(s.port, p, { host })).status, 401, p);
      assert.equal((await request(s.port, p, { host, authorization: `Bearer ${TOKEN}` })).status, 200, p);
    }
    await s.close();
  });

  test('beyond loopback: refused at start without a token; served with one, whatever the Host', async () => {
    let caught: unknown;
    try {
      accessPolicy(config(), '0.0.0.0', '0.0.0.0:9745');
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof UsageError);
    assert.equal(caught.exitCode, 2);
    assert.equal(
      caught.message,
      'listen: 0.0.0.0:9745 is not a loopback address and the API has no token: set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE) to a file holding a bearer token, ' +
        'or set server.allowUnauthenticated: true to serve the map to anyone who reaches the port',
    );
    assert.throws(() => accessPolicy(config(), 'node-1.example', 'node-1.example:9745'), /not a loopback address/);
    // the explicit opt-out
    assert.equal(accessPolicy(config({ allowUnauthenticated: true }), '0.0.0.0', '0.0.0.0:9745').token, undefined);

    const s = await serve('0.0.0.0', config({ tokenFile: file(TOKEN) }));
    const ok = await request(s.port, '/api/status', { host: `node-1.example:${s.port}`, authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((await request(s.port, '/api/status', { host: `node-1.example:${s.port}` })).status, 401);
    await s.close();
  });

  test('bpfagent run --listen 0.0.0.0:PORT without a token: one line on stderr, exit 2, nothing bound', () => {
    const r = runOnce(['--listen', '0.0.0.0:9'], { BPFAGENT_CONFIG: '' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      'bpfagent: listen: 0.0.0.0:9 is not a loopback address and the API has no token: set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE) to a file holding a bearer token, ' +
        'or set server.allowUnauthenticated: true to serve the map to anyone who reaches the port\n',
    );
    const bad = runOnce(['--listen', '0.0.0.0:9'], { BPFAGENT_SERVER_TOKEN_FILE: path.join(dir, 'absent') });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^bpfagent: server\.tokenFile: .*absent: cannot read it \(ENOENT\); write the token \(one line, at least 16 characters\) to it, e\.g\. with: head -c 32 \/dev\/urandom \| base64 > .*absent\n$/);
  });

  test('a token file that is empty, short or has spaces is refused with the reason', () => {
    assert.throws(() => new TokenFile(file('')), /server\.tokenFile: .*: it is empty; write the token/);
    assert.throws(() => new TokenFile(file('short\n')), /the token is 5 characters, fewer than 16/);
    assert.throws(() => new TokenFile(file('abcdefgh ijklmnopq')), /white space inside it/);
  });

  test('a rotated token (a Kubernetes Secret updated in place) is used within seconds; a bad rewrite keeps the last good one', () => {
    let now = 1_000_000;
    const f = file(TOKEN);
    const t = new TokenFile(f, () => now);
    assert.equal(t.matches(TOKEN), true);
    // the kubelet swaps the file in with a rename
    const next = 'the-next-token-abcdefghijklmnop';
    writeFileSync(`${f}.new`, `${next}\n`);
    renameSync(`${f}.new`, f);
    now += 1000;
    assert.equal(t.matches(TOKEN), true, 'not looked at again within 5 s');
    now += 5000;
    assert.equal(t.matches(next), true);
    assert.equal(t.matches(TOKEN), false);
    writeFileSync(f, '');
    now += 5000;
    assert.equal(t.matches(next), true, 'an emptied file keeps the last token');
    assert.equal(t.lastError, 'it is empty');
  });
});

describe('access: TLS', () => {
  const cert = (cn: string, name: string): { certFile: string; keyFile: string; pem: Buffer } => {
    const keyFile = path.join(dir, `${name}.key`);
    const certFile = path.join(dir, `${name}.crt`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`], { stdio: 'ignore' });
    return { certFile, keyFile, pem: execFileSync('cat', [certFile]) };
  };

  test('HTTPS from certificate files, with the token; the renewed certificate is served without a restart', async () => {
    const first = cert('localhost', 'one');
    const s = await serve('127.0.0.1', config({ tokenFile: file(TOKEN) }), { tls: first, tlsRecheckMs: 100 });
    assert.equal(s.scheme, 'https');
    const host = `localhost:${s.port}`;
    const r = await request(s.port, '/api/status', { host, authorization: `Bearer ${TOKEN}` }, { tls: { ca: first.pem } });
    assert.equal(r.status, 200, r.body);
    assert.equal((await request(s.port, '/api/status', { host }, { tls: { ca: first.pem } })).status, 401);
    // plain HTTP on the TLS port is not served
    await assert.rejects(request(s.port, '/healthz', { host }));
    // renewal: new files in place; new connections get the new certificate
    const second = cert('localhost', 'two');
    renameSync(second.keyFile, first.keyFile);
    renameSync(second.certFile, first.certFile);
    let served: Answer | undefined;
    for (let i = 0; i < 50 && !served; i++) {
      await new Promise((res) => setTimeout(res, 100));
      served = await request(s.port, '/healthz', { host }, { tls: { ca: second.pem } }).catch(() => undefined);
    }
    assert.equal(served?.status, 200, 'the renewed certificate is served');
    await assert.rejects(request(s.port, '/healthz', { host }, { tls: { ca: first.pem } }), /self.signed|unable to verify|certificate/i);
    await s.close();
  });

  test('unreadable or mismatched files stop start-up with the file named', async () => {
    const a = cert('localhost', 'a');
    const b = cert('localhost', 'b');
    await assert.rejects(serve('127.0.0.1', config(), { tls: { certFile: path.join(dir, 'nope.crt'), keyFile: a.keyFile } }), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /^server\.tls\.certFile: .*nope\.crt: cannot read it \(ENOENT\)$/);
      return true;
    });
    await assert.rejects(serve('127.0.0.1', config(), { tls: { certFile: a.certFile, keyFile: b.keyFile } }), /^UsageError: server\.tls: .*a\.crt and .*b\.key: not a PEM certificate and its private key/);
  });
});

describe('access: the metrics listener (metrics.listen)', () => {
  const metricsPort = (s: HttpServer): number => Number(/:(\d+)$/.exec(s.metricsAddress!)![1]);

  test('on loopback: the same token and open paths as the main listener, and the Host check', async () => {
    const s = await serve('127.0.0.1', config({ tokenFile: file(TOKEN) }), { metricsListen: { host: '127.0.0.1', port: 0 } });
    const port = metricsPort(s);
    const host = `127.0.0.1:${port}`;
    for (const p of ['/metrics', '/healthz', '/readyz']) assert.equal((await request(port, p, { host })).status, 200, p);
    assert.equal((await request(port, '/metrics', { host })).body, 'bpfagent_up 1\n');
    // DNS rebinding, on this listener too
    const rebound = await request(port, '/metrics', { host: `rebind.evil.example:${port}` });
    assert.equal(rebound.status, 403, rebound.body);
    // the API is not served here: refused before it is looked up, and not found with the token
    assert.equal((await request(port, '/api/status', { host })).status, 401);
    assert.equal((await request(port, '/api/status', { host, authorization: `Bearer ${TOKEN}` })).status, 404);
    // the main listener has no /metrics
    assert.equal((await request(s.port, '/metrics', { host: `127.0.0.1:${s.port}` })).status, 404);
    assert.deepEqual(s.accessStats.refused, { host: 1, token: 1 }, 'counted with the main listener\'s');
    await s.close();
  });

  test('server.openPaths: [] puts /metrics behind the token there too', async () => {
    const s = await serve('127.0.0.1', config({ tokenFile: file(TOKEN), openPaths: ['/healthz'] }), { metricsListen: { host: '127.0.0.1', port: 0 } });
    const port = metricsPort(s);
    const host = `127.0.0.1:${port}`;
    assert.equal((await request(port, '/healthz', { host })).status, 200);
    for (const p of ['/metrics', '/readyz']) {
      assert.equal((await request(port, p, { host })).status, 401, p);
      assert.equal((await request(port, p, { host, authorization: `Bearer ${TOKEN}` })).status, 200, p);
    }
    await s.close();
  });

  test('beyond loopback without a token: served to anyone while its paths are open; refused at start when one is not', async () => {
    // the usual set-up: the API on loopback, metrics for Prometheus and the kubelet on every interface
    const s = await serve('127.0.0.1', config(), { metricsListen: { host: '0.0.0.0', port: 0 } });
    const port = metricsPort(s);
    assert.equal((await request(port, '/metrics', { host: `node-1.example:${port}` })).status, 200, 'no Host check beyond loopback');
    await s.close();

    const main = accessPolicy(config({ openPaths: ['/healthz'] }), '127.0.0.1', '127.0.0.1:9745');
    let caught: unknown;
    try {
      metricsAccessPolicy(main, '0.0.0.0', '0.0.0.0:9746');
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof UsageError);
    assert.equal(
      caught.message,
      'metrics.listen: 0.0.0.0:9746 is not a loopback address and there is no token, yet server.openPaths leaves /metrics, /readyz closed: ' +
        'set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE), add them to server.openPaths, or set server.allowUnauthenticated: true',
    );
    // nothing bound: the refusal comes before either listener
    await assert.rejects(serve('127.0.0.1', config({ openPaths: ['/healthz'] }), { metricsListen: { host: '0.0.0.0', port: 0 } }), /^UsageError: metrics\.listen: .* leaves \/metrics, \/readyz closed/);
    // on loopback, or with a token, or allowed: no refusal
    assert.equal(metricsAccessPolicy(main, '127.0.0.1', '127.0.0.1:9746').loopback, true);
    assert.equal(metricsAccessPolicy(accessPolicy(config({ openPaths: [], tokenFile: file(TOKEN) }), '127.0.0.1', 'x'), '0.0.0.0', 'y').loopback, false);
    assert.equal(metricsAccessPolicy(accessPolicy(config({ openPaths: [], allowUnauthenticated: true }), '127.0.0.1', 'x'), '::', 'y').loopback, false);
  });

  test('bpfagent run: the refusal is one line on stderr, exit 2, before anything is bound', () => {
    const r = runOnce(['--listen', '127.0.0.1:9', '--metrics-listen', '0.0.0.0:9'], { BPFAGENT_CONFIG: '', BPFAGENT_SERVER_OPEN_PATHS: '/healthz' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      'bpfagent: metrics.listen: 0.0.0.0:9 is not a loopback address and there is no token, yet server.openPaths leaves /metrics, /readyz closed: ' +
        'set server.tokenFile (BPFAGENT_SERVER_TOKEN_FILE), add them to server.openPaths, or set server.allowUnauthenticated: true\n',
    );
  });

  test('TLS: the metrics listener speaks HTTPS with the same certificate', async () => {
    const keyFile = path.join(dir, 'm.key');
    const certFile = path.join(dir, 'm.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
    const pem = execFileSync('cat', [certFile]);
    const s = await serve('127.0.0.1', config(), { tls: { certFile, keyFile }, metricsListen: { host: '127.0.0.1', port: 0 } });
    const port = metricsPort(s);
    const r = await request(port, '/metrics', { host: `localhost:${port}` }, { tls: { ca: pem } });
    assert.equal(r.status, 200, r.body);
    await assert.rejects(request(port, '/metrics', { host: `localhost:${port}` }), 'no plain HTTP on it');
    await s.close();
  });
});
