/** Test servers on the loopback: a free port, listening, and going away. */
import net from 'node:net';

/** Listen on 127.0.0.1:`port` (0: any free one); the port it got. */
export async function listenLocal(server: net.Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** Drop the open `sockets` (emptying the set) and close `server`, if any. */
export async function closeServer(server: net.Server | undefined, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  sockets.clear();
  if (server) await new Promise<void>((r) => server.close(() => r()));
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  const port = await listenLocal(srv, 0);
  await closeServer(srv, new Set());
  return port;
}
