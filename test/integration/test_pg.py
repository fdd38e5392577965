"""PostgreSQL and PgBouncer targets against real servers (issue 3 items 5
and 6).

Every test runs the daemon's default targets from the stack's environment
(stack.env()) with short timings: interval 1 s, timeout 500 ms, and the
defaults retry_interval 250 ms, rise 2, fall 2. So a killed server is down
within milliseconds (the persistent connection's close is noticed, then a
refused reconnect), a hung one within interval + fall x (timeout + retry)
= 2.5 s, and a returning one is up within about rise x retry = 0.5 s.

Each test asserts reason codes, not only statuses. Timing bounds are
generous for an ASan build on a shared 2-core machine, but each one is
well below what a broken mechanism would give (a missed close, a missed
re-check of the pooler, a stuck loop).
"""

import json
import re
import signal
import subprocess
import time

import pytest

from helpers import assert_loop_free, wait_for

INTERVAL, TIMEOUT_MS = 1.0, 500
TIMINGS = {'HEALTHD_INTERVAL': '1s', 'HEALTHD_TIMEOUT': f'{TIMEOUT_MS}ms'}
PG_TARGETS = ('postgres', 'pgbouncer')
ALL_TARGETS = ('postgres', 'pgbouncer', 'redis-cache', 'redis-channels',
               'redis-celery')


# ----- helpers

def start_daemon(daemon, stack, wait_pass=PG_TARGETS, **extra):
    """The daemon on the stack's default targets with the short timings;
    waits until each target in wait_pass reports pass."""
    env = {**stack.env(), **TIMINGS, **extra}
    d = daemon(env=env)
    for name in wait_pass:
        d.wait_for(lambda n=name: status_of(d, n) == 'pass', 15,
                   what=f'{name} to pass')
    return d


def health(d, target):
    """/health/{target} as (HTTP code, body dict)."""
    code, _, body = d.get(f'/health/{target}')
    return code, json.loads(body)


def status_of(d, target):
    return health(d, target)[1]['status']


def target_report(d, target):
    return d.json('/status')['targets'][target]


def measurements(d, target, what):
    """The /status measurements `target:what` (a list, maybe empty)."""
    return d.json('/status')['checks'].get(f'{target}:{what}', [])


def wait_health(d, target, pred, timeout, what):
    """Poll /health/{target} until pred(body) holds; return (seconds, body)."""
    seen = {}

    def check():
        seen['body'] = health(d, target)[1]
        return pred(seen['body'])
    secs = d.wait_for(check, timeout, what=f'{target}: {what}')
    return secs, seen['body']


def wait_since(d, t0, target, pred, bound, what, slack=10):
    """Like wait_health, but measured from t0 (monotonic) and asserted
    against `bound` seconds. It waits past the bound (by `slack`) so a
    failure reports how long it really took."""
    remaining = bound + slack - (time.monotonic() - t0)
    _, body = wait_health(d, target, pred, max(remaining, 0.5), what)
    elapsed = time.monotonic() - t0
    assert elapsed <= bound, \
        f'{target}: {what} after {elapsed:.2f} s, expected within {bound} s: {body}'
    return elapsed, body


def is_fail(body):
    # (before its first result a target answers fail with no_result_yet)
    return body['status'] == 'fail' and body.get('reason') != 'no_result_yet'


def is_pass(body):
    return body['status'] == 'pass'


def transitions(d, target):
    return [e for e in d.logs()
            if e.get('event') == 'transition' and e.get('target') == target]


def end_procs(procs, sig=signal.SIGINT):
    """End background psql clients: SIGINT (psql sends a cancel request,
    so the backend's query ends too), then SIGKILL after a grace period."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()


def backends_running(stack, marker, user='hdms'):
    """Client backends of `user` whose current query contains `marker`
    (asked over the unix socket as the superuser)."""
    out = stack.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        f" AND usename = '{user}' AND pid <> pg_backend_pid()"
        f" AND state = 'active' AND strpos(query, '{marker}') > 0", db='postgres')
    return int(out.strip())


def pool_row(stack, database, user='hdms'):
    for row in stack.pgb_show('POOLS'):
        if row['database'] == database and row['user'] == user:
            return row
    return None


def own_logins(stack):
    """The daemon's own logins to PostgreSQL so far (PgBouncer's server
    logins carry no application_name)."""
    with open(stack.logs['pg'], 'rb') as f:
        return f.read().count(b'connection authorized: user=healthd database=hdms '
                              b'application_name=hdms-healthd')


def line_count(path):
    with open(path, 'rb') as f:
        return f.read().count(b'\n')


def lines_after(path, n):
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', 'replace').splitlines()[n:]


# ----- 1. the healthy stack

def test_all_default_targets_pass(stack, daemon):
    d = start_daemon(daemon, stack, wait_pass=())
    d.wait_for(lambda: d.get('/readyz')[0] == 200, 15, what='/readyz 200')
    # Past the first round (whose query through the pooler waits for
    # PgBouncer's first server connection, so counts as a waiting client).
    d.wait_for(lambda: all(target_report(d, n)['checks'] >= 3 for n in PG_TARGETS),
               10, what='three checks of each PostgreSQL target')
    code, _, body = d.get('/readyz')
    assert code == 200
    assert json.loads(body)['status'] == 'pass', body
    st = d.json('/status')
    assert st['status'] == 'pass', st
    assert set(st['targets']) == set(ALL_TARGETS)
    for name in ALL_TARGETS:
        t = st['targets'][name]
        assert t['status'] == 'pass', (name, t)
        assert 'reason' not in t, (name, t)
        assert t['lastResult']['status'] == 'pass', (name, t)
        assert [m['status'] for m in st['checks'][f'{name}:responseTime']] == ['pass']
        code, body = health(d, name)
        assert (code, body['status']) == (200, 'pass'), (name, body)
    assert st['targets']['postgres']['kind'] == 'postgres'
    assert st['targets']['pgbouncer']['kind'] == 'pgbouncer'
    # The postgres target read the numbers, and nobody bypasses the pooler.
    [conns] = st['checks']['postgres:connections']
    assert conns['observedValue'] >= 1
    d.wait_for(lambda: measurements(d, 'postgres', 'bypassBackends'), 5,
               what='a bypass figure (needs a SHOW SERVERS snapshot)')
    [bypass] = measurements(d, 'postgres', 'bypassBackends')
    assert (bypass['status'], bypass['observedValue']) == ('pass', 0)
    pools = {m['componentId']: m for m in st['checks']['pgbouncer:clientsWaiting']}
    assert pools['hdms/healthd']['observedValue'] == 0, pools


# ----- 2. PostgreSQL killed or stopped at once, then restarted

@pytest.mark.parametrize('how', ['kill9', 'immediate'])
def test_postgres_down_and_restart(stack, daemon, how):
    d = start_daemon(daemon, stack)
    before = target_report(d, 'postgres')
    t0 = time.monotonic()
    if how == 'kill9':
        stack.kill_pg(signal.SIGKILL)
    else:
        stack.stop_pg('immediate')
    assert not stack.pg_pids()

    pg_secs, pg = wait_since(d, t0, 'postgres', is_fail, 1.0, 'fail')
    # The close of the persistent connection is the first failure; the
    # refused (or shutting-down) reconnect the second.
    assert pg['reason'] in ('connect_refused', 'connection_lost', 'shutting_down'), pg
    bouncer_secs, pgb = wait_since(d, t0, 'pgbouncer', is_fail, 3.0, 'fail')
    # Root cause: the pooler is fine, the database behind it is down.
    assert pgb['reason'] == 'database_down', pgb
    assert 'postgres' in pgb['output'], pgb
    code, ready = d.get('/readyz')[0], d.json('/readyz')
    assert code == 503 and ready['checks']['postgres']['status'] == 'fail', ready
    print(f'{how}: postgres fail after {pg_secs:.2f} s, pgbouncer after {bouncer_secs:.2f} s')

    stack.start_pg()
    t1 = time.monotonic()  # PostgreSQL logged that it accepts connections
    up_secs, _ = wait_since(d, t1, 'postgres', is_pass, 1.0, 'pass again')
    pgb_up_secs, _ = wait_since(d, t1, 'pgbouncer', is_pass, 5.0, 'pass again')
    print(f'{how}: postgres pass {up_secs:.2f} s, pgbouncer {pgb_up_secs:.2f} s '
          'after PostgreSQL accepted connections')

    report = target_report(d, 'postgres')
    assert report['lastOutage'] == 'restart', report
    assert report['serviceLevels']['reconnect']['restarts'] >= 1, report
    assert report['serviceLevels']['reconnect']['count'] >= 1, report
    assert report['transitions'] > before['transitions']
    # JSON logs: the way down with its reason, the way back with the outage.
    pg_log = transitions(d, 'postgres')
    down = [e for e in pg_log if e['from'] == 'pass' and e['to'] == 'fail']
    back = [e for e in pg_log if e['from'] == 'fail' and e['to'] == 'pass']
    assert down and down[-1]['reason'] == pg['reason'], pg_log
    assert back and back[-1].get('outage') == 'restart', pg_log
    pgb_down = [e for e in transitions(d, 'pgbouncer') if e['to'] == 'fail']
    assert pgb_down and pgb_down[-1]['reason'] == 'database_down', pgb_down
    # Every line went through the logger, libpq's notices too (an immediate
    # shutdown's "WARNING:  terminating connection ..." came out raw).
    raw = [ln for ln in d.stderr().splitlines() if ln.strip() and not ln.startswith('{')]
    assert not raw, f'stderr lines that are not JSON: {raw[:3]}'
    for ln in d.stderr().splitlines():
        if ln.strip():
            json.loads(ln)


# ----- 3. a hung PostgreSQL (every process stopped)

def test_postgres_hung_times_out_livez_stays_fast(stack, daemon):
    d = start_daemon(daemon, stack)
    livez = []
    try:
        t0 = time.monotonic()
        stack.kill_pg(signal.SIGSTOP)
        failed_at, body = None, None
        # Bounded: the hung server must be down well within 8 s; keep
        # sampling /livez for one more second after that.
        while time.monotonic() - t0 < 8:
            s = time.monotonic()
            code = d.get('/livez', timeout=2)[0]
            livez.append((time.monotonic() - s, code))
            if failed_at is None:
                code, body = health(d, 'postgres')
                if body['status'] == 'fail':
                    failed_at = time.monotonic() - t0
            elif time.monotonic() - t0 > failed_at + 1:
                break
            time.sleep(0.05)
        assert failed_at is not None, f'postgres not failed 8 s after SIGSTOP: {body}'
        lag = d.json('/status')['loopLag']
        times = sorted(x for x, _ in livez)
        print(f'hung: postgres fail after {failed_at:.2f} s; /livez median '
              f'{times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms over '
              f'{len(livez)} samples; daemon loop lag max {lag["maxSeconds"] * 1000:.1f} ms')
        assert body['reason'] == 'timeout', body
        assert f'no answer within {TIMEOUT_MS}ms' in body['output'], body
        # Not before one timeout, and within interval + fall x (timeout + retry).
        assert TIMEOUT_MS / 1000 <= failed_at <= 4.0, failed_at
        assert len(livez) >= 20
        assert all(code == 200 for _, code in livez), livez
        # A loop blocked by a libpq call would stall for the whole 500 ms
        # timeout, and at every retry: the daemon's own loop lag says so;
        # what the client sees adds its scheduling on a busy machine.
        assert times[len(times) // 2] < 0.05, f'/livez median {times[len(times) // 2]} s'
        assert_loop_free(d, times[-1], '/livez during the hang')
    finally:
        stack.kill_pg(signal.SIGCONT)
    t1 = time.monotonic()
    secs, _ = wait_since(d, t1, 'postgres', is_pass, 5.0, 'pass after SIGCONT')
    wait_since(d, t1, 'pgbouncer', is_pass, 10.0, 'pass after SIGCONT')
    print(f'postgres pass {secs:.2f} s after SIGCONT')


# ----- 4. PgBouncer PAUSE / RESUME

def test_pgbouncer_pause_and_resume(stack, daemon):
    d = start_daemon(daemon, stack)
    try:
        stack.pgb_admin('PAUSE hdms')
        t0 = time.monotonic()
        _, body = wait_since(d, t0, 'pgbouncer', is_fail, 5.0, 'fail while paused')
        assert body['reason'] in ('pooler_paused', 'timeout'), body
        print(f'paused: pgbouncer {body["reason"]}: {body["output"]}')
        if body['reason'] == 'pooler_paused':
            assert 'paused' in body['output'], body
        # PostgreSQL itself is fine.
        assert status_of(d, 'postgres') == 'pass'
    finally:
        stack.pgb_admin('RESUME hdms')
    t1 = time.monotonic()
    secs, _ = wait_since(d, t1, 'pgbouncer', is_pass, 5.0, 'pass after RESUME')
    print(f'pgbouncer pass {secs:.2f} s after RESUME')


# ----- 4b. the daemon's own client is never counted as waiting

def test_pgbouncer_own_client_never_counted_waiting(stack, daemon):
    """SHOW POOLS runs beside the pooled query, sent ahead of it: the pools
    are read while the daemon's client is idle. With server_lifetime 0
    PgBouncer closes each server connection after one use, so every pooled
    query waits in its pool for a new server login: read once the query
    is sent, the daemon's client would show as waiting. (Timeout 900 ms: a
    server login per check must not fail one on a busy machine.)"""
    def server_logins():
        with open(stack.logs['pg'], 'rb') as f:
            n = f.read().count(b'connection authorized: user=healthd database=hdms')
        return n - own_logins(stack)

    stack.pgb_admin('SET server_lifetime = 0')
    try:
        d = start_daemon(daemon, stack, HEALTHD_TIMEOUT='900ms')

        def own_pool():
            pools = {m['componentId']: m['observedValue']
                     for m in measurements(d, 'pgbouncer', 'clientsWaiting')}
            return pools.get('hdms/healthd')

        logins0 = server_logins()
        checks0 = target_report(d, 'pgbouncer')['checks']
        seen = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            seen.append(own_pool())
            time.sleep(0.1)
        t = target_report(d, 'pgbouncer')
        checks = t['checks'] - checks0
        assert checks >= 4, t
        assert t['status'] == 'pass', t
        # a server login for (nearly) every pooled query: each one waited
        assert server_logins() - logins0 >= checks - 1, (server_logins() - logins0, checks)
        assert None not in seen, seen
        assert set(seen) == {0}, seen
    finally:
        stack.pgb_admin('SET server_lifetime = 3600')


# ----- 5. clients waiting in another pool than the daemon's

def test_pgbouncer_clients_waiting_in_other_pool(stack, daemon):
    d = start_daemon(daemon, stack)
    procs = []
    try:
        # hdms_small has pool_size=1: one long query holds its only server.
        procs.append(stack.psql_tcp_bg('SELECT pg_sleep(30)', db='hdms_small'))
        wait_for(lambda: (pool_row(stack, 'hdms_small') or {}).get('sv_active') == '1',
                 10, what='the hdms_small server to be busy')
        procs.append(stack.psql_tcp_bg('SELECT 1', db='hdms_small'))
        t_wait = time.monotonic()
        wait_for(lambda: (pool_row(stack, 'hdms_small') or {}).get('cl_waiting') == '1',
                 5, what='a client waiting in hdms_small')
        secs, body = wait_since(d, t_wait, 'pgbouncer',
                                lambda b: b['status'] == 'warn', 5.0,
                                'warn with a client waiting')
        # Not before the client waited longer than maxwait_warn (1 s).
        assert secs > 1.0, (secs, body)
        assert body['reason'] == 'clients_waiting', body
        assert 'hdms_small' in body['output'], body
        pools = {m['componentId']: m for m in measurements(d, 'pgbouncer', 'clientsWaiting')}
        assert pools['hdms_small/hdms']['observedValue'] == 1, pools
        assert pools['hdms_small/hdms']['status'] == 'warn', pools
        metrics = d.get('/metrics')[2].decode()
        assert re.search(r'^hdms_healthd_pgbouncer_clients_waiting\{[^}]*'
                         r'database="hdms_small"[^}]*\} 1$', metrics, re.M), \
            [ln for ln in metrics.splitlines() if 'clients_waiting' in ln]
        assert status_of(d, 'postgres') == 'pass'
        assert all(p.poll() is None for p in procs)
    finally:
        end_procs(procs)
    wait_health(d, 'pgbouncer', is_pass, 5, 'pass once the clients are gone')


# ----- 6. pooler bypass: direct connections count, pooled ones never do

def test_pooler_bypass_direct_counts_pooled_never(stack, daemon):
    d = start_daemon(daemon, stack)
    d.wait_for(lambda: measurements(d, 'postgres', 'bypassBackends'), 5,
               what='a bypass figure (needs a SHOW SERVERS snapshot)')
    pooled, direct = [], []
    try:
        # Eight sessions through PgBouncer as the application role, each
        # running short queries one after another (so transaction pooling
        # hands server connections around), for about 16 s.
        for _ in range(8):
            pooled.append(stack.psql_tcp_bg(*['SELECT pg_sleep(0.2)'] * 80))
        wait_for(lambda: backends_running(stack, 'pg_sleep(0.2)') >= 4, 10,
                 what='the pooled sessions to be busy')
        # Several checks with both targets' snapshots: never a bypass.
        n = 0
        t_end = time.monotonic() + 4 * INTERVAL
        while time.monotonic() < t_end:
            st = d.json('/status')
            pg = st['targets']['postgres']
            assert pg['status'] == 'pass', pg
            [bp] = st['checks']['postgres:bypassBackends']
            assert bp['observedValue'] == 0, bp
            n += 1
            time.sleep(0.25)
        assert n >= 10
        assert all(p.poll() is None for p in pooled), 'a pooled session ended early'

        # One direct session of the application role to PostgreSQL.
        direct.append(stack.psql_tcp_bg('SELECT pg_sleep(60)', port=stack.pg_port))
        t0 = time.monotonic()
        # PgBouncer's SHOW SERVERS is read every 10 s (it grows with the pool):
        # the next snapshot after the session started, then two checks
        secs, body = wait_since(d, t0, 'postgres', lambda b: b['status'] == 'warn', 16.0,
                                'warn about the direct session')
        assert body['reason'] == 'pooler_bypass', body
        assert '127.0.0.1' in body['output'] and 'hdms' in body['output'], body
        assert body['output'].startswith('1 backend '), body
        code, _ = health(d, 'postgres')
        assert code == 200  # warn is still ready
        for _ in range(4):  # stays exactly one while the pooled ones churn
            [bp] = measurements(d, 'postgres', 'bypassBackends')
            assert (bp['status'], bp['observedValue']) == ('warn', 1), bp
            time.sleep(0.3)
        assert all(p.poll() is None for p in pooled), 'a pooled session ended early'
        print(f'bypass warned {secs:.2f} s after the direct session started')
    finally:
        end_procs(direct + pooled)
    wait_health(d, 'postgres', is_pass, 6, 'pass once the direct session is gone')


# ----- 7. wrong password: auth_failed, and the secret never shows

def test_wrong_password_auth_failed_and_never_shown(stack, daemon):
    secret = 'Wr0ng-S3cret-9f27c'
    d = start_daemon(daemon, stack, wait_pass=(), HEALTHD_PG_PASSWORD=secret)
    bodies = {}
    for name in PG_TARGETS:
        # On a loaded machine the first login may outlast its check (reason
        # timeout); the next check waits for that login and gets its refusal.
        _, bodies[name] = wait_health(
            d, name, lambda b: b['status'] == 'fail' and b['reason'] == 'auth_failed', 15,
            'fail with auth_failed')
    # Redis is unaffected.
    d.wait_for(lambda: status_of(d, 'redis-cache') == 'pass', 10)
    time.sleep(2 * INTERVAL)  # a few more failed checks and their logs
    for path in ('/status', '/status?format=html', '/readyz', '/healthz', '/livez',
                 '/startupz', '/health/postgres', '/health/pgbouncer', '/metrics'):
        body = d.get(path)[2]
        assert secret.encode() not in body, path
    final = {name: health(d, name)[1] for name in PG_TARGETS}
    d.stop()
    assert secret not in d.stderr() and secret not in d.stdout()
    # the transitions were logged (with the first failure's reason, which a
    # loaded machine may make a timeout: only later checks say auth_failed)
    logged = {e['target'] for e in d.logs() if e.get('event') == 'transition'
              and e.get('to') == 'fail'}
    assert set(PG_TARGETS) <= logged, logged

    for name in ('postgres', 'pgbouncer'):
        for body in (bodies[name], final[name]):
            assert 'authentication failed' in body['output'], (name, body)
            # pgbouncer: a failed login to the pooler with the daemon's own
            # credentials is not "the database behind the pooler is down",
            # even though the postgres target fails too (same bad password).
            assert body['reason'] == 'auth_failed', \
                (f'{name}: reason {body["reason"]!r}, expected auth_failed '
                 '(daemon bug when database_down: src/target.c blame_database() '
                 f'rewrites any pooler failure while postgres fails): {body}')


# ----- 8. connections exhausted by other clients

def test_connections_exhausted(make_stack, daemon):
    stack = make_stack(pg_max_connections=12)  # 3 reserved: 9 usable
    d = start_daemon(daemon, stack)
    procs, refused = [], None
    try:
        # Direct sessions of the application role until the server refuses
        # one. Each prints a line once it is in (no monitoring connection
        # of ours may hold a slot meanwhile).
        for _ in range(15):
            p = stack.psql_tcp_bg("SELECT 'in'", 'SELECT pg_sleep(60)',
                                  port=stack.pg_port, stdout=subprocess.PIPE)
            procs.append(p)
            if p.stdout.readline() != 'in\n':  # bounded: PGCONNECT_TIMEOUT=5
                p.wait(10)
                refused = p.stderr.read()
                break
        assert refused is not None, 'the server never refused a connection'
        assert 'remaining connection slots are reserved' in refused, refused
        logins0 = own_logins(stack)
        t0 = time.monotonic()
        _, body = wait_since(d, t0, 'postgres', is_fail, 5.0, 'fail')
        assert body['reason'] == 'connections_exhausted', body
        # The daemon read the numbers over its own connection.
        assert re.search(r'\b9 of 9 usable connections in use', body['output']), body
        assert status_of(d, 'pgbouncer') == 'pass'
        time.sleep(2 * INTERVAL)  # more failed checks
        _, body = health(d, 'postgres')
        assert body['reason'] == 'connections_exhausted', body
        logins = own_logins(stack) - logins0
    finally:
        end_procs(procs)
    wait_health(d, 'postgres', is_pass, 6, 'pass once the connections are closed')
    # Exhaustion is judged from the numbers that the persistent connection
    # read; dropping that connection after each such check gives the slot
    # away (an application may take it) and logs in again at every retry.
    assert logins == 0, \
        (f'the daemon logged in to PostgreSQL {logins} times while connections were '
         'exhausted (daemon bug: src/probe_postgres.c fail_on() closes the connection '
         'after any failed check, also one judged from a successful query)')


# ----- 9. no log noise (issue 3 item 5)

def test_no_log_noise_from_checks(stack, daemon):
    d = start_daemon(daemon, stack)
    time.sleep(1.5)  # the first connections' log lines are written
    counts = {s: line_count(stack.logs[s]) for s in ('pg', 'pgbouncer')}
    checks0 = {n: target_report(d, n)['checks'] for n in PG_TARGETS}
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        d.assert_running()
        # HTTP answers never touch the databases either.
        assert d.get('/status')[0] == 200 and d.get('/metrics')[0] == 200
        time.sleep(1)
    st = d.json('/status')
    for n in PG_TARGETS:
        assert st['targets'][n]['status'] == 'pass', st['targets'][n]
        ran = st['targets'][n]['checks'] - checks0[n]
        assert ran >= 25, f'{n}: only {ran} checks in 30 s'
    for server in ('pg', 'pgbouncer'):
        new = lines_after(stack.logs[server], counts[server])
        assert not new, f'{server} log grew during 30 s of checks:\n' + '\n'.join(new)


# ----- 10. --once

def test_once_exit_codes(stack, run_healthd):
    env = {**stack.env(), **TIMINGS}
    t0 = time.monotonic()
    r = run_healthd(['--once', 'postgres', 'pgbouncer'], env=env)
    ok_secs = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(re.match(r'postgres\s+postgres\s+pass\b', ln) for ln in lines), r.stdout
    assert any(re.match(r'pgbouncer\s+pgbouncer\s+pass\b', ln) for ln in lines), r.stdout
    assert not any(ln.startswith('redis') for ln in lines), r.stdout
    assert ok_secs < 5, ok_secs

    stack.stop_pg()
    t0 = time.monotonic()
    r = run_healthd(['--once', 'postgres', 'pgbouncer'], env=env)
    fail_secs = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r'^postgres\s+postgres\s+fail\b.*connect_refused', r.stdout, re.M), r.stdout
    assert 'overall: fail' in r.stdout
    # One round: at most one timeout (500 ms) plus start-up.
    assert fail_secs < 5, fail_secs
    print(f'--once: {ok_secs:.2f} s healthy, {fail_secs:.2f} s with PostgreSQL stopped')


# ----- 11. wrong admin console password

def test_pgbouncer_admin_auth_failed_warns(stack, daemon):
    secret = 'Adm1n-Wr0ng-51c3'
    d = start_daemon(daemon, stack, wait_pass=('postgres',),
                     PGBOUNCER_ADMIN_PASSWORD=secret)
    _, body = wait_health(d, 'pgbouncer', lambda b: b['status'] == 'warn', 10, 'warn')
    assert body['reason'] == 'admin_auth_failed', body
    assert 'admin console' in body['output'], body
    code, _ = health(d, 'pgbouncer')
    assert code == 200  # the pooler still works: warn, still ready
    report = target_report(d, 'pgbouncer')
    assert report['lastResult']['status'] == 'warn', report
    assert d.get('/readyz')[0] == 200
    for path in ('/status', '/health/pgbouncer', '/metrics', '/readyz'):
        assert secret.encode() not in d.get(path)[2], path
    d.stop()
    assert secret not in d.stderr() + d.stdout()


# ----- 12. login refusals get the specific reason (one round each)

def test_login_refusals_have_specific_reasons(stack, run_healthd):
    stack.psql("CREATE ROLE hdms_nologin NOLOGIN PASSWORD 'nologin-pw'", db='postgres')
    stack.psql("CREATE ROLE hdms_noconnect LOGIN PASSWORD 'noconnect-pw'", db='postgres')
    stack.psql('REVOKE CONNECT ON DATABASE hdms_small FROM PUBLIC', db='postgres')
    pg = f'host = 127.0.0.1\nport = {stack.pg_port}\n'
    pgb = (f'host = 127.0.0.1\nport = {stack.pgb_port}\n'
           'admin_password = pgbouncer-admin-pw\n')
    cases = {  # target: (section body, acceptable reasons, what the server says)
        'no-db': ('kind = postgres\n' + pg + 'dbname = nope\nuser = healthd\n'
                  'password = healthd-pw\n', {'database_missing'}, 'does not exist'),
        'no-login': ('kind = postgres\n' + pg + 'dbname = hdms\nuser = hdms_nologin\n'
                     'password = nologin-pw\n', {'auth_failed'}, 'not permitted to log in'),
        'no-connect': ('kind = postgres\n' + pg + 'dbname = hdms_small\n'
                       'user = hdms_noconnect\npassword = noconnect-pw\n',
                       {'auth_failed', 'permission_denied'}, 'CONNECT privilege'),
        'pgb-no-db': ('kind = pgbouncer\n' + pgb + 'dbname = nope\nuser = healthd\n'
                      'password = healthd-pw\n', {'database_missing'}, 'no such database'),
        'pgb-bad-pw': ('kind = pgbouncer\n' + pgb + 'dbname = hdms\nuser = healthd\n'
                       'password = bad-pw-1\n', {'auth_failed'}, 'authentication failed'),
    }
    config = '[daemon]\ninterval = 1s\ntimeout = 500ms\n' + ''.join(
        f'\n[target {name}]\n{body}' for name, (body, _, _) in cases.items())
    wrong = []
    for name, (_, reasons, says) in cases.items():
        # One target per run: no other target's failure can be blamed.
        r = run_healthd(['--once', '--json', name], config_text=config)
        assert r.returncode == 1, r.stdout + r.stderr
        last = json.loads(r.stdout)['targets'][name]['lastResult']
        assert last['status'] == 'fail' and says in last['output'], (name, last)
        if last['reason'] not in reasons:
            wrong.append(f'{name}: {last["reason"]} (expected {"/".join(sorted(reasons))}):'
                         f' {last["output"]}')
    assert not wrong, ('login refusals misclassified (daemon bug: src/pgconn.c pgconn_classify() '
                       'has no match for these connect-time messages, and connect errors '
                       'carry no SQLSTATE):\n' + '\n'.join(wrong))
