"""Real receivers for the notification tests (SPEC 12): an HTTP(S) server
that records what the daemon posts, and a real Alertmanager.

    with Receiver(answers=[500, 200]) as r:      # 500 first, then 200
        url = r.url('/hook')
        ...
        r.wait_count(2, timeout=10)
        r.requests[0].json

    am = Alertmanager(workdir, webhook_url=r.url('/am')).start()
    am.alerts(active=True)

Receiver answers every request with the next status of `answers`, then
with `default` (200) once they are used up, each after `delay` seconds;
`tls=(cert, key)` makes it an HTTPS server. A receiver that accepts and never answers is
fakeservers.FakeServer(mode='silent').

Alertmanager is Debian's prometheus-alertmanager (0.25), on a free
loopback port, gossip off (an empty --cluster.listen-address), its own
storage directory, with a route whose only receiver is a webhook (to a
Receiver the test runs) and short group_wait / group_interval.
"""

import http.client
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from helpers import read_text, tail, wait_for
from localstack import free_port


class Request:
    """One request as received: wall-clock and monotonic arrival, method,
    path (with query), headers, raw body and the JSON body (None when the
    body is not JSON)."""

    def __init__(self, method, path, headers, body, status):
        self.time = time.time()
        self.mono = time.monotonic()
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.status = status  # what the receiver answered (None until it has)
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f'<{self.method} {self.path} -> {self.status}: {self.body[:300]!r}>'


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):  # quiet: the test reports what matters
        pass

    def _any(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        recv = self.server.receiver
        # recorded on arrival; its status is set once the answer is chosen
        req = Request(self.command, self.path, dict(self.headers.items()), body, None)
        recv._record(req)
        if recv.delay:
            time.sleep(recv.delay)  # a slow receiver: the answer comes late
        status = req.status = recv._next_status()
        payload = b'{}' if 200 <= status < 300 else b'{"error": "test receiver says no"}'
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET = _any


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a refused TLS handshake or a dropped client is the test's business


class Receiver:
    """A recording HTTP(S) server on 127.0.0.1 (see the module's text)."""

    def __init__(self, answers=(), default=200, tls=None, delay=0.0):
        self.answers = list(answers)
        self.delay = delay
        self.default = default
        self.requests = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._srv = _Server(('127.0.0.1', self.port), _Handler)
        self._srv.receiver = self
        self.scheme = 'http'
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True)
            self.scheme = 'https'
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        name='receiver', daemon=True)
        self._thread.start()

    def url(self, path='/'):
        return f'{self.scheme}://127.0.0.1:{self.port}{path}'

    def _next_status(self):
        with self._lock:
            return self.answers.pop(0) if self.answers else self.default

    def _record(self, req):
        with self._lock:
            self.requests.append(req)

    def received(self):
        """A copy of the requests so far."""
        with self._lock:
            return list(self.requests)

    def bodies(self):
        return [r.json for r in self.received()]

    def wait_count(self, n, timeout, what=None):
        def arrived():  # and answered
            got = self.received()
            return len(got) >= n and all(r.status is not None for r in got[:n])
        wait_for(arrived, timeout, interval=0.02,
                 what=what or f'{n} request(s) at the receiver')
        return self.received()

    def close(self):
        self._srv.shutdown()
        self._srv.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----- a real Alertmanager

AM_BIN = '/usr/bin/prometheus-alertmanager'


def alertmanager_bin():
    path = shutil.which('prometheus-alertmanager') or AM_BIN
    if not os.access(path, os.X_OK):
        pytest.fail('prometheus-alertmanager not found: install Debian\'s '
                    '`prometheus-alertmanager` package (scripts/debian-packages-test)',
                    pytrace=False)
    return path


class Alertmanager:
    """prometheus-alertmanager on 127.0.0.1:port, its config and storage in
    `workdir`, routing every alert to one webhook receiver (`webhook_url`)
    with send_resolved."""

    def __init__(self, workdir, webhook_url, group_wait='200ms', group_interval='1s'):
        self.dir = str(workdir)
        os.makedirs(os.path.join(self.dir, 'data'), exist_ok=True)
        self.port = free_port()
        self.log_path = os.path.join(self.dir, 'alertmanager.log')
        self.config = os.path.join(self.dir, 'alertmanager.yml')
        with open(self.config, 'w') as f:
            f.write(f"""\
route:
  receiver: hook
  group_by: ['alertname', 'target']
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {json.dumps(webhook_url)}
        send_resolved: true
""")
        self.proc = None

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    def start(self, timeout=30):
        argv = [alertmanager_bin(), f'--config.file={self.config}',
                f'--storage.path={os.path.join(self.dir, "data")}',
                f'--web.listen-address=127.0.0.1:{self.port}',
                '--cluster.listen-address=', '--log.level=debug']
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
                                              'HOME': self.dir})
        wait_for(lambda: self._get('/-/ready')[0] == 200, timeout,
                 what='alertmanager /-/ready', check=self.assert_running)
        return self

    def assert_running(self):
        if self.proc.poll() is not None:
            raise AssertionError(f'alertmanager exited with {self.proc.returncode}:\n'
                                 f'{tail(read_text(self.log_path))}')

    def _get(self, path):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=3)
        try:
            conn.request('GET', path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def alerts(self, **params):
        """GET /api/v2/alerts with `params` (active=True, ...): the list."""
        q = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v
                                    for k, v in params.items()})
        status, body = self._get('/api/v2/alerts' + ('?' + q if q else ''))
        assert status == 200, (status, body[:300])
        return json.loads(body)

    def log(self):
        return read_text(self.log_path)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
