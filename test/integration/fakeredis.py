"""A tiny fake Redis server on 127.0.0.1, in two modes.

By default it answers every command with an error: `-ERR <script>alert(1)
</script>`, the kind of server text the dashboard must show as text and
never as markup.

With `replies` (a dict, possibly empty) it answers like a well-behaved Redis
7 for the commands the daemon sends (AUTH, SELECT, INFO, PING, SET, GET,
DEL, LLEN, CLIENT LIST) except those the dict names: correct RESP, but
what a hostile or confused server would say. A value is the reply's bytes,
a callable `(args) -> bytes` (args: the command's arguments as bytes), or a
`Stream` that sends a header and then filler bytes for as long as the peer
reads them (a bulk that never ends). `push(data)` sends bytes to every open
connection unasked (an unsolicited reply on the idle connection).

It frames each request (multibulk `*N` arrays and inline commands,
pipelined or split across reads) and answers each command in order. Every
command is recorded in `commands` as a list of bytes arguments.

    with FakeRedis(replies={'PING': b'+PONG\\r\\n+OK\\r\\n'}) as fake:
        config = f'[target evil]\\nkind = redis\\nhost = 127.0.0.1\\nport = {fake.port}\\n'
"""

import os
import selectors
import sys

from fakeloop import SelectorServer, tcp_listener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from localstack import free_port  # noqa: E402  (test/localstack.py)

XSS = '<script>alert(1)</script>'

# What a well-behaved server's INFO says: enough for the daemon's parser.
INFO = ('# Server\r\nredis_version:7.0.15\r\nrun_id:' + 'f' * 40 + '\r\n'
        'uptime_in_seconds:100\r\n\r\n# Clients\r\nconnected_clients:2\r\n'
        'maxclients:10000\r\nblocked_clients:0\r\n\r\n# Memory\r\nused_memory:1000000\r\n'
        'maxmemory:0\r\nmaxmemory_policy:noeviction\r\n\r\n# Persistence\r\nloading:0\r\n'
        'rdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_last_write_status:ok\r\n\r\n'
        '# Stats\r\nevicted_keys:0\r\n\r\n# Replication\r\nrole:master\r\n\r\n'
        '# Keyspace\r\n')
CLIENTS = ('id=3 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=8 name= age=1 idle=0 '
           'flags=N db=2 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 '
           'multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|list user=default '
           'redir=-1 resp=2\n')
CHUNK = 65536


def bulk(data):
    """A RESP bulk string."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    return b'$%d\r\n%s\r\n' % (len(data), data)


class Stream:
    """A reply that never ends: `header`, then `filler` repeated for as long
    as the peer reads, up to `limit` bytes of filler."""

    def __init__(self, header, filler=b'x', limit=4 << 30):
        self.header = header
        self.filler = filler
        self.limit = limit


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b''
        self.out = b''
        self.stream = None
        self.stream_left = 0
        self.data = {}  # the keys SET through this connection


class FakeRedis(SelectorServer):
    thread_name = 'fakeredis'

    def __init__(self, error=f'ERR {XSS}', replies=None):
        super().__init__()
        self.error = error
        self.replies = replies
        self.commands = []
        self.connections = 0
        self.streamed = 0  # filler bytes of Streams handed to the sockets so far
        self.port = free_port()
        self._srv = tcp_listener(self.port, 64)
        self._sel.register(self._srv, selectors.EVENT_READ, None)
        self._conns = {}
        self._pushes = []
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

    def _honest(self, c, args):
        """What a well-behaved Redis answers."""
        name = args[0].upper()
        if name in (b'AUTH', b'SELECT'):
            return b'+OK\r\n'
        if name == b'INFO':
            return bulk(INFO)
        if name == b'PING':
            return b'+PONG\r\n'
        if name == b'SET' and len(args) >= 3:
            c.data[args[1]] = args[2]
            return b'+OK\r\n'
        if name == b'GET' and len(args) >= 2:
            value = c.data.get(args[1])
            return b'$-1\r\n' if value is None else bulk(value)
        if name == b'DEL':
            return b':%d\r\n' % sum(1 for k in args[1:] if c.data.pop(k, None) is not None)
        if name == b'LLEN':
            return b':0\r\n'
        if name == b'CLIENT':
            return bulk(CLIENTS)
        return b"-ERR unknown command '" + args[0][:40] + b"'\r\n"

    def _reply(self, c, args):
        if self.replies is None:
            msg = self.error.replace('\r', ' ').replace('\n', ' ')
            return b'-' + msg.encode('utf-8') + b'\r\n'
        name = args[0].decode('ascii', 'replace').upper()
        if name not in self.replies:
            return self._honest(c, args)
        value = self.replies[name]
        if callable(value):
            value = value(args)
        if isinstance(value, Stream):
            c.stream, c.stream_left = value, value.limit
            return value.header
        return value

    # ----- loop

    def _on_event(self, key, events):
        if key.data is None:
            try:
                sock, _ = self._srv.accept()
            except OSError:
                return
            sock.setblocking(False)
            self._conns[sock] = _Conn(sock)
            self.connections += 1
            self._sel.register(sock, selectors.EVENT_READ, 'conn')
            return
        c = self._conns.get(key.fileobj)
        if c is None:
            return
        if events & selectors.EVENT_READ:
            self._on_readable(c)
        if events & selectors.EVENT_WRITE and c.sock in self._conns:
            self._flush(c)

    def _on_readable(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data:
            self._close(c)
            return
        buf = c.inbuf + data
        try:
            # a reply that never ends holds the commands behind it, as a
            # real server's would (replies go out in order)
            while c.stream is None:
                args, buf = self._parse(buf)
                if args is None:
                    break
                if args:
                    with self._lock:
                        self.commands.append(args)
                    c.out += self._reply(c, args)
        except ValueError:
            self._close(c)
            return
        c.inbuf = buf
        self._flush(c)

    def _flush(self, c):
        """Send what is pending without blocking; wait for writability when
        the peer does not take it all."""
        while True:
            if not c.out and c.stream is not None and c.stream_left > 0:
                n = min(CHUNK, c.stream_left)
                reps = n // len(c.stream.filler) + 1
                c.out = (c.stream.filler * reps)[:n]
                c.stream_left -= n
                self.streamed += n
            if not c.out:
                break
            try:
                sent = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(c)
                return
            c.out = c.out[sent:]
        want = selectors.EVENT_READ
        if c.out or (c.stream is not None and c.stream_left > 0):
            want |= selectors.EVENT_WRITE
        try:
            self._sel.modify(c.sock, want, 'conn')
        except (KeyError, ValueError):
            pass

    def push(self, data):
        """Send data to every open connection, unasked."""
        with self._lock:
            self._pushes.append(data)
        self.wake()

    def _on_wake(self):
        with self._lock:
            pushes, self._pushes = self._pushes, []
        for data in pushes:
            for c in list(self._conns.values()):
                c.out += data
                self._flush(c)

    def _close(self, c):
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        self._conns.pop(c.sock, None)
        c.sock.close()

    def open_connections(self):
        return len(self._conns)

    def command_names(self):
        with self._lock:
            return [c[0].decode('ascii', 'replace').upper() for c in self.commands]

    def _release(self):
        for c in list(self._conns.values()):
            self._close(c)
        self._srv.close()
