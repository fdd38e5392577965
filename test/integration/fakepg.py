"""A fake PostgreSQL / PgBouncer server on 127.0.0.1 that speaks the wire
protocol (v3) correctly but answers in ways a real server rarely does: the
hostile half of the fault matrix (test_hostile_pg.py).

    with FakePG(mode='copy_out') as fake:
        config = f'... port = {fake.port} ...'

Every connection logs in (trust, or SCRAM-SHA-256 with the iteration count
the test chooses), then each Query gets the treatment of the current mode.
Connections to the database `pgbouncer` (the admin console) follow
`admin_mode` instead. Modes:

  normal       plausible answers to the daemon's check queries
  copy_out     CopyOutResponse (then silence): libpq stays in COPY OUT
  copy_in      CopyInResponse
  copy_both    CopyBothResponse
  extra        the normal answer plus one more result set
  notify       NotificationResponse and NoticeResponse before the answer,
               and again on the idle connection after it
  huge_row     a DataRow that announces 1 GiB and streams it
  many_rows    DataRows without end
  close_after  the normal answer, then the connection closes after `delay`
  hang         reads, never answers
  error        ErrorResponse (for the admin console: SHOW refused)
  slow_error   ErrorResponse after `delay` seconds

(`admin_delay` is the admin console's `delay`.)

auth: 'trust' or 'scram' (server-first message with `iterations`; the
login never completes: the client's proof is answered with an error).

Thread per connection, standard library only; close() ends everything.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from localstack import free_port  # noqa: E402  (test/localstack.py)

SSL_REQUEST, GSS_REQUEST, PROTO_3 = 80877103, 80877104, 196608


def msg(kind, payload=b''):
    return kind + struct.pack('!I', len(payload) + 4) + payload


def cstr(s):
    return s.encode() + b'\0'


def row_description(names):
    out = struct.pack('!H', len(names))
    for n in names:
        out += cstr(n) + struct.pack('!IHIhiH', 0, 0, 25, -1, -1, 0)
    return msg(b'T', out)


def data_row(values):
    out = struct.pack('!H', len(values))
    for v in values:
        if v is None:
            out += struct.pack('!i', -1)
        else:
            b = str(v).encode()
            out += struct.pack('!I', len(b)) + b
    return msg(b'D', out)


def complete(tag):
    return msg(b'C', cstr(tag))


def error(text, code='XX000'):
    return msg(b'E', b'SERROR\0VERROR\0C' + cstr(code) + b'M' + cstr(text) + b'\0')


def ready():
    return msg(b'Z', b'I')


def table(names, rows, tag='SELECT'):
    out = row_description(names)
    for r in rows:
        out += data_row(r)
    return out + complete(f'{tag} {len(rows)}')


def normal_answer(sql):
    """What a healthy server would say to the daemon's queries."""
    if 'pg_postmaster_start_time' in sql:   # the postgres check
        return (complete('SET')
                + table(['?column?', 'server_version', 'start', 'count', 'max',
                         'reserved', 'rec', 'pid', 'now'],
                        [[1, '15.0', '1700000000.5', 3, 100, 3, 'f', 4242,
                          '2026-12-05 00:00:00+00']])
                + table(['pid', 'host', 'start'], []))
    if sql.startswith('SHOW'):
        return error('fake: no admin console here')
    return complete('SET') + table(['?column?'], [[1]])


class FakePG:
    def __init__(self, mode='normal', admin_mode='error', auth='trust',
                 iterations=4096, delay=0.3, admin_delay=None):
        self.mode = mode
        self.admin_mode = admin_mode
        self.auth = auth
        self.iterations = iterations
        self.delay = delay
        self.admin_delay = delay if admin_delay is None else admin_delay
        self.accepted = 0
        self.queries = []
        self.bytes_out = 0
        self._lock = threading.Lock()
        self._conns = set()
        self._running = True
        self.port = free_port()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(('127.0.0.1', self.port))
        self._srv.listen(64)
        self._thread = threading.Thread(target=self._accept, name='fakepg', daemon=True)
        self._thread.start()

    @property
    def address(self):
        return f'127.0.0.1:{self.port}'

    # ----- plumbing

    def _accept(self):
        while self._running:
            try:
                sock, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True,
                             name='fakepg-conn').start()

    def _send(self, sock, data):
        sock.sendall(data)
        with self._lock:
            self.bytes_out += len(data)

    @staticmethod
    def _recv_exact(sock, n):
        buf = b''
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError('closed')
            buf += chunk
        return buf

    def _read_message(self, sock):
        kind = self._recv_exact(sock, 1)
        (length,) = struct.unpack('!I', self._recv_exact(sock, 4))
        return kind, self._recv_exact(sock, length - 4)

    def _serve(self, sock):
        try:
            self._session(sock)
        except (OSError, ConnectionError):
            pass
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    # ----- one connection

    def _startup(self, sock):
        while True:
            (length,) = struct.unpack('!I', self._recv_exact(sock, 4))
            body = self._recv_exact(sock, length - 4)
            (code,) = struct.unpack('!I', body[:4])
            if code in (SSL_REQUEST, GSS_REQUEST):
                self._send(sock, b'N')
                continue
            parts = body[4:].split(b'\0')
            return dict(zip((p.decode() for p in parts[0::2]),
                            (p.decode() for p in parts[1::2])))

    def _login(self, sock):
        if self.auth == 'scram':
            self._send(sock, msg(b'R', struct.pack('!I', 10) + b'SCRAM-SHA-256\0\0'))
            _, body = self._read_message(sock)   # SASLInitialResponse
            first = body.split(b'\0', 1)[1][4:].decode()
            cnonce = first.split('r=', 1)[1]
            server_first = f'r={cnonce}fakefakefake,s=c2FsdHNhbHRzYWx0,i={self.iterations}'
            self._send(sock, msg(b'R', struct.pack('!I', 11) + server_first.encode()))
            self._read_message(sock)             # the proof: PBKDF2 is done by now
            self._send(sock, error('fake: authentication refused', '28P01'))
            return False
        self._send(sock, msg(b'R', struct.pack('!I', 0)))
        for k, v in (('server_version', '15.0'), ('client_encoding', 'UTF8'),
                     ('standard_conforming_strings', 'on'), ('integer_datetimes', 'on'),
                     ('DateStyle', 'ISO, MDY')):
            self._send(sock, msg(b'S', cstr(k) + cstr(v)))
        self._send(sock, msg(b'K', struct.pack('!II', 4242, 1)) + ready())
        return True

    def _session(self, sock):
        params = self._startup(sock)
        if not self._login(sock):
            return
        admin = params.get('database') == 'pgbouncer'
        while self._running:
            kind, body = self._read_message(sock)
            if kind == b'X':
                return
            if kind != b'Q':
                continue
            sql = body.rstrip(b'\0').decode(errors='replace')
            with self._lock:
                self.queries.append(sql)
            if not self._answer(sock, self.admin_mode if admin else self.mode, sql,
                                self.admin_delay if admin else self.delay):
                return

    def _answer(self, sock, mode, sql, delay):
        """Answers one query; False ends the connection."""
        if mode == 'normal':
            self._send(sock, normal_answer(sql) + ready())
        elif mode in ('copy_out', 'copy_in', 'copy_both'):
            kind = {'copy_out': b'H', 'copy_in': b'G', 'copy_both': b'W'}[mode]
            self._send(sock, msg(kind, struct.pack('!bH', 0, 0)))
            if mode != 'copy_in':
                self._send(sock, msg(b'd', b'row\n'))
        elif mode == 'extra':
            self._send(sock, normal_answer(sql) + table(['extra'], [['x']]) + ready())
        elif mode == 'notify':
            note = (msg(b'A', struct.pack('!I', 4242) + cstr('chan') + cstr('payload'))
                    + msg(b'N', b'SWARNING\0VWARNING\0C01000\0Mfake: a notice\0\0'))
            self._send(sock, note + normal_answer(sql) + ready())
            time.sleep(0.05)
            self._send(sock, note)
        elif mode == 'huge_row':
            size = 1 << 30
            self._send(sock, complete('SET') + row_description(['big'])
                       + b'D' + struct.pack('!IHI', 4 + 2 + 4 + size, 1, size))
            chunk = b'x' * (1 << 20)
            while self._running:
                self._send(sock, chunk)
        elif mode == 'many_rows':
            self._send(sock, complete('SET') + row_description(['n']))
            rows = data_row(['0123456789' * 10]) * 10000
            while self._running:
                self._send(sock, rows)
        elif mode == 'close_after':
            self._send(sock, normal_answer(sql) + ready())
            time.sleep(delay)
            return False
        elif mode == 'hang':
            pass
        elif mode == 'error':
            self._send(sock, error(f'fake: {sql.split()[0] if sql else "?"} refused')
                       + ready())
        elif mode == 'slow_error':
            time.sleep(delay)
            self._send(sock, error('fake: refused after a while') + ready())
        else:
            raise ValueError(mode)
        return True

    def close(self):
        self._running = False
        try:
            self._srv.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
