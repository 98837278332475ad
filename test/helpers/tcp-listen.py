"""A listening TCP socket for kernel tests, in its own process with its own command name.

  tcp-listen.py COMM HOST PORT [--reuseport] [--accept]

Listens on HOST:PORT (SO_REUSEPORT with --reuseport); with --accept, accepts
connections and keeps them, never reading or closing them (a peer's reset
ends them). A line "close" on stdin closes the listening socket. Prints JSON
lines: {"event": "listening"|"accepted"|"closed", "pid": ...}.
"""
import json
import os
import socket
import sys
import threading


def say(**event):
    print(json.dumps({'pid': os.getpid(), **event}), flush=True)


comm, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open('/proc/self/comm', 'w') as f:
    f.write(comm)
family = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
if '--reuseport' in sys.argv:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind((host, port))
s.listen(128)
kept = []


def accept():
    while True:
        try:
            c, addr = s.accept()
        except OSError:
            return
        kept.append(c)
        say(event='accepted', remotePort=addr[1])


if '--accept' in sys.argv:
    threading.Thread(target=accept, daemon=True).start()
say(event='listening', port=s.getsockname()[1])
for line in sys.stdin:
    if line.strip() == 'close':
        s.shutdown(socket.SHUT_RDWR)
        s.close()
        say(event='closed')
