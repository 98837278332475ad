"""Holds N loopback TCP connections open (both ends in this process), for bench/open-conns.mjs.

  open-conns-holder.py N     then stdin: "touch" sends 1 byte on every client socket; "quit"
Prints {"event": "ready", "n": N} once all are connected and accepted, {"event": "touched"} after each touch.
"""
import json, resource, socket, sys

n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (2 * n + 1000, 2 * n + 1000))
ports = 4  # each (server port) gives up to ~64k client ports
servers = []
for i in range(ports):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(4096)
    servers.append(s)
clients, accepted = [], []
for i in range(n):
    srv = servers[i % ports]
    c = socket.create_connection(srv.getsockname())
    clients.append(c)
    if len(clients) % 1000 == 0 or i == n - 1:
        while len(accepted) < len(clients):
            for s in servers:
                s.setblocking(False)
                try:
                    while True:
                        accepted.append(s.accept()[0])
                except BlockingIOError:
                    pass
print(json.dumps({'event': 'ready', 'n': len(clients)}), flush=True)
for line in sys.stdin:
    if line.strip() == 'touch':
        for c in clients:
            c.send(b'x')
        print(json.dumps({'event': 'touched'}), flush=True)
    elif line.strip() == 'quit':
        break
