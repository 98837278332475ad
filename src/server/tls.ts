/**
 * TLS for the agent's listener from PEM files (a Kubernetes TLS Secret, a
 * cert-manager certificate). The files are looked at every 30 s and, when
 * either changed, loaded into the running server: new connections get the
 * renewed certificate, nothing restarts.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { UsageError } from '../util/errors.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

const RECHECK_MS = 30_000;

/** The certificate and key, checked to form a usable pair; a UsageError naming the file otherwise. */
export function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: string, f: string): Buffer => {
    try {
      return readFileSync(f);
    } catch (e) {
      throw new UsageError(`server.tls.${what}: ${f}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  };
  const pair = { cert: read('certFile', files.certFile), key: read('keyFile', files.keyFile) };
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new UsageError(
      `server.tls: ${files.certFile} and ${files.keyFile}: not a PEM certificate and its private key (${(e as Error).message}); check server.tls.certFile and keyFile`,
    );
  }
  return pair;
}

function stamp(files: TlsFiles): string {
  return [files.certFile, files.keyFile]
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'gone';
      }
    })
    .join('|');
}

/** Reload the server's certificate when the files change; returns the stop function. */
export function watchTls(server: HttpsServer, files: TlsFiles, log: Logger, recheckMs = RECHECK_MS): () => void {
  let last = stamp(files);
  const timer = setInterval(() => {
    const now = stamp(files);
    if (now === last) return;
    last = now;
    try {
      server.setSecureContext(readTls(files));
      log.info({ certFile: files.certFile }, `TLS: certificate reloaded from ${files.certFile}`);
    } catch (e) {
      log.warn({ err: (e as Error).message }, `TLS: kept the previous certificate: ${(e as Error).message}`);
    }
  }, recheckMs);
  timer.unref();
  return () => clearInterval(timer);
}
