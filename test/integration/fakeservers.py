"""Fake TCP servers on 127.0.0.1 for the fault tests: a relay that can turn
into a server answering garbage, or one that accepts and never answers.

    with FakeServer(upstream=stack.redis_port) as fake:   # relays at first
        config = f'... port = {fake.port} ...'
        fake.set_mode('garbage')   # now a server that answers junk
        fake.set_mode('forward')   # the real server is back

Modes:
  forward  relay every connection to 127.0.0.1:upstream, byte for byte.
  garbage  answer junk: on accept, and again for every read from the
           client (HTTP error text, then binary noise, never a valid
           PostgreSQL, PgBouncer or Redis message start).
  silent   accept and read, never answer (a hung server whose kernel still
           completes the TCP handshake).

set_mode() returns once the new mode holds. Connections already open are
treated as if the server behind them had changed: a relayed connection
loses its upstream and from then on gets the new mode's treatment
(garbage answers, or silence), and switching back to `forward` closes
every connection that is not relayed (the daemon reconnects to the real
server). Counters: `accepted`, `bytes_in`, `bytes_out`.

Standard library only; one thread with a selector.
"""

import os
import random
import selectors
import socket
import sys
import threading

from fakeloop import SelectorServer, tcp_listener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from localstack import free_port  # noqa: E402  (test/localstack.py)

MODES = ('forward', 'garbage', 'silent')
OUT_MAX = 256 * 1024   # a client that does not read gets no more junk than this


def garbage_bytes(seed=0, size=2048):
    """Junk that no client of the three protocols can take for an answer:
    it starts like an HTTP error page (`H` is neither a PostgreSQL
    SSL-negotiation answer nor a message type libpq expects at start-up, nor
    a RESP type byte) and goes on with binary noise, NULs and invalid UTF-8."""
    head = (b'HTTP/1.1 400 Bad Request\r\nServer: not-a-database\r\n'
            b'Content-Type: text/html\r\n\r\n<html><body>\xff\xfe\x00garbage '
            b'<script>alert(1)</script></body></html>\r\n')
    return head + random.Random(seed).randbytes(max(0, size - len(head)))


class _Conn:
    __slots__ = ('sock', 'peer', 'mode', 'out', 'is_upstream', 'closed')

    def __init__(self, sock, mode, is_upstream=False):
        self.sock = sock
        self.peer = None        # the other end of a relayed pair
        self.mode = mode        # what this client connection gets
        self.out = bytearray()  # waiting to be written to sock
        self.is_upstream = is_upstream
        self.closed = False


class FakeServer(SelectorServer):
    thread_name = 'fakeserver'

    def __init__(self, mode='garbage', upstream=None, garbage=None, seed=0):
        if mode not in MODES:
            raise ValueError(mode)
        if mode == 'forward' and upstream is None:
            raise ValueError('forward needs an upstream port')
        super().__init__()
        self.upstream = upstream
        self.garbage = garbage if garbage is not None else garbage_bytes(seed)
        self.mode = mode
        self.accepted = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.port = free_port()
        self._srv = tcp_listener(self.port, 128)
        self._sel.register(self._srv, selectors.EVENT_READ, 'accept')
        self._conns = set()
        self._pending = []      # (mode, threading.Event) for the loop to apply
        self.start()

    def set_mode(self, mode, timeout=5):
        if mode not in MODES:
            raise ValueError(mode)
        if mode == 'forward' and self.upstream is None:
            raise ValueError('forward needs an upstream port')
        done = threading.Event()
        with self._lock:
            self._pending.append((mode, done))
        self.wake()
        if not done.wait(timeout):
            raise RuntimeError('fake server loop did not apply the mode')

    def connections(self):
        """Open client connections (not counting upstreams)."""
        with self._lock:
            return sum(1 for c in self._conns if not c.is_upstream)

    def _release(self):
        for c in list(self._conns):
            self._close(c)
        self._srv.close()

    # ----- the loop

    def _on_wake(self):
        self._apply_modes()

    def _on_event(self, key, events):
        if key.data == 'accept':
            self._accept()
            return
        conn = key.data
        if conn.closed:
            return
        if events & selectors.EVENT_WRITE:
            self._flush(conn)
        if events & selectors.EVENT_READ and not conn.closed:
            self._read(conn)

    def _apply_modes(self):
        with self._lock:
            pending, self._pending = self._pending, []
        for mode, done in pending:
            self.mode = mode
            for c in list(self._conns):
                if c.closed or c.is_upstream:
                    continue
                if mode == 'forward':
                    if c.peer is None:
                        self._close(c)  # a fake's connection: the real server is back
                elif c.peer is not None:
                    # the server behind it changed: the upstream goes away
                    up, c.peer = c.peer, None
                    up.peer = None
                    self._close(up)
                    c.mode = mode
            done.set()

    def _register(self, conn):
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        try:
            self._sel.modify(conn.sock, events, conn)
        except KeyError:
            self._sel.register(conn.sock, events, conn)

    def _accept(self):
        try:
            sock, _ = self._srv.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepted += 1
        conn = _Conn(sock, self.mode)
        with self._lock:
            self._conns.add(conn)
        if self.mode == 'forward':
            try:
                up = socket.create_connection(('127.0.0.1', self.upstream), timeout=2)
            except OSError:
                self._close(conn)  # the real server is down: so is the relay
                return
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = _Conn(up, 'forward', is_upstream=True)
            conn.peer, peer.peer = peer, conn
            with self._lock:
                self._conns.add(peer)
            self._register(peer)
        elif self.mode == 'garbage':
            conn.out += self.garbage
        self._register(conn)

    def _read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            self._close(conn)
            return
        if not conn.is_upstream:
            self.bytes_in += len(data)
        if conn.peer is not None:
            self._queue(conn.peer, data)
        elif conn.is_upstream:
            return  # a detached upstream: ignore
        elif conn.mode == 'garbage':
            self._queue(conn, self.garbage, cap=True)
        # silent: swallow

    def _queue(self, conn, data, cap=False):
        if not cap or len(conn.out) < OUT_MAX:
            conn.out += data
        self._flush(conn)

    def _flush(self, conn):
        if conn.out:
            try:
                n = conn.sock.send(conn.out)
            except BlockingIOError:
                n = 0
            except OSError:
                self._close(conn)
                return
            if not conn.is_upstream:
                self.bytes_out += n
            del conn.out[:n]
        if not conn.closed:
            self._register(conn)

    def _close(self, conn):
        if conn.closed:
            return
        conn.closed = True
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass
        with self._lock:
            self._conns.discard(conn)
        peer, conn.peer = conn.peer, None
        if peer is not None:
            peer.peer = None
            self._close(peer)
