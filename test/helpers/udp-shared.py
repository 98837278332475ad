"""One UDP socket used by two processes at once (forked, as pre-fork servers do), for kernel tests.

  udp-shared.py send HOST PORT1 PORT2 N   one unconnected socket: the parent sends N datagrams of 10 bytes to
                                           PORT1 while its child sends N of 20 bytes to PORT2
  udp-shared.py recv HOST PORT             one socket, parent and child both in recvfrom(); they end 1 s after
                                           the traffic
Each prints one JSON line per process: {"event": "done", "pid": ..., ...}.
"""
import json
import os
import socket
import sys


def say(**event):
    print(json.dumps(event), flush=True)


def fork_pair(s, parent_work, child_work):
    """Run both at once; the child reports on the shared stdout, the parent after it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # start together
        result = child_work()
        say(event='child', pid=os.getpid(), **result)
        os._exit(0)
    os.close(r)
    os.write(w, b'x')
    result = parent_work()
    os.waitpid(pid, 0)
    say(event='done', pid=os.getpid(), localPort=s.getsockname()[1], **result)


def send(host, p1, p2, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 0))

    def to(port, size):
        def work():
            for _ in range(n):
                s.sendto(b'x' * size, (host, port))
            return {}
        return work

    fork_pair(s, to(p1, 10), to(p2, 20))


def recv(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, port))
    s.settimeout(1.0)
    say(event='listening')

    def work():
        got = 0
        while True:
            try:
                s.recvfrom(2048)
            except socket.timeout:
                if got:
                    return {'received': got}
                continue
            got += 1

    fork_pair(s, work, work)


if sys.argv[1] == 'send':
    send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
else:
    recv(sys.argv[2], int(sys.argv[3]))
