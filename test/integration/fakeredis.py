"""A tiny fake Redis server on 127.0.0.1 that answers every command with an
error: by default `-ERR <script>alert(1)</script>`, the kind of server text
the dashboard must show as text and never as markup.

It speaks just enough RESP for hiredis: it frames each request (multibulk
`*N` arrays and inline commands, pipelined or split across reads) and sends
one error reply per command, in order. Every command is recorded in
`commands` as a list of bytes arguments.

    with FakeRedis() as fake:
        config = f'[target evil]\\nkind = redis\\nhost = 127.0.0.1\\nport = {fake.port}\\n'
"""

import os
import selectors
import sys

from fakeloop import SelectorServer, tcp_listener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from localstack import free_port  # noqa: E402  (test/localstack.py)

XSS = '<script>alert(1)</script>'


class FakeRedis(SelectorServer):
    thread_name = 'fakeredis'

    def __init__(self, error=f'ERR {XSS}'):
        super().__init__()
        self.error = error
        self.commands = []
        self.connections = 0
        self.port = free_port()
        self._srv = tcp_listener(self.port, 64)
        self._sel.register(self._srv, selectors.EVENT_READ, None)
        self._bufs = {}
        self.start()

    # ----- RESP framing

    @staticmethod
    def _parse(buf):
        """One command from the front of buf -> (args, rest), or (None, buf)
        when incomplete. Raises ValueError on a malformed request."""
        if not buf:
            return None, buf
        if buf[:1] != b'*':
            end = buf.find(b'\r\n')
            if end < 0:
                return None, buf
            return buf[:end].split(), buf[end + 2:]
        end = buf.find(b'\r\n')
        if end < 0:
            return None, buf
        n = int(buf[1:end])
        pos, args = end + 2, []
        for _ in range(max(n, 0)):
            end = buf.find(b'\r\n', pos)
            if end < 0:
                return None, buf
            if buf[pos:pos + 1] != b'$':
                raise ValueError(f'expected a bulk string at {pos}')
            size = int(buf[pos + 1:end])
            start = end + 2
            if len(buf) < start + size + 2:
                return None, buf
            args.append(buf[start:start + size])
            pos = start + size + 2
        return args, buf[pos:]

    def _reply(self, args):
        msg = self.error.replace('\r', ' ').replace('\n', ' ')
        return b'-' + msg.encode('utf-8') + b'\r\n'

    # ----- loop

    def _on_event(self, key, events):
        if key.data is None:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            conn.setblocking(False)
            self._bufs[conn] = b''
            self.connections += 1
            self._sel.register(conn, selectors.EVENT_READ, 'conn')
            return
        self._on_readable(key.fileobj)

    def _on_readable(self, conn):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data:
            self._close(conn)
            return
        buf = self._bufs[conn] + data
        out = b''
        try:
            while True:
                args, buf = self._parse(buf)
                if args is None:
                    break
                if args:
                    with self._lock:
                        self.commands.append(args)
                    out += self._reply(args)
        except ValueError:
            self._close(conn)
            return
        self._bufs[conn] = buf
        if out:
            try:
                conn.setblocking(True)
                conn.settimeout(2)
                conn.sendall(out)
                conn.setblocking(False)
            except OSError:
                self._close(conn)

    def _close(self, conn):
        try:
            self._sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        self._bufs.pop(conn, None)
        conn.close()

    def command_names(self):
        with self._lock:
            return [c[0].decode('ascii', 'replace').upper() for c in self.commands]

    def _release(self):
        for conn in list(self._bufs):
            self._close(conn)
        self._srv.close()
