"""HTTP API, command line, reload and shutdown of the real binary."""
import base64
import gzip
import http.client
import json
import re
import signal
import socket
import threading
import time

from helpers import wait_for
from test_metrics import promtool_check_metrics
from test_redis_core import redis_config, all_status, statuses

TOKEN = 'canary-T0ken-9d1e'


def test_probe_endpoints_methods_and_headers(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    for path in ('/livez', '/readyz', '/healthz', '/startupz', '/health/redis-cache'):
        status, headers, body = d.get(path)
        assert status == 200, path
        assert headers['Content-Type'] == 'application/health+json'
        assert headers['Cache-Control'] == 'no-store'
        doc = json.loads(body)
        assert doc['status'] == 'pass'
        assert len(body) < 4096
        # HEAD: same status and headers, no body
        hstatus, hheaders, hbody = d.get(path, method='HEAD')
        assert hstatus == 200 and hbody == b''
        assert hheaders['Content-Length'] == headers['Content-Length']
    for method in ('POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'):
        status, headers, body = d.get('/readyz', method=method)
        assert status == 405, method
        assert headers['Allow'] == 'GET, HEAD'
    status, headers, body = d.get('/no/such/path')
    assert status == 404 and json.loads(body)['error'] == 'not found'
    assert headers['Cache-Control'] == 'no-store'
    status, _, body = d.get('/health/nope')
    assert status == 404 and json.loads(body)['error'] == 'unknown target'


def test_status_json_shape(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    status, headers, body = d.get('/status')
    assert status == 200
    assert headers['Content-Type'] == 'application/health+json'
    doc = json.loads(body)
    assert doc['status'] == 'pass' and doc['serviceId'] == 'hdms-healthd'
    assert doc['version']
    for key, arr in doc['checks'].items():
        target, _, measurement = key.partition(':')
        assert target in doc['targets'] and measurement
        for m in arr:
            assert m['status'] in ('pass', 'warn', 'fail')
            assert 'observedValue' in m and 'observedUnit' in m and 'time' in m
    t = doc['targets']['redis-cache']
    for field in ('status', 'kind', 'lastCheck', 'lastChange', 'latencyMs', 'serviceLevels'):
        assert field in t, field
    assert doc['links']['metrics'] == '/metrics'


def test_one_target_failing_is_named_with_reason(make_stack, daemon):
    stack = make_stack(servers=('redis',))
    text = redis_config(stack.redis_port) + (
        '[target spare]\nkind = redis\nhost = 127.0.0.1\nport = 1\ncritical = no\n')
    d = daemon(config_text=text)
    d.wait_for(lambda: statuses(d).get('spare') == 'fail', timeout=5)
    d.wait_for(lambda: statuses(d)['redis-cache'] == 'pass', timeout=5)
    # a non-critical target failing does not fail readiness
    assert d.get('/readyz')[0] == 200
    status, _, body = d.get('/health/spare')
    assert status == 503
    doc = json.loads(body)
    assert doc['status'] == 'fail' and doc['reason'] == 'connect_refused'
    assert 'Connection refused' in doc['output']


def test_token_protects_status_and_metrics_only(redis_server, daemon):
    env = {'HEALTHD_STATUS_TOKEN': TOKEN}
    text = redis_config(redis_server.redis_port) + (
        '[target down]\nkind = redis\nhost = 127.0.0.1\nport = 1\n')
    d = daemon(env=env, config_text=text)
    d.wait_for(lambda: d.get('/health/down')[0] == 503, timeout=5)
    for path in ('/status', '/metrics', '/status?format=html'):
        status, headers, _ = d.get(path)
        assert status == 401, path
        assert headers['WWW-Authenticate'].startswith('Basic')
        assert d.get(path, {'Authorization': 'Bearer wrong'})[0] == 401
        assert d.get(path, {'Authorization': f'Bearer {TOKEN}'})[0] in (200, 503)
        basic = base64.b64encode(f'anyone:{TOKEN}'.encode()).decode()
        assert d.get(path, {'Authorization': f'Basic {basic}'})[0] in (200, 503)
    # probes stay open and show status and reason code, not the output text
    status, _, body = d.get('/health/down')
    doc = json.loads(body)
    assert status == 503 and doc['reason'] == 'connect_refused' and 'output' not in doc
    doc = json.loads(d.get('/readyz')[2])
    assert 'output' not in doc['checks']['down']
    html = d.get('/status?format=html', {'Authorization': f'Bearer {TOKEN}'})[2]
    assert TOKEN.encode() not in html
    d.stop()
    assert TOKEN not in d.stderr() + d.stdout()


def test_sighup_keeps_unchanged_targets_and_refuses_bad_file(redis_server, daemon):
    text = redis_config(redis_server.redis_port)
    d = daemon(config_text=text)
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    time.sleep(1.2)
    before = d.json('/status')['targets']
    assert before['redis-cache']['checks'] >= 2
    # change one target, keep the others
    d.write_config(text.replace('db = 1\n', 'db = 3\n'))
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), timeout=5)
    after = d.json('/status')['targets']
    assert after['redis-cache']['checks'] >= before['redis-cache']['checks']
    assert after['redis-cache']['lastChange'] == before['redis-cache']['lastChange']
    assert after['redis-channels']['checks'] <= 1  # a new target: history starts over
    # a bad file is refused and the old configuration stays
    d.write_config('[daemon]\ninterval = soon\n')
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: any('reload refused' in e.get('msg', '') for e in d.logs()),
               timeout=5)
    refused = [e for e in d.logs() if 'reload refused' in e.get('msg', '')][-1]
    assert 'interval' in refused['msg'] and ':2:' in refused['msg']
    assert set(d.json('/status')['targets']) == {'redis-cache', 'redis-channels',
                                                   'redis-celery'}
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)


def test_sigterm_and_sigint_stop_cleanly(redis_server, daemon):
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = daemon(config_text=redis_config(redis_server.redis_port))
        d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
        d.signal(sig)
        d.proc.wait(5)
        assert d.proc.returncode == 0
        d.check_sanitizers()
        assert any(e.get('msg') == 'stopped' for e in d.logs())


def test_transition_log_lines(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    redis_server.kill_redis(signal.SIGKILL)
    d.wait_for(lambda: all_status(d, 'fail'), timeout=5)
    tr = [e for e in d.logs() if e.get('event') == 'transition'
          and e['target'] == 'redis-cache']
    assert [(e['from'], e['to']) for e in tr] == [('unknown', 'pass'), ('pass', 'fail')]
    assert tr[1]['reason'] in ('connection_lost', 'connect_refused')
    assert 'check_ms' in tr[1] and tr[1]['kind'] == 'redis'


def test_check_config_redacts_secrets(run_healthd):
    env = {'REDIS_PASSWORD': 'canary-env-redis', 'POSTGRES_PASSWORD': 'canary-env-pg',
           'PGBOUNCER_ADMIN_PASSWORD': 'canary-env-admin',
           'HEALTHD_STATUS_TOKEN': 'canary-env-token', 'REDIS_PORT': '7000',
           'CELERY_QUEUES': 'celery,priority'}
    r = run_healthd(['--check-config'], env=env)
    assert r.returncode == 0, r.stderr
    assert 'canary' not in r.stdout + r.stderr
    assert '<redacted>' in r.stdout
    assert 'port = 7000' in r.stdout and 'queues = celery,priority' in r.stdout
    for name in ('postgres', 'pgbouncer', 'redis-cache', 'redis-channels', 'redis-celery'):
        assert f'[target {name}]' in r.stdout


def test_once_exit_codes(redis_server, run_healthd):
    text = redis_config(redis_server.redis_port)
    r = run_healthd(['--once'], config_text=text)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'overall: pass' in r.stdout
    r = run_healthd(['--once', '--json', 'redis-celery'], config_text=text)
    assert r.returncode == 0
    assert list(json.loads(r.stdout)['targets']) == ['redis-celery']
    r = run_healthd(['--once', 'nope'], config_text=text)
    assert r.returncode == 2 and 'nope' in r.stderr
    redis_server.stop_redis()
    t0 = time.monotonic()
    r = run_healthd(['--once'], config_text=text)
    assert r.returncode == 1 and 'connect_refused' in r.stdout
    assert time.monotonic() - t0 < 5
    assert run_healthd(['--json']).returncode == 2


def test_probe_command(redis_server, daemon, run_healthd):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    r = run_healthd(['probe', d.url('/readyz')])
    assert r.returncode == 0 and '"pass"' in r.stdout
    r = run_healthd(['probe', d.url('/health/nope')])
    assert r.returncode == 1
    # the default URL is /livez on HEALTHD_LISTEN's port
    r = run_healthd(['probe'], env={'HEALTHD_LISTEN': f'127.0.0.1:{d.port}'})
    assert r.returncode == 0
    # nothing listening: a clear failure, fast
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    r = run_healthd(['probe', f'http://127.0.0.1:{port}/livez'])
    assert r.returncode == 1 and 'connect' in r.stderr
    # a server that accepts and never answers: the probe's own timeout
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        t0 = time.monotonic()
        r = run_healthd(['probe', f'http://127.0.0.1:{s.getsockname()[1]}/livez'])
        assert r.returncode == 1
        assert time.monotonic() - t0 < 5


def test_help_and_version(run_healthd):
    r = run_healthd(['--help'])
    assert r.returncode == 0
    for word in ('--check-config', '--once', 'probe', '--listen', '--log-format'):
        assert word in r.stdout
    r = run_healthd(['--version'])
    assert r.returncode == 0 and r.stdout.startswith('hdms-healthd ')
    assert run_healthd(['--bogus']).returncode == 2


def _many_redis(port, n):
    text = '[daemon]\ninterval = 1s\ntimeout = 300ms\n\n'
    for i in range(n):
        text += f'[target r{i:03d}]\nkind = redis\nhost = 127.0.0.1\nport = {port}\n\n'
    return text


BIG = (('json', '/status', {}, 'GET'),
       ('html', '/status?format=html', {}, 'GET'),
       ('gzip', '/metrics', {'Accept-Encoding': 'gzip'}, 'GET'),
       ('plain', '/metrics', {}, 'GET'),
       ('head', '/metrics', {}, 'HEAD'),
       ('head', '/status?format=html', {}, 'HEAD'))


def _targets_in(kind, body):
    """The target names one big answer shows."""
    if kind == 'json':
        doc = json.loads(body)
        assert {k.rpartition(':')[0] for k in doc['checks']} == set(doc['targets'])
        return set(doc['targets'])
    if kind == 'html':
        text = body.decode()
        assert text.startswith('<!DOCTYPE html>') and text.endswith('</html>\n')
        return set(re.findall(r'<tr class="target" data-target="([^"]+)"', text))
    text = (gzip.decompress(body) if kind == 'gzip' else body).decode()
    assert text.endswith('\n')
    up = re.findall(r'^hdms_healthd_target_up\{target="([^"]+)"', text, re.M)
    checks = re.findall(r'^hdms_healthd_checks_total\{target="([^"]+)"', text, re.M)
    assert up == checks  # each family has every target, in the same order
    return set(up)


def _fetch_all(d, rounds=2):
    """Every big answer `rounds` times, all at once on their own
    connections: (kind, status, headers, body) each."""
    out = []

    def one(kind, path, headers, method):
        status, hdrs, body = d.get(path, headers=headers, method=method, timeout=30)
        out.append((kind, status, hdrs, body))

    threads = [threading.Thread(target=one, args=b) for b in BIG * rounds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == len(BIG) * rounds
    return out


def test_big_answers_rendered_over_loop_turns(redis_server, daemon):
    """/status, the dashboard and /metrics of 150 targets are rendered a few
    targets per loop turn and sent from the renderer's pieces (issue 13):
    several at once are each whole and right, gzip and HEAD included; a
    reload that changes the targets under renders in progress gives answers
    of one target set or the other, never a mix; and a stop with renders in
    flight exits cleanly."""
    n, n2 = 150, 120
    d = daemon(config_text=_many_redis(redis_server.redis_port, n), args=('--log-level', 'debug'))
    names = {f'r{i:03d}' for i in range(n)}
    d.wait_for(lambda: len(d.json('/status', timeout=10)['targets']) == n
               and all_status(d, 'pass'), timeout=30)
    for kind, status, hdrs, body in _fetch_all(d):
        assert status == 200, (kind, status, body[:200])
        if kind == 'head':
            assert body == b'' and int(hdrs['Content-Length']) > 256 * 1024
            continue
        assert int(hdrs['Content-Length']) == len(body), kind
        assert (hdrs.get('Content-Encoding') == 'gzip') == (kind == 'gzip'), kind
        # above 256 KiB, the size sent from the renderer's pieces
        assert len(gzip.decompress(body) if kind == 'gzip' else body) > 256 * 1024, kind
        assert _targets_in(kind, body) == names, kind
    promtool_check_metrics(d.get('/metrics', timeout=30)[2].decode())
    # each kind took several loop turns: the test saw the path it is about
    turns = [e.get('msg', '') for e in d.logs() if 'loop turns' in e.get('msg', '')]
    for what in ('/status of 150', 'the dashboard of 150', '/metrics of 150 targets ('):
        assert any(m.startswith(f'http: {what}') for m in turns), (what, turns[:5])
    assert any(re.search(r", [1-9][0-9]* gzip'd\)", m) for m in turns), turns[:5]

    # a reload to fewer targets while renders are in progress
    d.write_config(_many_redis(redis_server.redis_port, n2))
    timer = threading.Timer(0.02, d.signal, args=(signal.SIGHUP,))
    timer.start()
    answers = _fetch_all(d, rounds=3)
    timer.join()
    fewer = {f'r{i:03d}' for i in range(n2)}
    for kind, status, hdrs, body in answers:
        assert status in (200, 503), (kind, status, body[:200])
        if kind != 'head':
            assert _targets_in(kind, body) in (names, fewer), kind
    d.wait_for(lambda: set(d.json('/status', timeout=10)['targets']) == fewer, timeout=10)

    # a stop with renders in flight: no leak, no crash (the sanitizers say)
    clients = [threading.Thread(target=lambda: _get_quietly(d)) for _ in range(6)]
    for t in clients:
        t.start()
    time.sleep(0.05)
    d.stop()
    for t in clients:
        t.join(30)


def _get_quietly(d):
    try:
        d.get('/metrics', timeout=10)
    except (OSError, http.client.HTTPException):
        pass  # the daemon stopped under it
