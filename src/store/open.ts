/** The store `bpfagent run` keeps, from its `store:` configuration. */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/schema.js';
import { MemoryFlowStore } from './memory-store.js';

export function openFlowStore(cfg: AgentConfig['store'], log: Logger): MemoryFlowStore {
  const bounds = { retentionMs: cfg.retention, maxEdgesPerInterval: cfg.maxEdgesPerInterval, maxEdges: cfg.maxEdges, maxConnections: cfg.maxConnections };
  if (cfg.dataDir !== null) log.warn({ dataDir: cfg.dataDir }, 'store: dataDir is not supported yet; the store is in memory only');
  return new MemoryFlowStore(bounds);
}
