/** One traced TCP connection between two test hosts: a peer server, a peer client, and the agent's records of both ends. */
import type { TcpRecord } from '../../src/events/records.js';
import type { TraceAgent } from './agent.js';
import { Peer } from './processes.js';

export interface End {
  host: string;
  port: number;
  netns: string;
  /** bytes this end sends; none without it */
  send?: number;
}

export interface TracedConnection {
  server: Peer;
  client: Peer;
  /** the client's local port */
  localPort: number;
  /** the agent's outbound record of the client */
  c: TcpRecord;
  /** the agent's inbound record of the server (undefined with `inbound: false`) */
  s: TcpRecord | undefined;
}

const peerArgs = (role: 'server' | 'client', e: End): string[] => [
  role, '--host', e.host, '--port', String(e.port), ...(e.send === undefined ? [] : ['--send', String(e.send)]),
];

/**
 * Start a server (comm `tsrv-<tag>`) listening at `server`, then a client
 * (comm `tcli-<tag>`) dialling `client`; once the client is done, wait for the
 * agent's outbound record of the client and (unless `inbound` is false) its
 * inbound record of the server.
 */
export async function traceConnection(
  agent: TraceAgent,
  tag: string,
  server: End,
  client: End,
  { inbound = true }: { inbound?: boolean } = {},
): Promise<TracedConnection> {
  const srv = new Peer(`tsrv-${tag}`, peerArgs('server', server), { netns: server.netns });
  await srv.waitFor('listening');
  const cli = new Peer(`tcli-${tag}`, peerArgs('client', client), { netns: client.netns });
  const { localPort } = await cli.waitFor('connected');
  await cli.waitFor('done');
  const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === cli.pid);
  const s = inbound ? (await agent.waitFor((r) => r.direction === 'inbound' && r.local.pid === srv.pid))[0] : undefined;
  return { server: srv, client: cli, localPort: localPort as number, c: c!, s };
}
