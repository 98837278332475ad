/** The access policy of `bpfagent run`'s listener, from its configuration (see src/server/access.ts). */
import type { AgentConfig } from '../config/schema.js';
import { accessPolicy, metricsAccessPolicy, showListen, type AccessPolicy } from '../server/access.js';

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
