/** The access policy of `bpfagent run`'s listener, from its configuration (see src/server/access.ts). */
import type { AgentConfig } from '../config/schema.js';
import { accessPolicy, type AccessPolicy } from '../server/access.js';

/** host:port as written in messages: [v6]:port */
export function showListen(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Throws a UsageError when the listener would serve the map to anyone, or the token file cannot be used. */
export function runAccessPolicy(cfg: AgentConfig): AccessPolicy {
  return accessPolicy(cfg.server, cfg.listen.host, showListen(cfg.listen.host, cfg.listen.port));
}
