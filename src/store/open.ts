/** The store `bpfagent run` keeps, from its `store:` configuration: in memory, or also in SQLite under `dataDir`. */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/schema.js';
import { MemoryFlowStore } from './memory-store.js';
import { SqliteFlowStore } from './sqlite-store.js';

export function openFlowStore(cfg: AgentConfig['store'], log: Logger): MemoryFlowStore {
  const bounds = { retentionMs: cfg.retention, maxEdgesPerInterval: cfg.maxEdgesPerInterval, maxEdges: cfg.maxEdges, maxConnections: cfg.maxConnections };
  if (cfg.dataDir === null) return new MemoryFlowStore(bounds);
  const store = new SqliteFlowStore(cfg.dataDir, bounds);
  const s = store.stats();
  log.info({ file: store.file, intervals: s.intervals, connections: s.connections }, `store: ${store.file}: ${s.intervals} intervals and ${s.connections} connections read back`);
  return store;
}
