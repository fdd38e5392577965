"""TLS to PostgreSQL and PgBouncer (SPEC 13): verification with the
configured files, reason tls_failed with libpq's words, and the server
certificate's expiry (a warning, a metric, days left in /status).

Real servers: PostgreSQL with ssl = on and PgBouncer with client_tls_*,
each given a certificate from a CA that openssl makes at test time
(tlsca.py). The server certificates name `db.test` only, which the fake
DNS server resolves to 127.0.0.1: a target that connects by IP therefore
meets a certificate for a name, the host-name mismatch of verify-full."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tlsca import CertAuthority, enable_pg_tls, pg_speaks_tls

DB_NAME = 'db.test'


def pg_target(name, host, port, ca=None, sslmode='verify-full', extra=''):
    root = f'sslrootcert = {ca}\n' if ca else ''
    return f"""
[target {name}]
kind = postgres
host = {host}
port = {port}
dbname = hdms
user = healthd
password = healthd-pw
sslmode = {sslmode}
{root}interval = 1s
timeout = 800ms
{extra}"""


def pgb_target(name, host, port, ca, sslmode='verify-full'):
    return f"""
[target {name}]
kind = pgbouncer
host = {host}
port = {port}
dbname = hdms
user = healthd
password = healthd-pw
admin_user = pgbouncer
admin_password = pgbouncer-admin-pw
sslmode = {sslmode}
sslrootcert = {ca}
interval = 1s
timeout = 800ms
"""


def target_state(d, name):
    t = d.json('/status')['targets'][name]
    raw = t.get('lastResult', {})
    return raw.get('status'), raw.get('reason'), raw.get('output', ''), t


def wait_result(d, name, status, timeout=20):
    """Waits for the target's last raw result to have `status`; returns
    (reason, output, target detail)."""
    got = {}

    def reached():
        got['s'] = target_state(d, name)
        return got['s'][0] == status
    d.wait_for(reached, timeout=timeout,
               what=f'{name} to report {status} (last: {got.get("s", ("?",))[:3]})')
    return got['s'][1:]


def metric(d, name, target):
    body = d.get('/metrics')[2].decode()
    m = re.search(r'^hdms_healthd_%s\{target="%s"\} (\S+)$' % (name, re.escape(target)),
                  body, re.M)
    return None if m is None else float(m.group(1))


@pytest.fixture
def cas(tmp_path):
    good = CertAuthority(tmp_path / 'ca-good', 'hdms test CA')
    other = CertAuthority(tmp_path / 'ca-other', 'some other CA')
    return good, other


def test_postgres_verify_full(make_stack, daemon, fakedns, cas):
    """Right CA and name pass; a wrong CA, a connection by IP to a
    certificate for a name, and a server without TLS under `require` each
    fail with tls_failed and libpq's words."""
    good, other = cas
    fakedns.set(DB_NAME, '127.0.0.1')
    st = make_stack(servers=('pg',))
    plain = make_stack(servers=('pg',))  # no TLS at all
    cert, key = good.issue('pg', f'DNS:{DB_NAME}')
    enable_pg_tls(st, cert, key)
    not_after = CertAuthority.not_after(cert)

    conf = ('[daemon]\ninterval = 1s\n'
            + pg_target('good', DB_NAME, st.pg_port, good.cert)
            + pg_target('wrong-ca', DB_NAME, st.pg_port, other.cert)
            + pg_target('by-ip', '127.0.0.1', st.pg_port, good.cert)
            + pg_target('no-tls', '127.0.0.1', plain.pg_port, sslmode='require'))
    d = daemon(config_text=conf)

    reason, output, detail = wait_result(d, 'good', 'pass')
    assert detail['tls']['daysLeft'] > 28 and detail['tls']['daysLeft'] <= 30, detail['tls']
    assert metric(d, 'tls_cert_expiry_timestamp_seconds', 'good') == not_after
    checks = d.json('/status')['checks']['good:certificateExpiry'][0]
    assert checks['status'] == 'pass' and checks['observedUnit'] == 'days', checks

    reason, output, _ = wait_result(d, 'wrong-ca', 'fail')
    assert reason == 'tls_failed', (reason, output)
    assert 'certificate verify failed' in output, output

    reason, output, _ = wait_result(d, 'by-ip', 'fail')
    assert reason == 'tls_failed', (reason, output)
    assert f'server certificate for "{DB_NAME}"' in output, output
    assert 'does not match host name "127.0.0.1"' in output, output

    reason, output, _ = wait_result(d, 'no-tls', 'fail')
    assert reason == 'tls_failed', (reason, output)
    assert 'server does not support SSL' in output, output
    # no certificate, no expiry: the series says "unknown", not 0
    body = d.get('/metrics')[2].decode()
    assert 'hdms_healthd_tls_cert_expiry_timestamp_seconds{target="no-tls"} NaN' in body


def test_postgres_expired_certificate(make_stack, daemon, fakedns, cas):
    """A certificate whose validity window is past fails verify-full with
    tls_failed; where nothing verifies it (require), the check connects and
    warns that it has expired."""
    good, _ = cas
    fakedns.set(DB_NAME, '127.0.0.1')
    st = make_stack(servers=('pg',))
    cert, key = good.issue('pg-old', f'DNS:{DB_NAME}', startdate='20200101000000Z',
                           enddate='20200201000000Z')
    enable_pg_tls(st, cert, key)
    conf = ('[daemon]\ninterval = 1s\n'
            + pg_target('verified', DB_NAME, st.pg_port, good.cert)
            + pg_target('unverified', DB_NAME, st.pg_port, sslmode='require'))
    d = daemon(config_text=conf)

    reason, output, _ = wait_result(d, 'verified', 'fail')
    assert reason == 'tls_failed', (reason, output)
    # libpq 15's words: it drops OpenSSL's reason ("certificate has
    # expired") with the TLS object before the message is read
    assert 'certificate verify failed' in output, output

    reason, output, detail = wait_result(d, 'unverified', 'warn')
    assert reason == 'cert_expiring', (reason, output)
    assert 'expired' in output, output
    assert detail['tls']['daysLeft'] < -300, detail['tls']


def test_postgres_certificate_expiring_soon(make_stack, daemon, fakedns, cas):
    """A certificate that expires in 3 days warns under the 14-day default,
    and passes with cert_expiry_warn below 3 days."""
    good, _ = cas
    fakedns.set(DB_NAME, '127.0.0.1')
    st = make_stack(servers=('pg',))
    cert, key = good.issue('pg-soon', f'DNS:{DB_NAME}', days=3)
    enable_pg_tls(st, cert, key)
    not_after = CertAuthority.not_after(cert)
    conf = ('[daemon]\ninterval = 1s\n'
            + pg_target('soon', DB_NAME, st.pg_port, good.cert)
            + pg_target('relaxed', DB_NAME, st.pg_port, good.cert,
                        extra='cert_expiry_warn = 2d\n'))
    d = daemon(config_text=conf)

    reason, output, detail = wait_result(d, 'soon', 'warn')
    assert reason == 'cert_expiring', (reason, output)
    assert 'expires in 3.0 days' in output or 'expires in 2.9 days' in output, output
    assert 2.8 <= detail['tls']['daysLeft'] <= 3.0, detail['tls']
    assert metric(d, 'tls_cert_expiry_timestamp_seconds', 'soon') == not_after
    check = d.json('/status')['checks']['soon:certificateExpiry'][0]
    assert check['status'] == 'warn', check

    reason, output, _ = wait_result(d, 'relaxed', 'pass')
    assert metric(d, 'tls_cert_expiry_timestamp_seconds', 'relaxed') == not_after
    # a warn is still ready (SPEC 3): the database works
    assert d.get('/readyz')[0] == 200

    # Renewal: PostgreSQL gets a certificate for 30 days and reloads.  The
    # persistent connection still holds the old one, so while it is within
    # its warning window the daemon logs in afresh once a minute
    # (PGCONN_CERT_RECHECK_S), and the warning ends without an outage.
    renewed, renewed_key = good.issue('pg-renewed', f'DNS:{DB_NAME}', days=30)
    enable_pg_tls(st, renewed, renewed_key)
    new_after = CertAuthority.not_after(renewed)
    reason, output, detail = wait_result(d, 'soon', 'pass', timeout=120)
    assert metric(d, 'tls_cert_expiry_timestamp_seconds', 'soon') == new_after
    assert detail['tls']['daysLeft'] > 28, detail['tls']
    # unknown -> warn -> pass, and no check failed on the way
    assert detail['transitions'] == 2 and detail['failures'] == 0, detail


def test_pgbouncer_client_tls(make_stack, daemon, fakedns, cas):
    """PgBouncer with client_tls_*: the pooler and the admin console both
    log in over verified TLS; the expiry of PgBouncer's certificate warns;
    a wrong CA and a connection by IP fail with tls_failed."""
    good, other = cas
    fakedns.set(DB_NAME, '127.0.0.1')
    st = make_stack(servers=('pg',))
    cert, key = good.issue('pgb', f'DNS:{DB_NAME}', days=3)
    not_after = CertAuthority.not_after(cert)
    paths = {}
    for src, name in ((cert, 'server.pem'), (key, 'server.key')):
        paths[name] = os.path.join(st.pgb_dir, name)
        with open(src) as f:
            st._write(paths[name], f.read(), mode=0o600)
    st.pgb_extra = (f"client_tls_sslmode = require\n"
                    f"client_tls_cert_file = {paths['server.pem']}\n"
                    f"client_tls_key_file = {paths['server.key']}\n")
    st.start_pgbouncer()
    assert pg_speaks_tls(st.pgb_port)

    conf = ('[daemon]\ninterval = 1s\n'
            + pgb_target('pool', DB_NAME, st.pgb_port, good.cert)
            + pgb_target('pool-wrong-ca', DB_NAME, st.pgb_port, other.cert)
            + pgb_target('pool-by-ip', '127.0.0.1', st.pgb_port, good.cert))
    d = daemon(config_text=conf)

    reason, output, detail = wait_result(d, 'pool', 'warn')
    assert reason == 'cert_expiring', (reason, output)
    assert 2.8 <= detail['tls']['daysLeft'] <= 3.0, detail['tls']
    assert metric(d, 'tls_cert_expiry_timestamp_seconds', 'pool') == not_after
    # the admin console answered over TLS too: its figures are there
    st_json = d.json('/status')
    assert 'pool:clientsWaiting' in st_json['checks'], sorted(st_json['checks'])

    reason, output, _ = wait_result(d, 'pool-wrong-ca', 'fail')
    assert reason == 'tls_failed', (reason, output)
    assert 'certificate verify failed' in output, output

    reason, output, _ = wait_result(d, 'pool-by-ip', 'fail')
    assert reason == 'tls_failed', (reason, output)
    assert 'does not match host name "127.0.0.1"' in output, output


def test_client_certificate(make_stack, daemon, fakedns, cas, tmp_path):
    """sslcert and sslkey reach libpq: a server that requires a client
    certificate (hostssl ... clientcert=verify-full) lets the target in with
    one, and refuses it without."""
    good, _ = cas
    fakedns.set(DB_NAME, '127.0.0.1')
    st = make_stack(servers=('pg',))
    cert, key = good.issue('pg-cc', f'DNS:{DB_NAME}')
    enable_pg_tls(st, cert, key)
    with open(good.cert) as f:
        st._write(os.path.join(st.pgdata, 'client-ca.pem'), f.read(), mode=0o600)
    st._write(os.path.join(st.pgdata, 'pg_hba.conf'),
              'local all all trust\n'
              'hostssl all healthd 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n')
    st.psql("ALTER SYSTEM SET ssl_ca_file = 'client-ca.pem'", db='postgres')
    st.psql('SELECT pg_reload_conf()', db='postgres')
    ccert, ckey = good.issue('healthd-client', 'DNS:healthd', cn='healthd')
    time.sleep(0.5)  # the reload is asynchronous; a refused login is retried anyway
    conf = ('[daemon]\ninterval = 1s\n'
            + pg_target('with-cert', DB_NAME, st.pg_port, good.cert,
                        extra=f'sslcert = {ccert}\nsslkey = {ckey}\n')
            + pg_target('without-cert', DB_NAME, st.pg_port, good.cert))
    d = daemon(config_text=conf)
    wait_result(d, 'with-cert', 'pass')
    reason, output, _ = wait_result(d, 'without-cert', 'fail')
    assert 'certificate' in output, (reason, output)


def test_bad_tls_files_refused(run_healthd, tmp_path, cas):
    """Files are checked when the configuration is loaded: an unreadable
    root certificate and a client key that others may read are refused with
    the file, line and key named; so is tls = yes on a redis target."""
    good, _ = cas
    ccert, ckey = good.issue('loose', 'DNS:x')
    os.chmod(ckey, 0o644)
    cases = [
        (pg_target('a', 'db', 5432, str(tmp_path / 'missing.pem')),
         'sslrootcert', 'missing.pem'),
        (pg_target('a', 'db', 5432, good.cert, extra=f'sslcert = {ccert}\nsslkey = {ckey}\n'),
         'sslkey', 'group or world access'),
        ('\n[target r]\nkind = redis\ntls = yes\n', 'tls', 'hiredis 0.14.1'),
    ]
    for text, key, words in cases:
        r = run_healthd(['--check-config'], config_text=text)
        assert r.returncode == 2, (key, r.stdout, r.stderr)
        assert re.search(r'\.conf:\d+: \[target \w+\] %s: ' % key, r.stderr), r.stderr
        assert words in r.stderr, r.stderr
    r = run_healthd(['--check-config'], env={'POSTGRES_SSLROOTCERT': str(tmp_path / 'nope.pem')})
    assert r.returncode == 2 and 'POSTGRES_SSLROOTCERT' in r.stderr, r.stderr
    r = run_healthd(['--check-config'], env={'POSTGRES_SSLMODE': 'verify-full',
                                             'POSTGRES_SSLROOTCERT': good.cert,
                                             'PGBOUNCER_SSLMODE': 'verify-ca',
                                             'PGBOUNCER_SSLROOTCERT': good.cert})
    assert r.returncode == 0, r.stderr
    sections = r.stdout.split('\n[target ')
    pg = next(s for s in sections if s.startswith('postgres]'))
    pgb = next(s for s in sections if s.startswith('pgbouncer]'))
    assert 'sslmode = verify-full' in pg and f'sslrootcert = {good.cert}' in pg, pg
    assert 'sslmode = verify-ca' in pgb and f'sslrootcert = {good.cert}' in pgb, pgb


# ---- HTTPS for the daemon's own endpoint ----

HTTPS_CONF = """
[daemon]
tls_cert_file = {cert}
tls_key_file = {key}

[target cache]
kind = redis
host = 127.0.0.1
port = {port}
interval = 500ms
timeout = 250ms
"""


def curl(*args):
    return subprocess.run(['curl', '-sS', '--max-time', '5', *args], capture_output=True,
                          text=True, timeout=30, check=False)


def served_cert(port):
    """The PEM certificate the daemon's listener presents now."""
    r = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{port}',
                        '-servername', 'localhost'],
                       input='', capture_output=True, text=True, timeout=30, check=False)
    m = re.search(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', r.stdout, re.S)
    assert m, r.stdout + r.stderr
    return m.group(0)


def pem_of(path):
    with open(path) as f:
        return re.search(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----',
                         f.read(), re.S).group(0)


def test_https_listener(make_stack, daemon, run_healthd, cas):
    """HTTPS through libmicrohttpd's GnuTLS: curl with the CA gets 200 on
    /readyz and fails verification without it; plain HTTP gets no answer;
    the probe subcommand verifies with --cacert, refuses without it, and
    passes with --insecure."""
    good, other = cas
    st = make_stack(servers=('redis',))
    cert, key = good.issue('web', 'IP:127.0.0.1,DNS:localhost')
    d = daemon(config_text=HTTPS_CONF.format(cert=cert, key=key, port=st.redis_port))
    base = f'https://127.0.0.1:{d.port}'
    ok = {}

    def ready():
        ok['r'] = curl('--cacert', good.cert, '-o', '/dev/null', '-w', '%{http_code}',
                       base + '/readyz')
        return ok['r'].stdout == '200'
    d.wait_for(ready, timeout=20, what=f'200 over HTTPS (last: {ok.get("r")})')

    r = curl('-o', '/dev/null', base + '/readyz')  # the system's roots only
    assert r.returncode == 60, (r.returncode, r.stderr)  # peer certificate cannot be verified
    r = curl('--cacert', other.cert, '-o', '/dev/null', base + '/readyz')
    assert r.returncode == 60, (r.returncode, r.stderr)
    r = curl('-o', '/dev/null', f'http://127.0.0.1:{d.port}/readyz')
    assert r.returncode != 0, 'plain HTTP answered on the HTTPS port'
    assert any('(HTTPS)' in str(e.get('msg', e)) for e in d.logs()), d.logs()[:3]

    r = run_healthd(['probe', '--cacert', good.cert, base + '/readyz'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('200 ') and '"status":"pass"' in r.stdout, r.stdout
    r = run_healthd(['probe', '--cacert', other.cert, base + '/readyz'])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert 'certificate verify failed' in r.stderr, r.stderr
    r = run_healthd(['probe', base + '/readyz'])
    assert r.returncode == 1 and 'certificate verify failed' in r.stderr, r.stderr
    r = run_healthd(['probe', '--insecure', base + '/readyz'])
    assert r.returncode == 0 and r.stdout.startswith('200 '), (r.stdout, r.stderr)
    # the default URL follows HEALTHD_TLS_CERT_FILE and HEALTHD_LISTEN
    r = run_healthd(['probe', '--cacert', good.cert],
                    env={'HEALTHD_LISTEN': f'127.0.0.1:{d.port}',
                         'HEALTHD_TLS_CERT_FILE': cert})
    assert r.returncode == 0 and r.stdout.startswith('200 '), (r.stdout, r.stderr)
    # a certificate for another name is refused by the host check
    r = run_healthd(['probe', '--cacert', good.cert, f'https://localhost:{d.port}/livez'])
    assert r.returncode == 0, r.stderr  # localhost is in the certificate
    r = run_healthd(['probe', '--cacert', good.cert, '--insecure', f'http://127.0.0.1:{d.port}/'])
    assert r.returncode == 2, (r.stdout, r.stderr)


def test_https_reload(make_stack, daemon, run_healthd, cas, tmp_path):
    """SIGHUP re-reads the pair: a renewed certificate at the same path is
    served to new connections; a pair whose key does not match, or a key
    file that is gone, refuses the reload and the old certificate keeps
    serving."""
    good, _ = cas
    st = make_stack(servers=('redis',))
    first, first_key = good.issue('web1', 'IP:127.0.0.1')
    second, second_key = good.issue('web2', 'IP:127.0.0.1')
    cert = str(tmp_path / 'live.pem')
    key = str(tmp_path / 'live.key')
    shutil.copy(first, cert)
    shutil.copy(first_key, key)
    d = daemon(config_text=HTTPS_CONF.format(cert=cert, key=key, port=st.redis_port))
    assert served_cert(d.port) == pem_of(first)

    def reloads():
        """Log lines that end a reload: taken or refused."""
        return sum(1 for e in d.logs()
                   if 'configuration reloaded' in str(e.get('msg', ''))
                   or 'reload refused' in str(e.get('msg', '')))

    # renewal: new files at the same paths, then SIGHUP
    shutil.copy(second, cert)
    shutil.copy(second_key, key)
    before = reloads()
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: reloads() > before, timeout=10, what='the reload to be logged')
    assert served_cert(d.port) == pem_of(second)
    r = run_healthd(['probe', '--cacert', good.cert, f'https://127.0.0.1:{d.port}/livez'])
    assert r.returncode == 0, r.stderr

    # a mismatched pair: the new certificate with the old key
    shutil.copy(first, cert)
    before = reloads()
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: reloads() > before, timeout=10, what='the refusal to be logged')
    refused = [e for e in d.logs() if 'reload refused' in str(e.get('msg', ''))]
    assert refused and 'tls_cert_file' in str(refused[-1]), refused
    assert served_cert(d.port) == pem_of(second)  # the old pair keeps serving
    r = run_healthd(['probe', '--cacert', good.cert, f'https://127.0.0.1:{d.port}/livez'])
    assert r.returncode == 0, r.stderr

    # the key file gone: refused too, naming the key
    os.unlink(key)
    before = reloads()
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: reloads() > before, timeout=10, what='the refusal to be logged')
    refused = [e for e in d.logs() if 'reload refused' in str(e.get('msg', ''))]
    assert 'tls_key_file' in str(refused[-1]), refused[-1]
    assert served_cert(d.port) == pem_of(second)
    for e in d.logs():  # never the key's content
        assert 'PRIVATE KEY' not in str(e), e


def test_https_bad_pair_at_start(run_healthd, cas, tmp_path):
    """A pair that does not belong together stops the start and
    --check-config, naming the files; the key's content is never shown."""
    good, _ = cas
    cert, _ = good.issue('a', 'IP:127.0.0.1')
    _, key = good.issue('b', 'IP:127.0.0.1')
    conf = HTTPS_CONF.format(cert=cert, key=key, port=6379)
    r = run_healthd(['--check-config'], config_text=conf)
    assert r.returncode == 2, r.stdout
    assert 'tls_cert_file' in r.stderr and 'tls_key_file' in r.stderr, r.stderr
    with open(key) as f:
        secret = f.read().split('\n')[1]
    assert secret not in r.stderr + r.stdout
    r = run_healthd(['-l', '127.0.0.1:1'], config_text=conf, timeout=20)
    assert r.returncode != 0 and 'tls_cert_file' in r.stderr, r.stderr
    # a good pair: --check-config shows the paths
    cert2, key2 = good.issue('c', 'IP:127.0.0.1')
    r = run_healthd(['--check-config'],
                    config_text=HTTPS_CONF.format(cert=cert2, key=key2, port=6379))
    assert r.returncode == 0, r.stderr
    assert f'tls_cert_file = {cert2}' in r.stdout and f'tls_key_file = {key2}' in r.stdout
