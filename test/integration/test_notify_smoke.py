"""Notifications end to end (issue 12, SPEC 12), the smoke test of the path:
a real Redis killed and restarted, the daemon under ASan, a webhook
receiver (Python's http.server) on loopback.

- the failure and the recovery of the watched target arrive once each, in
  order, with SPEC 12's fields, the bearer token and the URL's query;
- a target the notifier does not watch sends nothing;
- /status lists the notifier with its origin only and its last success;
  /metrics counts what was sent; no token or query string shows in
  /status, /metrics or the log;
- the state file keeps the notifier's member.

The full list of the issue (a real Alertmanager, retries, a black hole,
HTTPS with a test CA, canaries, valgrind) is in test_notify.py.
"""

import http.server
import json
import threading
import time

from localstack import free_port
from test_redis_core import redis_config

TOKEN = 'CANARY-notify-t0ken'
QUERY = 'CANARY-query-s3cret'


class Receiver:
    """A webhook receiver: every POST's path, headers and JSON body."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self):
        with self.lock:
            return [b for _, _, b in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def metric(d, name, labels):
    for line in d.get('/metrics')[2].decode().splitlines():
        if line.startswith(f'hdms_healthd_{name}{labels} '):
            return float(line.split()[-1])
    return None


def test_webhook_fail_and_pass_once_each(redis_server, daemon, tmp_path):
    rx = Receiver()
    try:
        state = str(tmp_path / 'state.json')
        conf = redis_config(redis_server.redis_port, interval='300ms', timeout='200ms',
                            extra=f'state_file = {state}\ninstance = smoke-host\n'
                                  'external_url = http://healthd.example:8080/\n')
        conf += (f'[notify hook]\nkind = webhook\n'
                 f'url = http://127.0.0.1:{rx.port}/hook?token={QUERY}\n'
                 f'bearer_token = {TOKEN}\ntargets = redis-cache\n')
        d = daemon(config_text=conf)
        d.wait_for(lambda: d.json('/status')['targets']['redis-cache']['status'] == 'pass',
                   timeout=10, what='redis-cache up')
        nv = d.json('/status')['notifiers']
        assert [(n['name'], n['kind'], n['url']) for n in nv] == \
            [('hook', 'webhook', f'http://127.0.0.1:{rx.port}')], nv
        assert metric(d, 'notifications_total', '{notifier="hook",result="sent"}') == 0
        assert metric(d, 'notifications_total', '{notifier="hook",result="failed"}') == 0
        assert metric(d, 'notifications_total', '{notifier="hook",result="dropped"}') == 0

        redis_server.kill_redis()
        d.wait_for(lambda: len(rx.bodies()) >= 1, timeout=10, what='the failure posted')
        redis_server.start_redis()
        d.wait_for(lambda: len(rx.bodies()) >= 2, timeout=15, what='the recovery posted')
        time.sleep(1.0)  # anything more would be a duplicate

        with rx.lock:
            posts = list(rx.posts)
        assert [(b['target'], b['event']) for _, _, b in posts] == \
            [('redis-cache', 'fail'), ('redis-cache', 'pass')], posts
        path, headers, fail = posts[0]
        assert path == f'/hook?token={QUERY}'
        assert headers.get('Authorization') == f'Bearer {TOKEN}'
        assert headers.get('Content-Type') == 'application/json'
        assert set(fail) == {'version', 'event', 'target', 'kind', 'previous', 'reason',
                             'output', 'time', 'since', 'durationSeconds', 'instance', 'url',
                             'text'}, fail
        assert fail['version'] == 1 and fail['kind'] == 'redis' and fail['previous'] == 'pass'
        assert fail['reason'] and fail['output'], fail
        assert fail['instance'] == 'smoke-host'
        assert fail['url'] == 'http://healthd.example:8080/status'
        assert 'redis-cache' in fail['text'] and '\n' not in fail['text']
        ok = posts[1][2]
        assert ok['previous'] == 'fail' and ok['since'] == fail['time'], ok
        assert 0.2 < ok['durationSeconds'] < 30, ok

        st = d.json('/status')['notifiers'][0]
        assert st['sent'] == 2 and st['queueLength'] == 0 and st['lastError'] is None, st
        assert st['lastSuccess'] is not None, st
        assert metric(d, 'notifications_total', '{notifier="hook",result="sent"}') == 2
        assert metric(d, 'notification_queue_length', '{notifier="hook"}') == 0
        seen = b''.join(d.get(p)[2] for p in ('/status', '/metrics', '/events?limit=1000'))
        d.stop()
        seen = seen.decode() + d.stderr() + d.stdout()
        assert TOKEN not in seen and QUERY not in seen

        saved = json.load(open(state))
        assert saved['version'] == 1
        assert saved['notify']['hook']['kind'] == 'webhook', saved.get('notify')
    finally:
        rx.close()
