"""HTTP abuse (issue: fault, abuse and soak tests, item 2): nothing hangs,
nothing leaks, nothing crashes.

- Connections up to and past http_max_connections, from several loopback
  addresses (the per-IP limit must stay below the total): the limit holds
  (the daemon never holds more sockets; libmicrohttpd stops accepting, so
  the next connection waits in the kernel's backlog unanswered), the
  connections it holds are served, the waiting one is served as soon as a
  slot frees, and once they all close the daemon keeps serving. Past the
  per-IP limit the next connection is closed at once.
- Slow clients trickling headers from 127.0.0.1 until its per-IP limit is
  full never starve requests from 127.0.0.2; the next connection from
  127.0.0.1 is closed at once.
- A trickle slower than http_connection_timeout, and an idle connection,
  are closed by the timeout (libmicrohttpd counts idle time only, so a
  faster trickle keeps its connection: the per-IP limit bounds those).
- Oversized requests (a 100 KB URL, a 100 KB header, 20000 headers, 10000
  query arguments), binary garbage, unknown methods and bad
  percent-encoding: each gets a 4xx (405 with Allow for methods, 404 for
  paths that name nothing) or a close, never a crash, and the next normal
  request is answered.
- Connection churn (opened and dropped, reset mid-request, half-closed)
  leaves no descriptor behind.

Every test runs the daemon (ASan/UBSan build by default) against one real
Redis with the three Redis targets, with raw sockets for the client side;
the daemon fixture asserts a clean exit without sanitizer reports at the
end. Timing bounds are generous for ASan on a shared 2-core machine, and
far below what a broken mechanism gives (a daemon that stopped accepting
never answers; a missed timeout keeps a socket for good).
"""
import json
import os
import random
import socket
import threading
import time

from helpers import wait_for
from test_redis_core import redis_config

OTHER = '127.0.0.2'        # "another loopback address"
CLOSED, TIMEOUT = 'closed', 'timeout'


# ----- raw HTTP client helpers

def connect(d, src='127.0.0.1', timeout=5.0):
    """A TCP connection to the daemon from source address `src`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(('127.0.0.1', d.port))
    return s


def request_bytes(path='/livez', method='GET', headers=b''):
    return (f'{method} {path} HTTP/1.1\r\nHost: healthd\r\n'.encode() + headers +
            b'\r\n')


def read_response(s, timeout=5.0):
    """(status code, headers dict, body) of one response on `s`, CLOSED when
    the server closed (or reset) without a status line, TIMEOUT when nothing
    came within `timeout` s."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b''
    try:
        while b'\r\n\r\n' not in data:
            if time.monotonic() > deadline:
                return TIMEOUT
            chunk = s.recv(65536)
            if not chunk:
                return CLOSED if not data else ('partial', data)
            data += chunk
    except socket.timeout:
        return TIMEOUT if not data else ('partial', data)
    except (ConnectionResetError, BrokenPipeError):
        return CLOSED
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ', 2)
    assert parts[0].startswith('HTTP/1.') and parts[1].isdigit(), lines[0]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get('content-length', 0))
    try:
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return int(parts[1]), headers, body


def exchange(d, data, src='127.0.0.1', timeout=5.0):
    """Send raw bytes on a new connection; the read_response() outcome."""
    s = connect(d, src, timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return CLOSED        # the server closed while we were sending
        return read_response(s, timeout)
    finally:
        s.close()


def get(d, path='/livez', src='127.0.0.1', timeout=5.0):
    """-> (status, seconds) of one GET from `src` (status is CLOSED/TIMEOUT
    when there was no answer)."""
    t0 = time.monotonic()
    r = exchange(d, request_bytes(path), src, timeout)
    return (r[0] if isinstance(r, tuple) and isinstance(r[0], int) else r,
            time.monotonic() - t0)


def assert_serving(d, src='127.0.0.1', what=''):
    """The daemon is alive and answers /livez 200 promptly."""
    d.assert_running()
    status, took = get(d, '/livez', src, timeout=5)
    assert status == 200, f'{what}: /livez from {src} gave {status!r} after {took:.2f} s'
    assert took < 2.0, f'{what}: /livez from {src} took {took:.2f} s'


def sockets_of(pid):
    """How many sockets the process holds (listeners, Redis links, HTTP)."""
    n = 0
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            n += os.readlink(f'/proc/{pid}/fd/{fd}').startswith('socket:')
        except OSError:
            pass
    return n


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def http_connections(d):
    """Established TCP connections whose local end is the daemon's port."""
    port_hex = f':{d.port:04X}'
    n = 0
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(port_hex) and cols[3] == '01':  # ESTABLISHED
                        n += 1
        except OSError:
            pass
    return n


def start(daemon, redis_server, **http):
    """The daemon on the three Redis targets with [daemon] HTTP limits
    `http` (e.g. http_max_connections=24), ready (all pass)."""
    extra = ''.join(f'{k} = {v}\n' for k, v in http.items())
    d = daemon(config_text=redis_config(redis_server.redis_port, extra=extra))
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=15, what='ready')
    # the readiness polls' connections, closed by the client, gone from the daemon too
    wait_for(lambda: http_connections(d) == 0, 5, what='no HTTP connection left')
    return d


def settle_sockets(d, want, timeout=5.0, what='sockets'):
    """Wait until the daemon holds exactly `want` sockets."""
    d.wait_for(lambda: sockets_of(d.pid) == want, timeout=timeout,
               what=f'{what}: the daemon to hold {want} sockets '
                    f'(holds {sockets_of(d.pid)})')


def idle_baseline(d):
    """The daemon's socket count with no HTTP connection open (Redis links
    and listeners), once it is stable."""
    wait_for(lambda: http_connections(d) == 0, 5, what='no HTTP connection left')
    last = [None]

    def stable():
        n = sockets_of(d.pid)
        same, last[0] = n == last[0], n
        return same
    wait_for(stable, 5, interval=0.2, what='a stable socket count')
    return last[0]


# ----- connection limits

def test_connection_limit_holds_and_daemon_keeps_serving(redis_server, daemon):
    """24 connections from three addresses (8 each, the per-IP limit) fill
    http_max_connections; a 25th from a fourth address waits (the daemon
    holds no more than 24), is served as soon as one held connection
    finishes, and after all close new requests are answered at once."""
    limit, per_ip = 24, 8
    d = start(daemon, redis_server, http_max_connections=limit,
              http_max_connections_per_ip=per_ip, http_connection_timeout='60s')
    base = idle_baseline(d)
    held = [connect(d, f'127.0.0.{1 + i // per_ip}') for i in range(limit)]
    try:
        settle_sockets(d, base + limit, what='all 24 accepted')
        # Past the limit: the kernel completes the handshake, the daemon
        # does not take the connection, and nothing is answered on it.
        waiting = connect(d, '127.0.0.4')
        waiting.sendall(request_bytes('/livez'))
        assert read_response(waiting, timeout=1.0) == TIMEOUT, \
            'a connection past http_max_connections was served at once'
        time.sleep(0.2)
        assert sockets_of(d.pid) == base + limit, 'the connection limit did not hold'
        # A held connection is served; when it finishes (Connection: close;
        # a kept-alive one keeps its slot), its slot goes to the waiting
        # connection without any other event.
        held[0].sendall(request_bytes('/readyz', headers=b'Connection: close\r\n'))
        status = read_response(held[0])
        assert status != TIMEOUT and status[0] == 200, status
        status = read_response(waiting, timeout=3.0)
        assert status != TIMEOUT, \
            'the connection waiting past the limit was not served after a slot freed ' \
            '(the daemon stopped accepting)'
        assert status[0] == 200, status
        waiting.close()
        # The other held connections, one per address, are served too.
        for s in (held[1], held[per_ip], held[2 * per_ip]):
            s.sendall(request_bytes('/livez'))
            status = read_response(s)
            assert status != TIMEOUT and status[0] == 200, status
    finally:
        for s in held:
            s.close()
    # All closed by the clients: the daemon accepts again.
    wait_for(lambda: http_connections(d) == 0, 5, what='the held connections to close')
    for src in ('127.0.0.1', '127.0.0.5', OTHER):
        assert_serving(d, src, 'after the connections past the limit closed')
    settle_sockets(d, base, what='after the burst')
    # And the limit is reusable: fill it once more, close, serve again.
    held = [connect(d, f'127.0.0.{1 + i // per_ip}') for i in range(limit)]
    settle_sockets(d, base + limit, what='the limit filled again')
    for s in held:
        s.close()
    assert_serving(d, '127.0.0.9', 'after filling the limit a second time')


def test_per_ip_limit_closes_the_extra_connection_at_once(redis_server, daemon):
    """Past http_max_connections_per_ip from one address the next connection
    is closed at once; other addresses and the held ones are unaffected."""
    d = start(daemon, redis_server, http_max_connections=16,
              http_max_connections_per_ip=4, http_connection_timeout='60s')
    held = [connect(d) for _ in range(4)]
    try:
        wait_for(lambda: http_connections(d) >= 4, 5, what='4 connections')
        for _ in range(3):
            t0 = time.monotonic()
            status = exchange(d, request_bytes('/livez'), timeout=3)
            assert status == CLOSED, f'the 5th connection from 127.0.0.1 got {status!r}'
            assert time.monotonic() - t0 < 1.5
        assert_serving(d, OTHER, 'per-IP limit of 127.0.0.1 full')
        held[0].sendall(request_bytes('/livez'))
        status = read_response(held[0])
        assert status != TIMEOUT and status[0] == 200, status
    finally:
        for s in held:
            s.close()
    # once the daemon has seen them close (a connection kept alive after its
    # answer counts against the limit until then)
    wait_for(lambda: http_connections(d) == 0, 5, what='the held connections closed')
    assert_serving(d, '127.0.0.1', 'per-IP connections closed')


# ----- slow clients and the connection timeout

class Trickler:
    """Connections that send a request's headers one byte at a time, every
    `period` s, from a background thread, never finishing them until
    finish() (or stop())."""

    def __init__(self, socks, period):
        self.socks = list(socks)
        self.period = period
        self.stopped = threading.Event()
        self.closed_early = []
        self.sent = 0
        for s in self.socks:
            s.sendall(b'GET /livez HTTP/1.1\r\nHost: healthd\r\nX-Slow: ')
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.wait(self.period):
            for s in self.socks:
                if s in self.closed_early:
                    continue
                try:
                    s.send(b'a')
                except OSError:
                    self.closed_early.append(s)
            self.sent += 1

    def stop(self):
        self.stopped.set()
        self.thread.join(5)

    def finish(self):
        """Complete every request; their statuses."""
        self.stop()
        out = []
        for s in self.socks:
            try:
                s.sendall(b'\r\n\r\n')
                out.append(read_response(s))
            except OSError:
                out.append(CLOSED)
        return out

    def close(self):
        self.stop()
        for s in self.socks:
            s.close()


def test_slow_clients_from_one_address_never_starve_another(redis_server, daemon):
    """With the default limits (256 total, 32 per address), 32 connections
    from 127.0.0.1 trickle headers one byte every 0.5 s (faster than the
    10 s connection timeout, so they stay). The 33rd from 127.0.0.1 is
    closed at once, and every request from 127.0.0.2 is answered quickly,
    all the while; the slow ones, when they finish, are served too."""
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=15, what='ready')
    per_ip = 32
    slow = Trickler([connect(d) for _ in range(per_ip)], period=0.5)
    try:
        wait_for(lambda: http_connections(d) >= per_ip, 5, what='32 slow connections')
        assert exchange(d, request_bytes('/livez'), timeout=3) == CLOSED, \
            'the 33rd connection from 127.0.0.1 was not closed'
        worst = 0.0
        t_end = time.monotonic() + 4.0        # > 3 trickle rounds
        n = 0
        while time.monotonic() < t_end or n < 20:
            path = ('/readyz', '/livez', '/status', '/metrics', '/health/redis-cache')[n % 5]
            status, took = get(d, path, src=OTHER, timeout=5)
            assert status == 200, f'{path} from {OTHER}: {status!r} after {took:.2f} s'
            worst = max(worst, took)
            n += 1
        assert worst < 1.0, f'a request from {OTHER} took {worst:.2f} s'
        assert slow.sent >= 6 and not slow.closed_early, \
            f'{len(slow.closed_early)} slow connections were closed while trickling'
        statuses = slow.finish()
        assert all(s != TIMEOUT and s != CLOSED and s[0] == 200 for s in statuses), statuses
    finally:
        slow.close()
    wait_for(lambda: http_connections(d) == 0, 5, what='the slow connections closed')
    assert_serving(d, '127.0.0.1', 'after the slow clients')


def test_trickle_slower_than_timeout_is_closed(redis_server, daemon):
    """http_connection_timeout = 2s: a connection that sends part of a
    request and then nothing for longer than that, and one that sends
    nothing at all, are closed by the daemon after about 2 s; a trickle
    faster than the timeout keeps its connection (MHD counts idle time
    only) and is answered when it completes."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    base = idle_baseline(d)
    partial = connect(d)
    partial.sendall(b'GET /livez HTTP/1.1\r\nHo')
    idle = connect(d, '127.0.0.3')
    fast = Trickler([connect(d, '127.0.0.4')], period=0.5)
    t0 = time.monotonic()
    try:
        closed_at = {}
        for name, s in (('partial request', partial), ('idle', idle)):
            status = read_response(s, timeout=7.0)
            closed_at[name] = time.monotonic() - t0
            assert status == CLOSED, f'{name} connection: {status!r} (not closed by the timeout)'
        # MHD's timeout has 1 s granularity and runs on the loop's timer.
        for name, t in closed_at.items():
            assert 1.0 <= t <= 5.0, f'{name} connection closed after {t:.2f} s, timeout 2 s'
        # The slower-than-timeout trickle: after its first byte, a gap of
        # 3 s; it is closed before it can send the next one.
        slow = connect(d, '127.0.0.5')
        slow.sendall(b'G')
        t1 = time.monotonic()
        status = read_response(slow, timeout=7.0)
        took = time.monotonic() - t1
        assert status == CLOSED and 1.0 <= took <= 5.0, (status, took)
        slow.close()
        assert time.monotonic() - t0 > 2.5
        assert not fast.closed_early, 'a trickle faster than the timeout was cut'
        statuses = fast.finish()
        assert statuses[0] != CLOSED and statuses[0] != TIMEOUT and statuses[0][0] == 200, statuses
        assert_serving(d, '127.0.0.1', 'after the timeouts')
    finally:
        fast.close()
        partial.close()
        idle.close()
    settle_sockets(d, base, what='after the timed-out connections')


# ----- malformed requests

def _outcome(r):
    return r if r in (CLOSED, TIMEOUT) or r[0] == 'partial' else r[0]


def check_cases(d, cases, allowed, timeout=6.0):
    """Send each case on its own connection; its outcome must be in
    allowed(name) (a set of status codes and/or CLOSED). After each, the
    daemon must answer /livez. All failures are reported together."""
    failures = []
    for name, data in cases:
        t0 = time.monotonic()
        r = exchange(d, data, timeout=timeout)
        out = _outcome(r)
        ok = allowed(name)
        if out not in ok:
            failures.append(f'{name}: got {out!r} after {time.monotonic() - t0:.2f} s, '
                            f'want {_describe(ok)}')
        assert_serving(d, '127.0.0.1', f'after {name}')
    assert not failures, '\n'.join(failures)


FOUR_XX = set(range(400, 500))


def _describe(allowed):
    if FOUR_XX <= allowed:
        return ' or '.join(['4xx'] + sorted(map(str, allowed - FOUR_XX)))
    return ' or '.join(sorted(map(str, allowed)))


def test_oversized_requests_get_4xx_or_close(redis_server, daemon):
    """A 100 KB URL, a 100 KB header, 20000 headers, 10000 query arguments,
    a 300 KB request line without an end: 4xx (404 for a long unknown path,
    414/431 when over the memory limit) or a close, within the connection
    timeout (2 s) plus a margin."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    base = idle_baseline(d)
    cases = [
        ('100 KB URL', request_bytes('/' + 'a' * 100_000)),
        ('100 KB URL under /health/', request_bytes('/health/' + 'b' * 100_000)),
        ('100 KB query', request_bytes('/readyz?x=' + 'c' * 100_000)),
        # libmicrohttpd 0.9.75 runs out of pool memory for the argument
        # records, logs a 431 and then never sends it: the connection goes
        # at the connection timeout (a close, as allowed).
        ('10000 query arguments', request_bytes('/readyz?' + 'a=b&' * 10_000)),
        ('100 KB header', request_bytes('/livez', headers=b'X-Big: ' + b'd' * 100_000 + b'\r\n')),
        ('20000 headers', request_bytes('/livez', headers=b''.join(
            b'X-H%d: v\r\n' % i for i in range(20_000)))),
        ('300 KB request line, no end', b'GET /' + b'e' * 300_000),
        ('Accept of 60 KB', request_bytes('/status', headers=b'Accept: ' +
                                          b'text/html;q=0.5,' * 3500 + b'\r\n')),
        ('Authorization of 80 KB', request_bytes('/status', headers=b'Authorization: Basic ' +
                                                 b'QUFB' * 20_000 + b'\r\n')),
    ]
    # Within the memory limit (256 KiB) a long query or header is just a
    # request (of /readyz, /livez, /status): then 200.
    fine = {'100 KB query', '100 KB header', 'Accept of 60 KB', 'Authorization of 80 KB'}
    check_cases(d, cases, lambda n: (FOUR_XX | {CLOSED}) | ({200} if n in fine else set()))
    settle_sockets(d, base, what='after the oversized requests')


def test_binary_garbage_gets_4xx_or_close(redis_server, daemon):
    """Random bytes, NUL bytes, a bare request line, an HTTP/2 preface,
    header lines without a colon: 400 or a close (505 for an unsupported
    version); never a hang past the connection timeout."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    base = idle_baseline(d)
    rnd = random.Random(20261127)
    cases = [(f'random {n} bytes #{i}', bytes(rnd.randrange(256) for _ in range(n)) + b'\r\n\r\n')
             for i, n in enumerate((16, 512, 4096, 65536))]
    cases += [
        ('random without line ends', bytes(rnd.randrange(14, 256) for _ in range(70_000))),
        # Read as empty lines before a request line: closed by the timeout.
        ('NUL bytes', b'\x00' * 1000 + b'\r\n\r\n'),
        ('NUL in the method', b'G\x00T /livez HTTP/1.1\r\nHost: x\r\n\r\n'),
        ('NUL in the path', b'GET /li\x00vez HTTP/1.1\r\nHost: x\r\n\r\n'),
        ('one word', b'GARBAGE\r\n\r\n'),
        ('HTTP/0.9 style', b'GET /livez\r\n\r\n'),
        ('HTTP/2 preface', b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        ('HTTP/9.9', b'GET /livez HTTP/9.9\r\nHost: x\r\n\r\n'),
        ('header without colon', b'GET /livez HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n'),
        ('TLS client hello', bytes.fromhex('16030100a5010000a10303') + bytes(rnd.randrange(256)
                                                                          for _ in range(160))),
        ('bad chunked body', b'POST /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked'
                             b'\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'),
        ('huge Content-Length', b'GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: '
                                b'99999999999999999999999\r\n\r\n'),
    ]
    version = {'HTTP/2 preface', 'HTTP/9.9'}
    check_cases(d, cases, lambda n: FOUR_XX | {CLOSED} | ({505} if n in version else set()))
    settle_sockets(d, base, what='after the garbage')


def test_unknown_methods_get_405(redis_server, daemon):
    """Any method but GET and HEAD: 405 with Allow: GET, HEAD, whatever the
    path, the body or the length of the method name."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    cases = [(m, request_bytes('/readyz', method=m))
             for m in ('FOO', 'BREW', 'get', 'PROPFIND', 'TRACE', 'CONNECT', 'DELETE',
                       'M' * 5000, 'GET\x7f')]
    cases += [
        ('OPTIONS *', request_bytes('*', method='OPTIONS')),
        ('POST with 1 GB announced', b'POST /readyz HTTP/1.1\r\nHost: x\r\n'
                                     b'Content-Length: 1000000000\r\n\r\n' + b'a' * 1000),
        ('PUT on an unknown path', request_bytes('/nope/' + 'x' * 2000, method='PUT')),
    ]
    check_cases(d, cases, lambda n: {405})
    for method in ('FOO', 'PATCH'):
        r = exchange(d, request_bytes('/status', method=method))
        assert r not in (CLOSED, TIMEOUT) and r[0] == 405 and r[1]['allow'] == 'GET, HEAD', r


def test_bad_percent_encoding_gets_404(redis_server, daemon):
    """Invalid or NUL percent-escapes in the path never reach a known route
    by truncation: /readyz%00, /livez%00junk and /health/redis-cache%00x
    name no resource (404), like %zz, a dangling % and escaped slashes; a
    well-formed escape of an ordinary character is decoded (200)."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    cases = [(p, request_bytes(p)) for p in (
        '/readyz%zz', '/%', '/%%', '/health/%4', '/health/%zz', '/health/%00',
        '/readyz%00', '/livez%00junk', '/health/redis-cache%00x', '/status%00.html',
        '/health/%2e%2e%2fstatus', '/health/redis-cache%2f..', '/health/%ff%fe',
        '/%c0%ae%c0%ae/status', '/health/' + '%41' * 3000)]
    check_cases(d, cases, lambda n: {404})
    r = exchange(d, request_bytes('/%72eadyz'))
    assert r not in (CLOSED, TIMEOUT) and r[0] == 200, r
    # Bad escapes in the query string are the query's business: the
    # resource is still served, as JSON (no format recognised).
    for q in ('format=%zz%00%ff', 'format=%', '%00=%00', '=&&==&%'):
        r = exchange(d, request_bytes('/status?' + q))
        assert r not in (CLOSED, TIMEOUT) and r[0] == 200, (q, r)
        assert r[1]['content-type'] == 'application/health+json', (q, r[1])
        json.loads(r[2])


# ----- descriptors

def test_connection_churn_leaves_no_descriptor(redis_server, daemon):
    """2000 connections opened and dropped in every way (at once, after a
    partial request, reset with SO_LINGER 0 mid-request or mid-response,
    half-closed after a full request, left open mid-request for the
    timeout) from 8 addresses: the daemon keeps serving, and its socket and
    descriptor counts return to where they were."""
    d = start(daemon, redis_server, http_connection_timeout='2s')
    base_sockets = idle_baseline(d)
    base_fds = fd_count(d.pid)
    rst = (socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    left_open = []
    for i in range(2000):
        src = f'127.0.0.{1 + i % 8}'
        s = connect(d, src, timeout=3)
        kind = i % 6
        try:
            if kind == 1:
                s.sendall(b'GET /status HTTP/1.1\r\nHo')
            elif kind == 2:
                s.setsockopt(*rst)
                s.sendall(b'GET /metrics HTTP/1.1\r\n')
            elif kind == 3:
                s.setsockopt(*rst)
                s.sendall(request_bytes('/status?format=html'))
                s.recv(10)
            elif kind == 4:
                # a client that half-closes says it keeps no connection
                s.sendall(request_bytes('/readyz', headers=b'Connection: close\r\n'))
                s.shutdown(socket.SHUT_WR)
                r = read_response(s, timeout=3)
                assert r not in (CLOSED, TIMEOUT) and r[0] == 200, r
            elif kind == 5 and i % 60 == 5:
                s.sendall(b'GET /livez HTTP/1.1\r\n')
                left_open.append(s)
                continue
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
    assert_serving(d, '127.0.0.20', 'after the churn')
    # The ones left open go at the 2 s timeout; the rest are gone already.
    settle_sockets(d, base_sockets, timeout=8, what='after the churn')
    for s in left_open:
        assert read_response(s, timeout=1) == CLOSED
        s.close()
    wait_for(lambda: fd_count(d.pid) == base_fds, 5,
             what=f'the fd count to return to {base_fds} (is {fd_count(d.pid)})')
    assert_serving(d, '127.0.0.1', 'after the churn')
