/** The access policy and TLS of the listeners of `bpfagent run` and `bpfagent hub`, from the `server:` section (see src/server/access.ts). */
import type { AgentConfig } from '../config/schema.js';
import { accessPolicy, metricsAccessPolicy, showListen, type AccessPolicy } from '../server/access.js';
import type { TlsFiles } from '../server/tls.js';

/**
 * Throws a UsageError when a listener (the main one, or metrics.listen) would
 * serve to anyone what the configuration keeps behind a token, or the token
 * file cannot be used. Returns the main listener's policy.
 */
export function runAccessPolicy(cfg: AgentConfig): AccessPolicy {
  const policy = accessPolicy(cfg.server, cfg.listen.host, showListen(cfg.listen.host, cfg.listen.port));
  const m = cfg.metrics.listen;
  if (m) metricsAccessPolicy(policy, m.host, showListen(m.host, m.port));
  return policy;
}

/** server.tls's files, when both are set (the schema refuses one without the other). */
export function tlsFiles(cfg: AgentConfig): TlsFiles | undefined {
  const { certFile, keyFile } = cfg.server.tls;
  return certFile !== null && keyFile !== null ? { certFile, keyFile } : undefined;
}
