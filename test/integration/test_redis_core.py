"""The daemon core against a real redis-server: readiness, outages, hangs,
authentication, name resolution and configuration errors (issue: daemon
core, item 9)."""
import signal
import socket
import subprocess
import time

import pytest

from helpers import assert_loop_free, free_port, healthd_bin, healthd_env

PASSWORD = 'canary-R3dis-pw-7f3a'


def redis_config(port, host='127.0.0.1', password=None, user=None, interval='1s',
                 timeout='300ms', extra=''):
    """Three targets like the default set's Redis part, on one server."""
    auth = ''
    if user:
        auth += f'user = {user}\n'
    if password:
        auth += f'password = {password}\n'
    text = f'[daemon]\ninterval = {interval}\ntimeout = {timeout}\n{extra}\n'
    for name, db in (('redis-cache', 0), ('redis-channels', 1), ('redis-celery', 2)):
        text += (f'[target {name}]\nkind = redis\nhost = {host}\nport = {port}\n'
                 f'db = {db}\n{auth}')
        if db == 2:
            text += 'queues = celery\n'
        text += '\n'
    return text


def statuses(d):
    body = d.json('/status')
    return {name: t['status'] for name, t in body['targets'].items()}


def all_status(d, want):
    return set(statuses(d).values()) == {want}


def ready_code(d):
    return d.get('/readyz')[0]


def timed_get(d, path):
    t0 = time.monotonic()
    status, _, _ = d.get(path, timeout=1)
    return status, time.monotonic() - t0


def test_all_pass_then_ready(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: ready_code(d) == 200, timeout=5, what='/readyz 200')
    body = d.json('/status')
    assert body['status'] == 'pass'
    assert set(body['targets']) == {'redis-cache', 'redis-channels', 'redis-celery'}
    # each op of the cache round trip was timed
    ops = {m['componentId'] for m in body['checks']['redis-cache:opLatency']}
    assert {'ping', 'set', 'get', 'del'} <= ops
    queue = body['checks']['redis-celery:queueLength'][0]
    assert queue['componentId'] == 'celery' and queue['observedValue'] == 0
    # the private key does not stay behind
    assert redis_server.redis_cli('-n', '0', 'DBSIZE').strip() == '0'


def test_kill_and_restart(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    redis_server.kill_redis(signal.SIGKILL)
    took = d.wait_for(lambda: ready_code(d) == 503, timeout=5, what='/readyz 503')
    assert took < 1.0, f'/readyz took {took:.3f}s to turn 503 after kill -9'
    d.wait_for(lambda: all_status(d, 'fail'), timeout=1)
    body = d.json('/status')
    for name, t in body['targets'].items():
        assert t['reason'] in ('connection_lost', 'connect_refused'), (name, t)
    redis_server.start_redis()
    took = d.wait_for(lambda: all_status(d, 'pass'), timeout=5, what='all pass again')
    assert took < 2.0, f'targets took {took:.3f}s to pass after the restart'
    assert ready_code(d) == 200
    body = d.json('/status')
    # a new run_id: the outage was a restart, and the transition log says so
    assert body['targets']['redis-cache']['lastOutage'] == 'restart'
    back = [e for e in d.logs() if e.get('event') == 'transition'
            and e.get('target') == 'redis-cache' and e.get('to') == 'pass'
            and e.get('from') == 'fail']
    assert back and back[-1].get('outage') == 'restart'


def test_restart_soon_after_a_shared_info_is_a_restart_for_every_target(redis_server, daemon):
    """INFO is shared per server: at a 10 s interval a copy stays current for
    5 s, so a server restarted within that time must not be judged on the
    copy fetched from the server before it (its old run_id read as a blip)."""
    d = daemon(config_text=redis_config(redis_server.redis_port, interval='10s'))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    redis_server.kill_redis(signal.SIGKILL)
    d.wait_for(lambda: all_status(d, 'fail'), timeout=5, what='all fail')
    redis_server.start_redis()
    d.wait_for(lambda: all_status(d, 'pass'), timeout=10, what='all pass again')
    body = d.json('/status')
    outages = {name: t['lastOutage'] for name, t in body['targets'].items()}
    assert outages == dict.fromkeys(outages, 'restart'), outages


def test_hung_server_fails_after_timeout_and_loop_stays_free(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port, timeout='400ms'))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5)
    redis_server.kill_redis(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        worst = 0.0
        while time.monotonic() - t0 < 6:
            status, took = timed_get(d, '/livez')
            assert status == 200
            worst = max(worst, took)
            if all_status(d, 'fail'):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        assert all_status(d, 'fail'), 'a hung server was never marked down'
        # down within interval + fall x (timeout + retry_interval), with room
        assert elapsed < 1.0 + 2 * (0.4 + 0.25) + 1.0
        assert_loop_free(d, worst, '/livez during the hang')
        reasons = {t['reason'] for t in d.json('/status')['targets'].values()}
        assert reasons == {'timeout'}, reasons
        out = d.json('/status')['targets']['redis-cache']['output']
        assert 'no answer within 400ms' in out
    finally:
        redis_server.kill_redis(signal.SIGCONT)
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5, what='pass after SIGCONT')


def test_not_ready_before_first_result(redis_server, daemon):
    # A stopped server: the first check can only end at its 2 s deadline.
    redis_server.kill_redis(signal.SIGSTOP)
    try:
        d = daemon(config_text=redis_config(redis_server.redis_port, interval='3s',
                                            timeout='2s'))
        status, _, body = d.get('/readyz')
        assert status == 503
        import json
        doc = json.loads(body)
        assert doc['status'] == 'fail'
        assert doc['checks']['redis-cache']['reason'] == 'no_result_yet'
        assert d.get('/startupz')[0] == 503
        assert d.json('/status')['targets']['redis-cache']['status'] == 'unknown'
    finally:
        redis_server.kill_redis(signal.SIGCONT)
    d.wait_for(lambda: ready_code(d) == 200, timeout=6, what='/readyz 200')
    assert d.get('/startupz')[0] == 200


def test_wrong_password_names_authentication_and_hides_it(make_stack, daemon):
    stack = make_stack(redis_password='the-right-one', servers=('redis',))
    d = daemon(config_text=redis_config(stack.redis_port, password=PASSWORD))
    d.wait_for(lambda: all_status(d, 'fail'), timeout=5)
    targets = d.json('/status')['targets']
    for name, t in targets.items():
        assert t['reason'] == 'auth_failed', (name, t)
        assert 'authentication' in t['output'], t['output']
    answers = b''
    for path in ('/status', '/readyz', '/health/redis-cache', '/livez', '/startupz',
                 '/status?format=html', '/metrics'):
        answers += d.get(path)[2]
    d.stop()
    assert PASSWORD.encode() not in answers
    assert PASSWORD not in d.stderr() + d.stdout()


def test_right_password_and_acl_user(make_stack, daemon):
    stack = make_stack(redis_password='pw-default', servers=('redis',))
    stack.redis_cli('ACL', 'SETUSER', 'healthd', 'on', '>acl-pw-1', '~*', '&*', '+@all')
    d = daemon(config_text=redis_config(stack.redis_port, user='healthd',
                                        password='acl-pw-1'))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5, what='ACL user passes')
    d2 = daemon(config_text=redis_config(stack.redis_port, password='pw-default'))
    d2.wait_for(lambda: all_status(d2, 'pass'), timeout=5, what='password passes')


def test_unresolvable_host_nxdomain(redis_server, fakedns, daemon):
    fakedns.set('redis.test', '127.0.0.1')
    d = daemon(config_text=redis_config(redis_server.redis_port, host='redis.test'))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=5, what='pass through the fake DNS')
    assert any(q[0].lower() == 'redis.test' for q in fakedns.queries)
    # a name the server does not know
    d2 = daemon(config_text=redis_config(redis_server.redis_port, host='missing.test'))
    d2.wait_for(lambda: all_status(d2, 'fail'), timeout=5)
    for t in d2.json('/status')['targets'].values():
        assert t['reason'] == 'dns_failed', t
        assert 'missing.test' in t['output']


def test_dns_that_never_answers(redis_server, fakedns, daemon):
    fakedns.blackhole = True
    d = daemon(config_text=redis_config(redis_server.redis_port, host='slow.test',
                                        timeout='500ms'))
    t0 = time.monotonic()
    worst = 0.0
    while time.monotonic() - t0 < 5 and not all_status(d, 'fail'):
        status, took = timed_get(d, '/livez')
        worst = max(worst, took)
        time.sleep(0.05)
    assert all_status(d, 'fail')
    assert_loop_free(d, worst)
    for t in d.json('/status')['targets'].values():
        assert t['reason'] == 'dns_timeout', t


def test_bad_config_file_exits_2_naming_file_line_and_key(run_healthd, tmp_path):
    text = '[daemon]\ninterval = 2s\n\n[target x]\nkind = redis\nport = 70000\n'
    r = run_healthd(['--check-config'], config_text=text)
    assert r.returncode == 2
    assert '.conf:6:' in r.stderr and 'port' in r.stderr, r.stderr
    # the same file given to the daemon itself: exit 2, nothing started
    path = tmp_path / 'bad.conf'
    path.write_text(text)
    r = run_healthd(['-c', str(path)], timeout=10)
    assert r.returncode == 2
    assert f'{path}:6:' in r.stderr


@pytest.mark.parametrize('text,line,key', [
    ('[daemon]\nintervall = 2s\n', 2, 'intervall'),
    ('[daemon]\ninterval = 2s\ntimeout = 5s\n', None, 'timeout'),
    ('[target a]\nkind = redis\ndb = 99\n', 3, 'db'),
    ('[target a]\nkind = postgres\ndb = 1\n', 3, 'db'),
    ('[target a]\nkind = mysql\n', 2, 'kind'),
    ('[daemon]\nlisten = nowhere\n', 2, 'listen'),
    ('[daemon]\nthis line has no equals sign\n', 2, None),
    ('[target a]\nhost = x\n', 1, None),
])
def test_config_errors(run_healthd, text, line, key):
    r = run_healthd(['--check-config'], config_text=text)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count('\n') == 1, 'one message, one line: ' + r.stderr
    assert '.conf' in r.stderr
    if line is not None:
        assert f'.conf:{line}:' in r.stderr, r.stderr
    if key is not None:
        assert key in r.stderr, r.stderr


def _monitor(port, seconds):
    """(time, client) of every command Redis runs for `seconds` (MONITOR)."""
    p = subprocess.Popen(['redis-cli', '-h', '127.0.0.1', '-p', str(port), 'monitor'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out = p.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        p.terminate()
        out = p.communicate(timeout=5)[0]
    seen = []
    for line in out.splitlines():
        parts = line.split(' ', 3)
        if len(parts) >= 3 and parts[1].startswith('['):
            seen.append((float(parts[0]), parts[2].rstrip(']')))
    return seen


def _lag_count(d):
    for line in d.get('/metrics')[2].decode().splitlines():
        if line.startswith('hdms_healthd_loop_lag_seconds_count'):
            return float(line.split()[-1])
    raise AssertionError('no loop-lag count in /metrics')


def test_checks_run_on_a_grid_spread_in_groups(redis_server, daemon):
    """64 targets at 1 s: two groups of 32 that each start together, half an
    interval apart, start to start (the schedule grid: shared wakeups for
    idle CPU, a large set spread over the interval for loop lag)."""
    port = redis_server.redis_port
    text = '[daemon]\ninterval = 1s\ntimeout = 300ms\n\n'
    for i in range(64):
        text += f'[target r{i}]\nkind = redis\nhost = 127.0.0.1\nport = {port}\ndb = 0\n\n'
    d = daemon(config_text=text)
    d.wait_for(lambda: ready_code(d) == 200, timeout=10, what='/readyz 200')
    time.sleep(1.5)
    lag0, t0 = _lag_count(d), time.monotonic()
    seen = _monitor(port, 4.2)
    lag1, t1 = _lag_count(d), time.monotonic()
    # loop-lag samples: one per grid point (two a second) and the 1 s timer,
    # not one per check (64 a second)
    rate = (lag1 - lag0) / (t1 - t0)
    assert 1.5 < rate < 6, rate
    # each client's first command of each round: a gap of over 0.3 s before it
    # (the first one seen may be a round's tail, cut by MONITOR's start: left out)
    first = {}
    last = {}
    for t, client in seen:
        if client not in last or t - last[client] > 0.3:
            first.setdefault(client, []).append(t)
        last[client] = t
    starts = {c: ts[1:] for c, ts in first.items() if len(ts) >= 4}
    assert len(starts) == 64, f'{len(starts)} clients with 3 whole rounds: {sorted(first)}'
    # start to start: the interval, not interval + check time
    for c, ts in starts.items():
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert all(0.8 < g < 1.2 for g in gaps), (c, gaps)
    # each client's phase against one client's, on the circle of one interval
    ref = next(iter(starts.values()))[-1]
    phase = {c: (ts[-1] - ref + 0.5) % 1.0 - 0.5 for c, ts in starts.items()}
    same = [p for p in phase.values() if abs(p) < 0.1]
    other = [p for p in phase.values() if abs(p) > 0.4]
    # two groups of 32, half an interval apart, each starting together
    assert len(same) == 32 and len(other) == 32, sorted(phase.values())


def _redis_targets(port, n):
    text = '[daemon]\ninterval = 1s\ntimeout = 500ms\n\n'
    for i in range(n):
        text += f'[target r{i}]\nkind = redis\nhost = 127.0.0.1\nport = {port}\ndb = 0\n\n'
    return text


def _nofile(pid):
    with open(f'/proc/{pid}/limits') as f:
        for line in f:
            if line.startswith('Max open files'):
                return int(line.split()[3])
    raise AssertionError('no open-file limit in /proc/PID/limits')


def _log_has(d, text):
    return any(text in e.get('msg', '') for e in d.logs())


def _counts(d):
    out = {}
    for t in d.json('/status')['targets'].values():
        out[t['status']] = out.get(t['status'], 0) + 1
    return out


def _limited_then_reloaded(daemon, port, nofile, targets):
    """A daemon of three Redis targets whose open-file limit (soft:hard) is
    then set from outside, reloaded with `targets` targets."""
    d = daemon(config_text=_redis_targets(port, 3))
    d.wait_for(lambda: ready_code(d) == 200, timeout=5, what='/readyz 200')
    subprocess.run(['prlimit', f'--pid={d.pid}', f'--nofile={nofile}'], check=True)
    d.write_config(_redis_targets(port, targets))
    d.signal(signal.SIGHUP)
    return d


def test_open_file_limit_raised_for_a_large_target_set(redis_server, daemon):
    """A soft limit of 200 descriptors with 300 targets: the daemon raises it
    (towards the hard limit) on reload, and every target passes."""
    port = redis_server.redis_port
    d = _limited_then_reloaded(daemon, port, '200:4096', 300)
    d.wait_for(lambda: _log_has(d, 'open-file limit raised from 200'), timeout=5,
               what='the raise logged')
    assert _nofile(d.pid) == 300 + 256 + 32  # a socket a target, HTTP, a margin
    d.wait_for(lambda: _counts(d) == {'pass': 300}, timeout=20, what='300 targets pass')


def test_open_file_limit_too_low_refuses_the_configuration(redis_server, daemon, tmp_path):
    """A hard limit below what the targets need would let them take the last
    descriptors and leave HTTP none: the reload is refused naming the limit
    (the old targets stay and HTTP answers), and so is a start."""
    port = redis_server.redis_port
    d = _limited_then_reloaded(daemon, port, '300:300', 150)
    d.wait_for(lambda: _log_has(d, 'reload refused'), timeout=5, what='the refusal')
    msg = [e['msg'] for e in d.logs() if 'reload refused' in e.get('msg', '')][0]
    assert 'open-file limit 300 (hard 300) is below the 438' in msg, msg
    assert _counts(d) == {'pass': 3}
    assert ready_code(d) == 200
    # 12 targets fit exactly: 12 + 256 HTTP connections + 32
    d.write_config(_redis_targets(port, 12))
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: len(d.json('/status')['targets']) == 12, timeout=5,
               what='the reload with 12 targets')
    d.wait_for(lambda: _counts(d) == {'pass': 12}, timeout=10, what='12 targets pass')

    conf = tmp_path / 'many.conf'
    conf.write_text(_redis_targets(port, 150))
    r = subprocess.run(['prlimit', '--nofile=300:300', healthd_bin(), '-c', str(conf),
                        '-l', f'127.0.0.1:{free_port()}'],
                       env=healthd_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'open-file limit 300 (hard 300) is below the 438' in r.stderr, r.stderr


# ----- workers on the broker db: counted from CLIENT LIST, read every 10 s

def test_consumers_counted_and_client_list_read_at_its_cadence(redis_server, daemon):
    """Queued messages with no worker blocked on db 2 warn (no_consumers);
    a worker blocked in BRPOP on db 2 clears it within the CLIENT LIST
    cadence (10 s) plus a check. CLIENT LIST grows with every client of the
    server, so it is not sent at every check: MONITOR counts it."""
    port = redis_server.redis_port
    d = daemon(config_text=redis_config(port))
    d.wait_for(lambda: all_status(d, 'pass'), timeout=15, what='all pass')
    for _ in range(3):
        # LPUSH on db 2: one connection, two commands
        with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
            s.sendall(b'*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n'
                      b'*3\r\n$5\r\nLPUSH\r\n$6\r\ncelery\r\n$3\r\nmsg\r\n')
            s.recv(100)

    def celery():
        return d.json('/status')['targets']['redis-celery']
    d.wait_for(lambda: celery()['reason'] == 'no_consumers', timeout=15,
               what='no_consumers with messages queued and no worker')

    # how often the daemon sends CLIENT LIST: watch 5 s of MONITOR
    mon = socket.create_connection(('127.0.0.1', port), timeout=8)
    mon.sendall(b'*1\r\n$7\r\nMONITOR\r\n')
    seen, end = b'', time.monotonic() + 5
    while time.monotonic() < end:
        try:
            seen += mon.recv(65536)
        except socket.timeout:
            break
    mon.close()
    llen = seen.count(b'"LLEN"')
    client_list = seen.count(b'"CLIENT" "LIST"')
    assert llen >= 3, f'{llen} LLEN in 5 s: the broker target was not checked every second'
    assert client_list <= 1, f'CLIENT LIST sent {client_list} times in 5 s (cadence 10 s)'

    # a worker blocks on another queue of db 2: it counts, and the warning goes
    worker = socket.create_connection(('127.0.0.1', port), timeout=30)
    try:
        worker.sendall(b'*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n'
                       b'*3\r\n$5\r\nBRPOP\r\n$5\r\nother\r\n$1\r\n0\r\n')
        waited = d.wait_for(lambda: celery()['status'] == 'pass', timeout=25,
                            what='the worker counted (CLIENT LIST cadence 10 s)')
        checks = d.json('/status')['checks']
        consumers = checks['redis-celery:consumers'][0]['observedValue']
        assert consumers == 1, checks['redis-celery:consumers']
        print(f'worker counted {waited:.1f} s after it blocked')
    finally:
        worker.close()
