"""Self-test of the harness: real servers, fault injection, fake DNS and the
Daemon wrapper (against a stand-in process, so no daemon binary is needed)."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

from fakedns import resolve
from helpers import TEST_DIR, wait_for
from localstack import PASSWORDS, fast_tmpdir, pids_with_cwd, proc_state


def psql_env_tcp(stack_env, port_var, user, password, sql, db='hdms'):
    """psql -h 127.0.0.1 -p PORT with PGPASSWORD, from the daemon's env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT='5')
    return subprocess.run(['psql', '-X', '-At', '-h', stack_env['PGBOUNCER_HOST'],
                           '-p', stack_env[port_var], '-U', user, '-d', db, '-c', sql],
                          env=env, capture_output=True, text=True, timeout=30)


def test_stack_starts_and_answers(stack):
    print(f'stack started in {stack.start_seconds:.2f} s')
    assert stack.start_seconds < 15
    env = stack.env()
    for user, password in ((env['POSTGRES_USER'], env['POSTGRES_PASSWORD']),
                           (env['HEALTHD_PG_USER'], env['HEALTHD_PG_PASSWORD'])):
        r = psql_env_tcp(env, 'PGBOUNCER_PORT', user, password,
                         'SELECT current_user, current_database()')
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f'{user}|hdms'
    # Direct to PostgreSQL over TCP with SCRAM too; a wrong password fails.
    assert stack.psql_tcp('SELECT 1', user='healthd', port=stack.pg_port).strip() == '1'
    r = psql_env_tcp(env, 'POSTGRES_PORT', 'healthd', 'wrong', 'SELECT 1')
    assert r.returncode != 0 and 'password authentication failed' in r.stderr
    # The daemon's role: least privilege, member of pg_monitor.
    assert stack.psql("SELECT rolsuper, pg_has_role('healthd', 'pg_monitor', 'member') "
                      "FROM pg_roles WHERE rolname = 'healthd'").strip() == 'f|t'
    assert stack.psql('SHOW max_connections').strip() == '100'
    assert stack.psql('SHOW superuser_reserved_connections').strip() == '3'
    assert stack.psql("SELECT datname FROM pg_database WHERE datname LIKE 'hdms%' "
                      "ORDER BY 1").split() == ['hdms', 'hdms_small']
    # PgBouncer: console as admin and as the stats user, the contract's settings.
    config = {r['key']: r['value'] for r in stack.pgb_show('CONFIG')}
    assert (config['pool_mode'], config['default_pool_size'],
            config['max_db_connections'], config['max_client_conn']) == \
        ('transaction', '25', '50', '200')
    dbs = {r['name']: r for r in stack.pgb_show('DATABASES')}
    assert dbs['hdms_small']['pool_size'] == '1'
    assert any(r['database'] == 'hdms' for r in stack.pgb_show('POOLS'))
    assert 'hdms' in stack.psql_tcp('SHOW POOLS', user='healthd', db='pgbouncer')
    # Redis.
    assert stack.redis_cli('PING') == 'PONG'
    assert stack.redis_raw('PING') == b'+PONG\r\n'
    # Connections are logged, for tests that count them.
    assert 'connection authorized: user=healthd' in open(stack.logs['pg']).read()


def test_pg_kill9_restart_keeps_port_and_data(stack):
    port, pids = stack.pg_port, stack.pg_pids()
    assert len(pids) >= 5  # postmaster and its auxiliary processes
    stack.psql('CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (42)')
    stack.kill_pg(signal.SIGKILL)
    assert stack.pg_pids() == [] and not any(os.path.exists(f'/proc/{p}/cwd') for p in pids)
    with pytest.raises(RuntimeError):
        stack.psql_tcp('SELECT 1', port=port, user='hdms')
    stack.start_pg()
    assert stack.pg_port == port
    assert stack.psql('SELECT x FROM survivor').strip() == '42'
    # PgBouncer reconnects by itself (server_login_retry = 1 s).
    wait_for(lambda: stack.psql_tcp('SELECT 1').strip() == '1', 10,
             what='a query through PgBouncer after the restart')


def test_pg_sigstop_hangs_and_sigcont_resumes(stack):
    stack.kill_pg(signal.SIGSTOP)
    pids = stack.pg_pids()
    assert pids and all(proc_state(p) == 'T' for p in pids)
    with socket.create_connection(('127.0.0.1', stack.pg_port), timeout=1) as s:
        s.sendall(b'\x00\x00\x00\x08\x04\xd2\x16\x2f')  # SSLRequest
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(1)  # the kernel accepted, nobody answers: a hung server
    stack.kill_pg(signal.SIGCONT)
    assert all(proc_state(p) != 'T' for p in stack.pg_pids())
    assert stack.psql('SELECT 1').strip() == '1'


def test_stop_after_sigstop_of_everything(stack):
    stack.psql_tcp('SELECT 1')  # a backend of PgBouncer's, stopped too
    stack.kill_pg(signal.SIGSTOP)
    stack.kill_pgbouncer(signal.SIGSTOP)
    stack.kill_redis(signal.SIGSTOP)
    t0 = time.monotonic()
    stack.stop()
    stack.stop()  # idempotent
    assert time.monotonic() - t0 < 15
    assert not any(stack.pids(s) for s in stack.SERVERS)


def test_pg_stop_modes_and_restart(stack):
    stack.stop_pg('immediate')
    assert stack.pg_pids() == []
    stack.start_pg()
    stack.stop_pg('fast')
    stack.start_pg()
    assert stack.psql('SELECT 1').strip() == '1'


@pytest.mark.parametrize('server', ['pgbouncer', 'redis'])
def test_kill_and_restart_same_port(stack, server):
    port = {'pgbouncer': stack.pgb_port, 'redis': stack.redis_port}[server]
    getattr(stack, f'kill_{server}')(signal.SIGKILL)
    assert stack.pids(server) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
    getattr(stack, f'start_{server}')()
    if server == 'redis':
        assert stack.redis_cli('PING') == 'PONG'
    else:
        assert stack.psql_tcp('SELECT 1').strip() == '1'
    getattr(stack, f'stop_{server}')()
    assert stack.pids(server) == []


def test_redis_only_needs_no_postgres(redis_server):
    assert redis_server.pids('pg') == [] and redis_server.pids('pgbouncer') == []
    assert redis_server.redis_cli('SET', 'k', 'v') == 'OK'
    assert redis_server.env()['REDIS_PORT'] == str(redis_server.redis_port)
    assert 'REDIS_PASSWORD' not in redis_server.env()


def test_redis_password(make_stack):
    st = make_stack(redis_password='s3cret "pw\\', servers=('redis',))
    assert st.env()['REDIS_PASSWORD'] == 's3cret "pw\\'
    assert st.redis_cli('PING') == 'PONG'
    with socket.create_connection(('127.0.0.1', st.redis_port), timeout=1) as s:
        s.sendall(b'PING\r\n')
        assert s.recv(100).startswith(b'-NOAUTH')


def test_small_max_connections(make_stack):
    st = make_stack(pg_max_connections=10, servers=('pg',))
    assert st.psql('SHOW max_connections').strip() == '10'


def test_fakedns(fakedns):
    fakedns.set('postgres', '127.0.0.1')
    fakedns.set('redis', ['127.0.0.2', '::1'])
    assert resolve(fakedns.port, 'PoStGrEs') == (0, ['127.0.0.1'])
    assert resolve(fakedns.port, 'redis') == (0, ['127.0.0.2'])
    assert resolve(fakedns.port, 'redis', qtype=28) == (0, ['::1'])
    assert resolve(fakedns.port, 'postgres', qtype=28) == (0, [])
    assert resolve(fakedns.port, 'nowhere') == (3, [])
    fakedns.servfail.add('postgres')
    assert resolve(fakedns.port, 'postgres')[0] == 2
    fakedns.blackhole = True
    with pytest.raises(socket.timeout):
        resolve(fakedns.port, 'redis', timeout=0.3)
    fakedns.blackhole = False
    fakedns.delay = 0.3
    t0 = time.monotonic()
    assert resolve(fakedns.port, 'redis')[1] == ['127.0.0.2']
    assert time.monotonic() - t0 >= 0.25
    assert [q[1] for q in fakedns.queries[:4]] == ['A', 'A', 'AAAA', 'AAAA']
    # TCP
    q = bytes.fromhex('abcd01000001000000000000') + b'\x05redis\x00\x00\x01\x00\x01'
    fakedns.delay = 0
    with socket.create_connection(('127.0.0.1', fakedns.port), timeout=1) as s:
        s.sendall(len(q).to_bytes(2, 'big') + q)
        reply = s.recv(512)
    assert reply[2:4] == b'\xab\xcd' and reply.endswith(bytes([127, 0, 0, 2]))
    assert fakedns.queries[-1] == ('redis', 'A', 'tcp')


FAKE_DAEMON = textwrap.dedent('''\
    #!/usr/bin/python3
    # Stand-in for hdms-healthd: serves /livez and /env, logs JSON lines.
    import http.server, json, os, signal, sys
    port = int(sys.argv[sys.argv.index('-l') + 1].rsplit(':', 1)[1])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(dict(os.environ) if self.path == '/env'
                              else {'status': 'pass'}).encode()
            self.send_response(200 if self.path in ('/livez', '/env') else 404)
            self.send_header('Content-Type', 'application/health+json')
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            print(json.dumps({'msg': 'http', 'path': self.path}), file=sys.stderr, flush=True)
    srv = http.server.HTTPServer(('127.0.0.1', port), H)
    def term(*_):
        if os.environ.get('FAKE_ASAN'):
            print('==1==ERROR: AddressSanitizer: heap-use-after-free', file=sys.stderr)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print(json.dumps({'level': 'info', 'msg': 'started', 'argv': sys.argv[1:]}),
          file=sys.stderr, flush=True)
    srv.serve_forever()
''')


@pytest.fixture
def fake_bin(tmp_path):
    path = tmp_path / 'fake-healthd'
    path.write_text(FAKE_DAEMON)
    path.chmod(0o755)
    return str(path)


def test_daemon_wrapper(daemon, fake_bin, fakedns, monkeypatch):
    monkeypatch.setenv('POSTGRES_HOST', 'leaked.example')
    d = daemon(env={'REDIS_PORT': '1234'}, config_text='[daemon]\n',
               args=['--log-level', 'debug'], binary=fake_bin)
    status, headers, body = d.get('/livez')
    assert status == 200 and headers['content-type'] == 'application/health+json'
    assert d.json('/livez') == {'status': 'pass'}
    env = d.json('/env')
    env.pop('LC_CTYPE', None)  # added by the stand-in's own Python (PEP 538)
    assert set(env) == {'PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS',
                        'HEALTHD_NAMESERVERS', 'REDIS_PORT'}
    assert env['HEALTHD_NAMESERVERS'] == fakedns.address
    assert d.wait_for(lambda: d.get('/nope')[0] == 404, 2) < 2
    logs = d.logs()
    assert logs[0]['argv'] == ['-l', f'127.0.0.1:{d.port}', '--log-format', 'json',
                               '-c', d.config_path, '--log-level', 'debug']
    assert {'msg': 'http', 'path': '/env'} in logs
    d.stop()
    assert d.returncode == 0


def test_daemon_wrapper_catches_sanitizer_report(daemon, fake_bin):
    d = daemon(env={'FAKE_ASAN': '1'}, binary=fake_bin)
    assert d.json('/livez')['status'] == 'pass'
    assert d.json('/env')['HEALTHD_NAMESERVERS'].startswith('127.0.0.1:')
    with pytest.raises(AssertionError, match='sanitizer report'):
        d.stop()
    os.truncate(d.stderr_path, 0)  # so the fixture's own check passes


def test_localstack_cli_up_down():
    d = tempfile.mkdtemp(prefix='hdms-cli-', dir=fast_tmpdir())
    cli = os.path.join(TEST_DIR, 'localstack.py')
    proc = subprocess.Popen([cli, 'up', '--dir', d], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(d, 'stack.env')), 30,
                 check=lambda: proc.poll() is None or pytest.fail(proc.stdout.read()))
        env = dict(line[len('export '):].split('=', 1)
                   for line in open(os.path.join(d, 'stack.env')).read().splitlines())
        r = psql_env_tcp(env, 'PGBOUNCER_PORT', 'healthd', PASSWORDS['healthd'], 'SELECT 2')
        assert r.stdout.strip() == '2', r.stderr
        subprocess.run([cli, 'down', '--dir', d], check=True, timeout=60,
                       capture_output=True)
        assert proc.wait(5) == 128 + signal.SIGTERM
        assert not any(pids_with_cwd(os.path.join(d, sub))
                       for sub in ('pgdata', 'pgbouncer', 'redis'))
        assert not os.path.exists(os.path.join(d, 'stack.env'))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        subprocess.run([cli, 'down', '--dir', d], timeout=60, capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
