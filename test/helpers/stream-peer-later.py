"""The server end of a StreamPair that leaves its connection in the accept queue until told.

  stream-peer-later.py COMM HOST PORT

Listens on HOST:PORT and does not accept until the line "accept" comes on
stdin; then drives the accepted connection as stream-peer.ts does: `send N`
writes N bytes, `end` half-closes. Events (stdout, JSON lines): listening,
accepted {localPort, remotePort}, received {total} after every read,
sent {total}, closed {received, sent} (then it exits). Python, because
Node.js accepts every connection as soon as it is queued.
"""
import json
import os
import socket
import sys
import threading

comm, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open('/proc/self/comm', 'w') as f:
    f.write(comm)
lock = threading.Lock()


def say(**event):
    with lock:
        print(json.dumps({'pid': os.getpid(), **event}), flush=True)


listener = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
listener.bind((host, port))
listener.listen(16)
say(event='listening', port=listener.getsockname()[1])
conn = None
received = sent = 0


def read():
    global received
    while True:
        data = conn.recv(65536)
        if not data:
            break
        received += len(data)
        say(event='received', total=received)
    # the peer ended: end too (as Node.js does without allowHalfOpen), then report
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()
    say(event='closed', received=received, sent=sent)
    os._exit(0)


for line in sys.stdin:
    cmd = line.split()
    if cmd == ['accept'] and conn is None:
        conn, peer = listener.accept()
        say(event='accepted', localPort=conn.getsockname()[1], remotePort=peer[1])
        threading.Thread(target=read, daemon=True).start()
    elif len(cmd) == 2 and cmd[0] == 'send' and conn is not None:
        conn.sendall(b'a' * int(cmd[1]))
        sent += int(cmd[1])
        say(event='sent', total=sent)
    elif cmd == ['end'] and conn is not None:
        conn.shutdown(socket.SHUT_WR)
