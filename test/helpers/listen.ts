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

/** A loopback server that holds connections until told, and opens `n` clients to it. */
export async function openConnections(n: number): Promise<{ port: number; closeAll: () => Promise<void> }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s));
  const port = await listenLocal(server, 0);
  const clients = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((r) => {
      const c = net.connect(port, '127.0.0.1', () => r(c));
    })),
  );
  while (accepted.length < n) await new Promise((r) => setTimeout(r, 10));
  return {
    port,
    closeAll: async () => {
      await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(() => r()))));
      for (const s of accepted) s.end();
      await new Promise((r) => server.close(r));
      await new Promise((r) => setTimeout(r, 300));
    },
  };
}
