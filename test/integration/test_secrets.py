"""Secrets never show (issue: fault, abuse and soak tests, item 3; SPEC 8).

Canary values for every secret the daemon holds: the Redis password
(requirepass), the PostgreSQL password of the daemon's role, the
application role's password (POSTGRES_PASSWORD, the fallback), the
PgBouncer admin console password, and the status token. They are given
through the environment, through X_FILE variables, and in a configuration
file (inline and *_file keys); once right (every check passes) and once
wrong (every login fails, so failure messages are produced). Then every
endpoint's answer (all paths, GET/HEAD/POST, with and without the token,
right and wrong token, Bearer and Basic), every log line at debug level
(including a reload), `--check-config`, `--once` and `--once --json` are
searched for each canary, for its last 12 characters (a cut-off echo),
and for the Basic credentials as sent: zero hits. The notifiers' secrets
(SPEC 12: bearer tokens, tokens in webhook URLs' paths and query strings,
the password in an Alertmanager URL) likewise, while deliveries succeed,
are refused and get a 400.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from receivers import Receiver
from tlsca import CertAuthority, enable_pg_tls

CANARY = {
    'redis': 'CANARY-redis-pw-3f9a1c',
    'pg': 'CANARY-pg-pw-8b2e47',
    'app': 'CANARY-app-pw-51d0e9',
    'admin': 'CANARY-pgbadmin-pw-c47a20',
    'token': 'CANARY-token-9e6b13',
}
WRONG = {k: v.replace('CANARY-', 'CANARY-wrong-') for k, v in CANARY.items()}
ALL_TARGETS = ('postgres', 'pgbouncer', 'redis-cache', 'redis-channels', 'redis-celery')
TIMINGS = {'HEALTHD_INTERVAL': '1s', 'HEALTHD_TIMEOUT': '500ms', 'HEALTHD_LOG_LEVEL': 'debug'}
PATHS = ['/livez', '/readyz', '/healthz', '/startupz', '/status', '/status?format=html',
         '/status?format=json', '/metrics', '/health/nope', '/nope', '/', '/status/',
         '/metrics?x=1', '/livez?verbose=1', '/events', '/events?limit=1000'] + \
    [f'/health/{t}' for t in ALL_TARGETS]


def canary_stack(make_stack):
    """A stack whose servers know the canaries (not the harness defaults)."""
    stack = make_stack(redis_password=CANARY['redis'])
    stack.set_password('healthd', CANARY['pg'])
    stack.set_password('hdms', CANARY['app'])
    stack.set_password('pgbouncer', CANARY['admin'])
    return stack


def secret_env(stack, values):
    env = {**stack.env(), **TIMINGS}
    env.update({'REDIS_PASSWORD': values['redis'], 'HEALTHD_PG_PASSWORD': values['pg'],
                'POSTGRES_PASSWORD': values['app'],
                'PGBOUNCER_ADMIN_PASSWORD': values['admin'],
                'HEALTHD_STATUS_TOKEN': values['token']})
    return env


def needles(values):
    """What must never appear: each secret, its tail, the Basic
    credentials made of the token."""
    out = {}
    for name, v in values.items():
        out[name] = v
        out[f'{name} (tail)'] = v[-12:]
    tok = values['token']
    out['token (Basic)'] = base64.b64encode(f'anyone:{tok}'.encode()).decode()
    out['token (Basic, bare)'] = base64.b64encode(f':{tok}'.encode()).decode()
    return out


def hits(text, values_list):
    data = text if isinstance(text, bytes) else text.encode('utf-8', 'replace')
    found = []
    for values in values_list:
        for label, n in needles(values).items():
            if n.encode() in data:
                found.append(label)
    return found


def auth_headers(values_list):
    """Every way of presenting (or not) a token."""
    sets = [{}, {'Accept': 'text/html'}, {'Authorization': 'Bearer'},
            {'Authorization': 'Basic !!!' + CANARY['token']}]
    for values in values_list:
        tok = values['token']
        sets += [{'Authorization': f'Bearer {tok}'},
                 {'Authorization': 'Basic ' + base64.b64encode(f'anyone:{tok}'.encode()).decode()},
                 {'Authorization': 'Basic ' + base64.b64encode(f':{tok}'.encode()).decode(),
                  'Accept': 'text/html'},
                 {'Authorization': f'bearer  {tok}x'}]
    return sets


def fetch_everything(d, values_list):
    """Every answer the daemon gives (status line, headers, body) to every
    path x method x credentials; returns (all bytes, statuses seen)."""
    out, codes = [], set()
    for headers in auth_headers(values_list):
        for path in PATHS:
            for method in ('GET', 'HEAD', 'POST'):
                status, hdrs, body = d.get(path, headers=headers, method=method)
                codes.add(status)
                out.append(f'{method} {path} {status}\n'.encode())
                out.append(str(hdrs).encode())
                out.append(body)
    # a raw request with the token in odd places: the URL, a cookie, a
    # header too long to be parsed
    tok = values_list[0]['token']
    for raw in (f'GET /status?token={tok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
                f'GET /status HTTP/1.1\r\nHost: x\r\nCookie: t={tok}\r\n'
                'Connection: close\r\n\r\n',
                f'GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}'
                + 'A' * 20000 + '\r\nConnection: close\r\n\r\n',
                f'BREW /{tok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'):
        out.append(raw_request(d.port, raw))
    return b''.join(out), codes


def raw_request(port, text):
    with socket.create_connection(('127.0.0.1', port), timeout=3) as s:
        try:
            s.sendall(text.encode())
        except OSError:
            pass
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            pass
    return b''.join(chunks)


def statuses(d, token):
    doc = d.json('/status', headers={'Authorization': f'Bearer {token}'})
    return {n: t['status'] for n, t in doc['targets'].items()}


def one_shots(run_healthd, env, config_text=None):
    """--check-config, --once, --once --json: their whole output, and the
    exit status of each."""
    out, codes = [], []
    for args in (['--check-config'], ['--once'], ['--once', '--json']):
        r = run_healthd(args, env=env, config_text=config_text, timeout=60)
        out.append(f'$ {args} -> {r.returncode}\n{r.stdout}\n{r.stderr}\n')
        codes.append(r.returncode)
    return ''.join(out), codes


def exercise(d, values_list):
    """Answers, a reload (its log lines), more answers; returns the answers."""
    answers, codes = fetch_everything(d, values_list)
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), 5,
               what='the reload to be logged')
    more, _ = fetch_everything(d, values_list[:1])
    return answers + more, codes


def assert_no_hits(where, text, values_list):
    found = hits(text, values_list)
    assert not found, f'{where}: secrets shown: {found}'


# ----- the tests

def test_right_canaries_never_shown(make_stack, daemon, run_healthd, tmp_path):
    stack = canary_stack(make_stack)
    env = secret_env(stack, CANARY)
    state = tmp_path / 'state.json'
    d = daemon(env={**env, 'HEALTHD_STATE_FILE': str(state)})
    d.wait_for(lambda: set(statuses(d, CANARY['token']).values()) == {'pass'}, 20,
               what='every target to pass with the canary credentials')
    answers, codes = exercise(d, [CANARY])
    assert {200, 401, 404, 405} <= codes, codes
    d.stop()
    logs = d.stdout() + d.stderr()
    assert '"level":"debug"' in logs  # debug lines were written, and searched
    cli, codes = one_shots(run_healthd, env)
    assert codes == [0, 0, 0] and '<redacted>' in cli, cli
    assert_no_hits('HTTP answers', answers, [CANARY])
    assert_no_hits('log lines', logs, [CANARY])
    assert_no_hits('--check-config / --once output', cli, [CANARY])
    assert_no_hits('the state file', state.read_text(), [CANARY])


def test_wrong_canaries_never_shown_in_failures(make_stack, daemon, run_healthd, tmp_path):
    stack = canary_stack(make_stack)
    env = secret_env(stack, WRONG)
    state = tmp_path / 'state.json'
    d = daemon(env={**env, 'HEALTHD_STATE_FILE': str(state)})
    want = {'postgres': 'auth_failed', 'pgbouncer': 'auth_failed',
            'redis-cache': 'auth_failed'}

    def failed():
        doc = d.json('/status', headers={'Authorization': f'Bearer {WRONG["token"]}'})
        return all(doc['targets'][n].get('reason') == r for n, r in want.items())
    d.wait_for(failed, 20, what=f'auth failures {want}')
    time.sleep(1.0)  # more failed logins, more messages
    answers, _ = exercise(d, [WRONG, CANARY])
    d.stop()
    logs = d.stdout() + d.stderr()
    assert 'authentication failed' in logs
    cli, codes = one_shots(run_healthd, env)
    assert codes == [0, 1, 1] and 'auth_failed' in cli, cli
    # the admin console refusal (with the pooler also refused) shows too
    env_admin = secret_env(stack, {**CANARY, 'admin': WRONG['admin']})
    r = run_healthd(['--once', '--json', 'pgbouncer'], env=env_admin, timeout=60)
    assert 'admin_auth_failed' in r.stdout, r.stdout
    cli += r.stdout + r.stderr
    assert 'auth_failed' in state.read_text()  # the failures were recorded, and searched
    for where, text in (('HTTP answers', answers), ('log lines', logs),
                        ('--check-config / --once output', cli),
                        ('the state file', state.read_text())):
        assert_no_hits(where, text, [WRONG, CANARY])


def test_secret_files_and_config_file_never_shown(make_stack, daemon, run_healthd,
                                                   tmp_path):
    stack = canary_stack(make_stack)
    files = {}
    for name, value in CANARY.items():
        path = tmp_path / f'{name}.secret'
        path.write_text(value + '\n')  # a trailing newline, as editors leave it
        os.chmod(path, 0o600)
        files[name] = str(path)
    # 1. X_FILE variables for the default targets
    env = {**stack.env(), **TIMINGS}
    for var in ('REDIS_PASSWORD', 'HEALTHD_PG_PASSWORD', 'POSTGRES_PASSWORD',
                'PGBOUNCER_ADMIN_PASSWORD'):
        env.pop(var, None)
    env.update({'REDIS_PASSWORD_FILE': files['redis'],
                'HEALTHD_PG_PASSWORD_FILE': files['pg'],
                'POSTGRES_PASSWORD_FILE': files['app'],
                'PGBOUNCER_ADMIN_PASSWORD_FILE': files['admin'],
                'HEALTHD_STATUS_TOKEN_FILE': files['token']})
    d = daemon(env=env)
    d.wait_for(lambda: set(statuses(d, CANARY['token']).values()) == {'pass'}, 20,
               what='every target to pass with secrets from files')
    answers, _ = exercise(d, [CANARY])
    d.stop()
    logs = d.stdout() + d.stderr()
    cli, codes = one_shots(run_healthd, env)
    assert codes == [0, 0, 0], cli

    # 2. a configuration file: inline secrets and *_file keys, one target
    # with a wrong inline password (a failure message), and the token
    config = (
        '[daemon]\ninterval = 1s\ntimeout = 500ms\nlog_level = debug\n'
        f'status_token_file = {files["token"]}\n'
        f'\n[target postgres]\nkind = postgres\nhost = 127.0.0.1\nport = {stack.pg_port}\n'
        f'dbname = hdms\nuser = healthd\npassword_file = {files["pg"]}\napp_user = hdms\n'
        f'\n[target pgbouncer]\nkind = pgbouncer\nhost = 127.0.0.1\nport = {stack.pgb_port}\n'
        f'dbname = hdms\nuser = hdms\npassword = {CANARY["app"]}\nadmin_user = pgbouncer\n'
        f'admin_password_file = {files["admin"]}\n'
        f'\n[target redis-cache]\nkind = redis\nhost = 127.0.0.1\nport = {stack.redis_port}\n'
        f'password = {CANARY["redis"]}\n'
        f'\n[target redis-wrong]\nkind = redis\nhost = 127.0.0.1\nport = {stack.redis_port}\n'
        f'password = {WRONG["redis"]}\ncritical = no\n')
    d2 = daemon(config_text=config, env={'PATH': os.environ.get('PATH', '/usr/bin:/bin')})

    def settled():
        st = statuses(d2, CANARY['token'])
        return st.get('redis-wrong') == 'fail' and all(
            st[n] == 'pass' for n in ('postgres', 'pgbouncer', 'redis-cache'))
    d2.wait_for(settled, 20, what='the config-file targets to settle')
    answers2, _ = exercise(d2, [CANARY])
    d2.stop()
    logs2 = d2.stdout() + d2.stderr()
    cli2, codes = one_shots(run_healthd, {}, config_text=config)
    assert codes == [0, 0, 0] and cli2.count('<redacted>') >= 3, cli2
    assert 'auth_failed' in cli2, cli2
    for where, text in (('HTTP answers (X_FILE)', answers), ('log lines (X_FILE)', logs),
                        ('one-shot output (X_FILE)', cli),
                        ('HTTP answers (config file)', answers2),
                        ('log lines (config file)', logs2),
                        ('one-shot output (config file)', cli2)):
        assert_no_hits(where, text, [CANARY, WRONG])


@pytest.mark.parametrize('text', [
    # a secret key where it does not belong
    '[daemon]\npassword = {s}\n',
    '[target r]\nkind = redis\nadmin_password = {s}\n',
    # a secret given twice, or before any section
    '[target r]\nkind = redis\npassword = {s}\npassword = {s}x\n',
    'password = {s}\n[target r]\nkind = redis\n',
    # a secret that makes the file unparseable around it
    '[target r]\nkind = redis\npassword = {s}\nport = 99999\n',
    '[target r]\nkind = redis\npassword = {s}\n[target r]\nkind = redis\n',
    '[target r]\nkind = redis\n{s}\n',
    '[target r]\nkind = redis\npassword_file = /nonexistent/{s}\n',
    '[target r]\nkind = nosuchkind\npassword = {s}\n',
], ids=['daemon-password', 'wrong-kind-key', 'twice', 'outside-section', 'bad-port-after',
        'duplicate-target', 'bare-line', 'missing-file', 'bad-kind'])
def test_config_errors_never_echo_secrets(run_healthd, text):
    secret = CANARY['pg']
    r = run_healthd(['--check-config'], config_text=text.format(s=secret),
                    env={'HEALTHD_STATUS_TOKEN': CANARY['token']})
    assert r.returncode == 2, r.stdout + r.stderr
    if 'nonexistent' in text:
        return  # the path is not a secret; the file's content is
    assert not hits(r.stdout + r.stderr, [CANARY]), r.stderr


def key_needles(path):
    """What of a private key file must never show: its PEM body lines and
    the PEM label."""
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith('-----')]
    return {f'{os.path.basename(path)} line {i}': ln for i, ln in enumerate(lines)}


def test_tls_private_keys_never_shown(make_stack, daemon, run_healthd, tmp_path):
    """SPEC 13 with SPEC 8: the daemon's HTTPS key, a libpq client key and
    the passwords never show in logs (debug, a reload, a failed TLS login),
    /status and /metrics over HTTPS, or --check-config and --once."""
    ca = CertAuthority(tmp_path / 'ca')
    other = CertAuthority(tmp_path / 'ca-other')
    stack = canary_stack(make_stack)
    pg_cert, pg_key = ca.issue('pg', 'IP:127.0.0.1')
    enable_pg_tls(stack, pg_cert, pg_key)
    web_cert, web_key = ca.issue('web', 'IP:127.0.0.1')
    cli_cert, cli_key = ca.issue('client', 'DNS:healthd', cn='healthd')
    config = (
        '[daemon]\ninterval = 1s\ntimeout = 500ms\nlog_level = debug\n'
        f'status_token = {CANARY["token"]}\n'
        f'tls_cert_file = {web_cert}\ntls_key_file = {web_key}\n'
        f'\n[target postgres]\nkind = postgres\nhost = 127.0.0.1\nport = {stack.pg_port}\n'
        f'dbname = hdms\nuser = healthd\npassword = {CANARY["pg"]}\n'
        f'sslmode = verify-full\nsslrootcert = {ca.cert}\n'
        f'sslcert = {cli_cert}\nsslkey = {cli_key}\n'
        f'\n[target pg-wrong-ca]\nkind = postgres\nhost = 127.0.0.1\nport = {stack.pg_port}\n'
        f'dbname = hdms\nuser = healthd\npassword = {CANARY["pg"]}\ncritical = no\n'
        f'sslmode = verify-full\nsslrootcert = {other.cert}\n'
        f'sslcert = {cli_cert}\nsslkey = {cli_key}\n')
    d = daemon(config_text=config, env={'PATH': os.environ.get('PATH', '/usr/bin:/bin')})
    base = f'https://127.0.0.1:{d.port}'
    auth = f'Authorization: Bearer {CANARY["token"]}'

    def get(path, *extra):
        r = subprocess.run(['curl', '-sS', '--max-time', '5', '--cacert', ca.cert, '-i',
                            *extra, base + path], capture_output=True, text=True,
                           timeout=30, check=False)
        return r.stdout + r.stderr

    def settled():
        text = get('/status', '-H', auth)  # text mode: CRLF read as LF
        if '\n\n' not in text:
            return False
        doc = json.loads(text.split('\n\n', 1)[1])['targets']
        return doc['postgres']['status'] == 'pass' and \
            doc['pg-wrong-ca'].get('reason') == 'tls_failed'
    d.wait_for(settled, 20, what='postgres to pass over TLS and pg-wrong-ca to fail')
    answers = ''.join(get(p, '-H', auth) + get(p) for p in
                      ('/status', '/status?format=html', '/metrics', '/readyz',
                       '/health/postgres', '/health/pg-wrong-ca'))
    assert 'tls_failed' in answers and 'hdms_healthd_tls_cert_expiry' in answers
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), 5,
               what='the reload to be logged')
    d.stop()
    logs = d.stdout() + d.stderr()
    cli = ''
    for args in (['--check-config'], ['--once'], ['--once', '--json']):
        r = run_healthd(args, config_text=config, env={}, timeout=60)
        cli += f'$ {args} -> {r.returncode}\n{r.stdout}\n{r.stderr}\n'
    assert web_key in cli and cli_key in cli, cli  # the paths are shown, not the keys
    needles_ = {**key_needles(web_key), **key_needles(cli_key), **key_needles(pg_key),
                'PEM label': 'PRIVATE KEY'}
    for where, text in (('HTTPS answers', answers), ('log lines', logs),
                        ('--check-config / --once output', cli)):
        found = [label for label, n in needles_.items() if n in text]
        assert not found, f'{where}: private key material shown: {found}'
        assert_no_hits(where, text, [CANARY])


NOTIFY_CANARY = {
    'bearer': 'CANARY-notify-bearer-4a7d2f',
    'bearer file': 'CANARY-notify-bearerfile-91c0b7',
    'url path': 'CANARY-notify-path-b81c3e',
    'url query': 'CANARY-notify-query-0d9f55',
    'url file path': 'CANARY-notify-filepath-27e4aa',
    'url file query': 'CANARY-notify-filequery-c3b618',
    'refused path': 'CANARY-notify-refused-5f02d1',
    'rejected query': 'CANARY-notify-rejected-e7a943',
    'am userinfo': 'CANARY-notify-userinfo-6e2a90',
}


def notify_hits(text):
    data = text if isinstance(text, str) else text.decode('utf-8', 'replace')
    return [label for label, v in NOTIFY_CANARY.items() if v in data or v[-12:] in data]


def test_notifier_secrets_never_shown(redis_server, daemon, run_healthd, tmp_path):
    """SPEC 12: bearer tokens (inline and _file), tokens in a URL's path
    and query (inline, url_file, HEALTHD_ALERTMANAGER_URL with userinfo)
    never show in logs (debug, deliveries that succeed, are refused, get a
    400, and a reload), /status, /metrics, /events, the state file or
    --check-config; /status shows each URL as scheme://host:port only."""
    c = NOTIFY_CANARY
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))  # bound, never listening: connection refused
    refused_port = closed.getsockname()[1]
    bearer_file = tmp_path / 'bearer.secret'
    bearer_file.write_text(c['bearer file'] + '\n')
    state = tmp_path / 'state.json'
    with Receiver() as ok, Receiver() as viafile, Receiver(default=400) as rejecting, \
            Receiver() as am:
        url_file = tmp_path / 'url.secret'
        url_file.write_text(viafile.url(f'/hooks/{c["url file path"]}?sig={c["url file query"]}')
                            + '\n')
        config = (
            '[daemon]\ninterval = 500ms\ntimeout = 250ms\nlog_level = debug\n'
            f'state_file = {state}\n'
            f'\n[target redis-cache]\nkind = redis\nhost = 127.0.0.1\n'
            f'port = {redis_server.redis_port}\n'
            f'\n[notify inline]\nkind = webhook\n'
            f'url = {ok.url("/services/" + c["url path"] + "?token=" + c["url query"])}\n'
            f'bearer_token = {c["bearer"]}\n'
            f'\n[notify viafile]\nkind = webhook\nurl_file = {url_file}\n'
            f'bearer_token_file = {bearer_file}\n'
            f'\n[notify refused]\nkind = webhook\n'
            f'url = http://127.0.0.1:{refused_port}/x/{c["refused path"]}\n'
            f'\n[notify rejecting]\nkind = webhook\n'
            f'url = {rejecting.url("/r?key=" + c["rejected query"])}\n')
        am_url = f'http://healthd:{c["am userinfo"]}@127.0.0.1:{am.port}/am'
        env = {'HEALTHD_ALERTMANAGER_URL': am_url}
        d = daemon(config_text=config, env=env)
        d.wait_for(lambda: d.json('/status')['targets']['redis-cache']['status'] == 'pass',
                   10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        ok.wait_count(1, 10, what='the inline notifier delivered')
        viafile.wait_count(1, 10, what='the url_file notifier delivered')
        rejecting.wait_count(1, 10, what='the 400')
        am.wait_count(1, 10, what='the alertmanager notifier delivered')

        def refused_seen():
            n = d.json('/status')['notifiers']
            n = n if isinstance(n, dict) else {x['name']: x for x in n}
            return n['refused'].get('lastError') and n['rejecting'].get('lastError')
        d.wait_for(refused_seen, 10, what='the refused and rejected errors in /status')
        # the secrets were used as given
        assert ok.received()[0].headers.get('Authorization') == f'Bearer {c["bearer"]}'
        assert c['url path'] in ok.received()[0].path and c['url query'] in ok.received()[0].path
        assert viafile.received()[0].headers.get('Authorization') == \
            f'Bearer {c["bearer file"]}'
        assert am.received()[0].path.startswith('/am/api/v2/alerts'), am.received()[0]
        assert am.received()[0].headers.get('Authorization') == 'Basic ' + base64.b64encode(
            f'healthd:{c["am userinfo"]}'.encode()).decode()
        answers = []
        for path in ('/status', '/status?format=html', '/metrics', '/events',
                     '/events?type=notify_failed', '/livez', '/readyz'):
            status, hdrs, body = d.get(path)
            answers.append(f'{path} {status} {hdrs}\n{body.decode("utf-8", "replace")}')
        answers = '\n'.join(answers)
        assert f'http://127.0.0.1:{ok.port}' in answers  # the URL is shown: scheme://host:port
        assert 'notify_failed' in answers
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), 5,
                   what='the reload to be logged')
        d.stop()
    closed.close()
    logs = d.stdout() + d.stderr()
    assert '"level":"debug"' in logs
    # the error paths were logged, and so searched
    assert 'notifier refused' in logs and 'HTTP 400' in logs, logs[-3000:]
    r = run_healthd(['--check-config'], config_text=config, env=env)
    assert r.returncode == 0, r.stderr
    cli = r.stdout + r.stderr
    assert 'notify' in cli and '<redacted>' in cli, cli
    for where, text in (('HTTP answers', answers), ('log lines', logs),
                        ('--check-config', cli), ('the state file', state.read_text())):
        found = notify_hits(text)
        assert not found, f'{where}: notifier secrets shown: {found}'
