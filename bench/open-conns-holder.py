"""Holds N loopback TCP connections open (both ends in this process), for bench/open-conns.mjs.

  open-conns-holder.py N     then, on stdin: "touch" sends 1 byte on every client socket; "quit"
Prints {"event": "ready", "n": N} once all are connected and accepted, {"event": "touched"} after
each touch. N is at most (open-file limit - 100) / 2: the bench spreads larger counts over several
holders, as many processes hold a node's connections.
"""
import json, resource, socket, sys

n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if 2 * n + 100 > hard:
    sys.exit(f"open-conns-holder: {n} connections need {2 * n + 100} open files; the hard limit is {hard}")
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ports = 4  # client ports are chosen per destination: 4 server ports give room for 4 x ~64k
servers = []
for i in range(ports):
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(4096)
    s.setblocking(False)
    servers.append(s)
clients, accepted = [], []
for i in range(n):
    clients.append(socket.create_connection(servers[i % ports].getsockname()))
    if len(clients) % 1000 == 0 or i == n - 1:
        # accept what is queued before the backlogs fill
        while len(accepted) < len(clients):
            for s in servers:
                try:
                    while True:
                        a = s.accept()[0]
                        a.setblocking(True)
                        accepted.append(a)
                except BlockingIOError:
                    pass
print(json.dumps({'event': 'ready', 'n': len(clients)}), flush=True)
for line in sys.stdin:
    if line.strip() == 'touch':
        for c in clients:
            c.send(b'x')
        for a in accepted:
            a.recv(1)
        print(json.dumps({'event': 'touched'}), flush=True)
    elif line.strip() == 'quit':
        break
