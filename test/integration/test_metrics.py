"""/metrics against real servers, promtool and a real Prometheus server
(issue: service levels, /metrics and the dashboard, items 3, 5 and 6;
SPEC 5 and 8).

- the live exposition passes `promtool check metrics`, for the three Redis
  targets and for the five default targets of the full stack;
- every metric family of SPEC 5's table, with its type and exact label set,
  is there from the first scrape, before any check has a result
  (histograms and counters at zero), and has real values once the checks
  pass;
- a Prometheus server started here on loopback (1 s scrapes, the daemon's
  token as its scrape credentials, etc/prometheus/alerts.yml loaded) reads
  the per-target up series back through its HTTP API, and sees the outage
  of a kill -9'd Redis: up 0, the target-down alert pending, then one more
  reconnection in the histogram;
- HEALTHD_STATUS_TOKEN guards /metrics (Bearer or Basic), probes stay open;
- etc/prometheus/alerts.yml passes `promtool check rules` and its unit
  tests (etc/prometheus/alerts_test.yml).

promtool and prometheus come from Debian's `prometheus` package
(scripts/debian-packages); without them these tests fail, never skip.
"""

import base64
import gzip
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse

import pytest

from fakeredis import FakeRedis
from helpers import ROOT, read_text, tail, wait_for
from localstack import free_port
from test_redis_core import all_status, redis_config

ALERTS = os.path.join(ROOT, 'etc', 'prometheus', 'alerts.yml')
ALERTS_TEST = os.path.join(ROOT, 'etc', 'prometheus', 'alerts_test.yml')
TOKEN = 'metrics-T0ken-5c1e9a'
REDIS_TARGETS = {'redis-cache': 'redis', 'redis-channels': 'redis',
                 'redis-celery': 'redis'}
DEFAULT_TARGETS = {'postgres': 'postgres', 'pgbouncer': 'pgbouncer', **REDIS_TARGETS}
BROKERS = {'redis-celery': ['celery']}
P = 'hdms_healthd_'

# SPEC 5's table: family -> (type, labels, which targets carry it).
# Scope 'target': every target; 'redis' / 'postgres' / 'pgbouncer': every
# target of that kind; 'broker': Redis targets with queues; None: global.
SPEC_FAMILIES = {
    'build_info': ('gauge', {'version'}, None),
    'target_up': ('gauge', {'target', 'kind'}, 'target'),
    'target_status': ('gauge', {'target', 'kind', 'status'}, 'target'),
    'check_success': ('gauge', {'target', 'kind'}, 'target'),
    'check_duration_seconds': ('histogram', {'target', 'kind'}, 'target'),
    'transitions_total': ('counter', {'target', 'kind'}, 'target'),
    'reconnect_duration_seconds': ('histogram', {'target', 'kind'}, 'target'),
    'reconnect_target_seconds': ('gauge', {'target', 'kind'}, 'target'),
    'reconnects_over_target_total': ('counter', {'target', 'kind'}, 'target'),
    'startup_duration_seconds': ('gauge', {'target', 'kind'}, 'target'),
    'availability_ratio': ('gauge', {'target', 'kind'}, 'target'),
    'redis_op_duration_seconds': ('histogram', {'target', 'op'}, 'redis'),
    'redis_queue_length': ('gauge', {'target', 'queue'}, 'broker'),
    'redis_queue_consumers': ('gauge', {'target'}, 'broker'),
    'pgbouncer_clients_waiting': ('gauge', {'target', 'database', 'user'}, 'pgbouncer'),
    'pgbouncer_maxwait_seconds': ('gauge', {'target', 'database', 'user'}, 'pgbouncer'),
    'postgres_connections': ('gauge', {'target'}, 'postgres'),
    'postgres_max_connections': ('gauge', {'target'}, 'postgres'),
    'postgres_bypass_backends': ('gauge', {'target'}, 'postgres'),
    'loop_lag_seconds': ('histogram', set(), None),
    'result_age_seconds': ('gauge', {'target', 'kind'}, 'target'),
}
POOL_FAMILIES = ('pgbouncer_clients_waiting', 'pgbouncer_maxwait_seconds')
STATUSES = ('pass', 'warn', 'fail', 'unknown')


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f'{name} not found: install Debian\'s `prometheus` package '
                    '(listed in scripts/debian-packages)', pytrace=False)
    return path


# ----- the text exposition format

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: {'n': '\n'}.get(m.group(1), m.group(1)), v)


class Exposition:
    """A parsed /metrics answer: types, helps and samples."""

    def __init__(self, text):
        self.text = text
        self.types, self.helps, self.samples = {}, {}, []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith('# TYPE '):
                _, _, name, typ = line.split(None, 3)
                assert name not in self.types, f'second TYPE line for {name}'
                self.types[name] = typ.strip()
            elif line.startswith('# HELP '):
                parts = line.split(None, 3)
                self.helps[parts[2]] = parts[3] if len(parts) > 3 else ''
            elif line.startswith('#'):
                continue
            else:
                m = _SAMPLE.match(line)
                assert m, f'not a sample line: {line!r}'
                labels, rest = {}, m.group(2) or ''
                while rest.strip():
                    lm = _LABEL.match(rest)
                    assert lm, f'bad labels in {line!r}'
                    labels[lm.group(1)] = _unescape(lm.group(2))
                    rest = rest[lm.end():]
                self.samples.append((m.group(1), labels, float(m.group(3))))

    def series(self, name, **want):
        """[(labels, value)] of the samples named `name` whose labels include `want`."""
        return [(lab, v) for n, lab, v in self.samples
                if n == name and all(lab.get(k) == w for k, w in want.items())]

    def value(self, name, **want):
        """The one sample's value; asserts there is exactly one."""
        found = self.series(name, **want)
        assert len(found) == 1, f'{name}{want}: {len(found)} samples: {found}'
        return found[0][1]

    def family_samples(self, family):
        typ = self.types.get(family)
        names = {family}
        if typ == 'histogram':
            names = {family + '_bucket', family + '_sum', family + '_count'}
        return [(n, lab, v) for n, lab, v in self.samples if n in names]


def promtool_check_metrics(text):
    r = subprocess.run([tool('promtool'), 'check', 'metrics'], input=text,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        f'promtool check metrics exited {r.returncode}:\n{r.stdout}{r.stderr}'


def scrape(d, headers=None):
    status, hdrs, body = d.get('/metrics', headers=headers)
    assert status == 200, (status, body[:300])
    ctype = hdrs.get('Content-Type', '')
    assert ctype.startswith('text/plain') and 'version=0.0.4' in ctype, ctype
    wire = len(body)
    if hdrs.get('Content-Encoding') == 'gzip':
        body = gzip.decompress(body)
    e = Exposition(body.decode('utf-8'))
    e.headers, e.wire_bytes = hdrs, wire
    return e


def bearer(token=TOKEN):
    return {'Authorization': f'Bearer {token}'}


def all_status_auth(d, want):
    targets = d.json('/status', headers=bearer())['targets']
    return {t['status'] for t in targets.values()} == {want}


def check_histogram(m, family, labels):
    """Buckets cumulative, +Inf == _count, _sum present; returns (les, count, sum)."""
    buckets = sorted(((float(lab['le']), v) for lab, v in
                      m.series(P + family + '_bucket', **labels)
                      if {k: lab[k] for k in labels} == labels and
                      set(lab) == set(labels) | {'le'}), key=lambda b: b[0])
    assert buckets, f'{family}{labels}: no buckets'
    assert buckets[-1][0] == math.inf, f'{family}{labels}: no +Inf bucket'
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f'{family}{labels}: buckets not cumulative {buckets}'
    count = m.value(P + family + '_count', **labels)
    total = m.value(P + family + '_sum', **labels)
    assert counts[-1] == count, f'{family}{labels}: +Inf {counts[-1]} != count {count}'
    return [le for le, _ in buckets], count, total


def check_spec(m, targets, brokers, fresh):
    """Every family of SPEC 5 with its type and exact label set, one series
    per target that should carry it. `fresh`: no check has a result yet, so
    counters and histograms are at zero and each target is unknown."""
    for fam, (typ, labels, scope) in SPEC_FAMILIES.items():
        name = P + fam
        assert m.types.get(name) == typ, f'{name}: TYPE {m.types.get(name)}, SPEC says {typ}'
        assert m.helps.get(name), f'{name}: no HELP'
        samples = m.family_samples(name)
        for n, lab, _ in samples:
            extra = {'le'} if n.endswith('_bucket') and typ == 'histogram' else set()
            assert set(lab) == labels | extra, f'{n}{lab}: labels, SPEC says {sorted(labels)}'
        if scope is None:
            assert samples, f'{name}: no sample'
            continue
        names = {'target': set(targets),
                 'redis': {t for t, k in targets.items() if k == 'redis'},
                 'postgres': {t for t, k in targets.items() if k == 'postgres'},
                 'pgbouncer': {t for t, k in targets.items() if k == 'pgbouncer'},
                 'broker': set(brokers)}[scope]
        seen = {lab['target'] for _, lab, _ in samples}
        assert seen == names, f'{name}: series for {sorted(seen)}, want {sorted(names)}'
        for _, lab, _ in samples:
            if 'kind' in labels:
                assert lab['kind'] == targets[lab['target']], lab
    # per-target details
    for t, kind in targets.items():
        tk = {'target': t, 'kind': kind}
        st = {lab['status']: v for lab, v in m.series(P + 'target_status', **tk)}
        assert set(st) == set(STATUSES), f'{t}: target_status for {sorted(st)}'
        assert sum(st.values()) == 1, f'{t}: target_status {st}'
        les, count, total = check_histogram(m, 'check_duration_seconds', tk)
        assert 0.05 in les, f'check_duration_seconds buckets {les}: SPEC wants 0.05'
        rles, rcount, rsum = check_histogram(m, 'reconnect_duration_seconds', tk)
        finite = [le for le in rles if le != math.inf]
        assert finite[0] == pytest.approx(0.1) and finite[-1] == pytest.approx(30), \
            f'reconnect buckets {rles}: SPEC wants 0.1 s to 30 s'
        assert m.value(P + 'reconnect_target_seconds', **tk) == 5
        if fresh:
            assert st['unknown'] == 1, f'{t}: {st} before any result'
            assert m.value(P + 'target_up', **tk) == 0
            assert m.value(P + 'check_success', **tk) == 0
            assert (count, total) == (0, 0), f'{t}: check_duration {count} {total}'
            assert (rcount, rsum) == (0, 0), f'{t}: reconnect_duration {rcount} {rsum}'
            assert m.value(P + 'transitions_total', **tk) == 0
            assert m.value(P + 'reconnects_over_target_total', **tk) == 0
            assert math.isnan(m.value(P + 'startup_duration_seconds', **tk)), \
                f'{t}: startup_duration_seconds before a pass must be NaN'
    for t in (t for t, k in targets.items() if k == 'redis'):
        ops = {lab['op'] for lab, _ in m.series(P + 'redis_op_duration_seconds_count', target=t)}
        want = {'ping'} if t in brokers else {'ping', 'set', 'get', 'del'}
        assert want <= ops, f'{t}: redis op series {sorted(ops)}, want {sorted(want)}'
        for op in ops:
            _, count, _ = check_histogram(m, 'redis_op_duration_seconds',
                                          {'target': t, 'op': op})
            if fresh:
                assert count == 0
    for t, queues in brokers.items():
        got = {lab['queue'] for lab, _ in m.series(P + 'redis_queue_length', target=t)}
        assert got == set(queues), f'{t}: queue series {sorted(got)}'
    check_histogram(m, 'loop_lag_seconds', {})


def check_spec_passing(m, targets, brokers):
    """Values once every target passes."""
    check_spec(m, targets, brokers, fresh=False)
    for t, kind in targets.items():
        tk = {'target': t, 'kind': kind}
        assert m.value(P + 'target_up', **tk) == 1
        # pass, or warn when an op was slow under load just now
        assert m.value(P + 'target_status', status='pass', **tk) + \
            m.value(P + 'target_status', status='warn', **tk) == 1
        assert m.value(P + 'check_success', **tk) == 1
        assert m.value(P + 'check_duration_seconds_count', **tk) >= 1
        # unknown -> pass, or unknown -> warn -> pass when the first
        # check's ops were slow (a server just resumed)
        assert m.value(P + 'transitions_total', **tk) >= 1
        startup = m.value(P + 'startup_duration_seconds', **tk)
        assert 0 < startup < 10, f'{t}: startup {startup}'
        assert m.value(P + 'availability_ratio', **tk) == 1
        assert 0 <= m.value(P + 'result_age_seconds', **tk) < 5
    for t in (t for t, k in targets.items() if k == 'redis'):
        assert m.value(P + 'redis_op_duration_seconds_count', target=t, op='ping') >= 1
    for t, queues in brokers.items():
        for q in queues:
            assert m.value(P + 'redis_queue_length', target=t, queue=q) == 0
        assert m.value(P + 'redis_queue_consumers', target=t) == 0


# ----- promtool on live output; SPEC 5 from the first scrape


def test_redis_targets_metrics_from_first_scrape(redis_server, daemon):
    # A stopped server: no check can end before its 2 s deadline, so the
    # first scrape is from before any result.
    redis_server.kill_redis(signal.SIGSTOP)
    try:
        d = daemon(config_text=redis_config(redis_server.redis_port, interval='3s',
                                            timeout='2s'))
        first = scrape(d)
        assert d.json('/status')['targets']['redis-cache']['status'] == 'unknown', \
            'a result arrived before the first scrape: the test proves nothing'
    finally:
        redis_server.kill_redis(signal.SIGCONT)
    promtool_check_metrics(first.text)
    check_spec(first, REDIS_TARGETS, BROKERS, fresh=True)
    assert first.value(P + 'build_info', version=d.json('/status')['version']) == 1

    d.wait_for(lambda: all_status(d, 'pass'), timeout=10, what='all pass')
    m = scrape(d)
    promtool_check_metrics(m.text)
    check_spec_passing(m, REDIS_TARGETS, BROKERS)
    assert m.headers.get('Content-Encoding') is None, 'gzip without Accept-Encoding'
    assert m.headers.get('Vary') == 'Accept-Encoding', dict(m.headers)
    # gzip when asked, as Prometheus always asks; the same exposition inside
    z = scrape(d, {'Accept-Encoding': 'gzip'})
    assert z.headers.get('Content-Encoding') == 'gzip', dict(z.headers)
    assert z.headers.get('Vary') == 'Accept-Encoding', dict(z.headers)
    assert z.wire_bytes < len(m.text.encode()) / 4, (z.wire_bytes, len(m.text))
    promtool_check_metrics(z.text)
    check_spec_passing(z, REDIS_TARGETS, BROKERS)
    assert sorted((n, sorted(lab.items())) for n, lab, _ in z.samples) == \
        sorted((n, sorted(lab.items())) for n, lab, _ in m.samples)
    refused = scrape(d, {'Accept-Encoding': 'gzip;q=0, deflate'})
    assert refused.headers.get('Content-Encoding') is None
    # HEAD answers like GET, without a body
    status, hdrs, body = d.get('/metrics', method='HEAD')
    assert status == 200 and body == b'' and 'version=0.0.4' in hdrs['Content-Type']


def _stop_all(st, sig):
    st.kill_pg(sig)
    st.kill_pgbouncer(sig)
    st.kill_redis(sig)


def test_default_targets_metrics_from_first_scrape(stack, daemon):
    env = {**stack.env(), 'HEALTHD_INTERVAL': '4s', 'HEALTHD_TIMEOUT': '3s'}
    _stop_all(stack, signal.SIGSTOP)
    try:
        d = daemon(env=env)
        first = scrape(d)
        targets = d.json('/status')['targets']
        assert {t['status'] for t in targets.values()} == {'unknown'}, \
            'a result arrived before the first scrape: the test proves nothing'
    finally:
        _stop_all(stack, signal.SIGCONT)
    assert set(targets) == set(DEFAULT_TARGETS)
    promtool_check_metrics(first.text)
    check_spec(first, DEFAULT_TARGETS, BROKERS, fresh=True)
    for fam in ('postgres_connections', 'postgres_max_connections',
                'postgres_bypass_backends'):
        assert math.isnan(first.value(P + fam, target='postgres')), \
            f'{fam} before a result should be NaN (no data), not a number'

    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=20, what='/readyz 200')
    d.wait_for(lambda: all_status(d, 'pass'), timeout=10, what='all five pass')
    m = scrape(d)
    promtool_check_metrics(m.text)
    check_spec_passing(m, DEFAULT_TARGETS, BROKERS)
    assert m.value(P + 'postgres_max_connections', target='postgres') == \
        stack.pg_max_connections
    assert m.value(P + 'postgres_connections', target='postgres') >= 1
    # NaN until a PgBouncer SHOW SERVERS snapshot precedes a postgres check
    # (the next round at the latest), then a count
    d.wait_for(lambda: scrape(d).value(P + 'postgres_bypass_backends', target='postgres') == 0,
               timeout=10, interval=0.2, what='postgres_bypass_backends 0')
    # the daemon's own pool through PgBouncer (user healthd to db hdms); its
    # SHOW POOLS runs beside its own pooled SELECT 1, which can be waiting
    # for a server connection at that moment (1 then, under load)
    assert m.value(P + 'pgbouncer_clients_waiting', target='pgbouncer',
                   database='hdms', user='healthd') in (0, 1)
    # seconds (SHOW POOLS gives maxwait and maxwait_us): a wait of a few
    # milliseconds at most here, so an unconverted microsecond count shows
    maxwait = m.value(P + 'pgbouncer_maxwait_seconds', target='pgbouncer',
                      database='hdms', user='healthd')
    assert 0 <= maxwait < 5, maxwait
    # every metric the alert rules use is one the daemon exports
    used = set(re.findall(r'\b(hdms_healthd_[a-z_]+)', read_text(ALERTS)))
    assert used, 'alerts.yml uses no hdms_healthd_ metric'
    exported = {n for n, _, _ in m.samples} | set(m.types)
    assert used <= exported, f'alerts.yml uses unknown metrics: {sorted(used - exported)}'


def test_pgbouncer_pool_series_from_first_scrape(stack, daemon):
    """SPEC 5: every per-target series exists from startup. The pool the
    daemon's own check uses ($POSTGRES_DB as $HEALTHD_PG_USER) is known
    from the configuration, so its gauges can be there before SHOW POOLS
    has answered (NaN until then), and while PgBouncer is down."""
    env = {**stack.env(), 'HEALTHD_INTERVAL': '4s', 'HEALTHD_TIMEOUT': '3s',
           'HEALTHD_RETRY_INTERVAL': '100ms'}
    own = {'target': 'pgbouncer', 'database': 'hdms', 'user': 'healthd'}
    problems = []
    stack.kill_pgbouncer(signal.SIGSTOP)
    try:
        d = daemon(env=env)
        first = scrape(d)
        assert d.json('/status')['targets']['pgbouncer']['status'] == 'unknown'
    finally:
        stack.kill_pgbouncer(signal.SIGCONT)
    for fam in POOL_FAMILIES:
        if not first.series(P + fam, **own):
            problems.append(f'{P}{fam}{own}: missing before the first result')
    d.wait_for(lambda: d.json('/status')['targets']['pgbouncer']['status'] == 'pass',
               timeout=10, what='pgbouncer pass')
    for fam in POOL_FAMILIES:
        assert scrape(d).series(P + fam, **own), f'{P}{fam}{own}: missing after a pass'
    stack.kill_pgbouncer(signal.SIGKILL)
    d.wait_for(lambda: d.json('/status')['targets']['pgbouncer']['status'] == 'fail',
               timeout=5, what='pgbouncer fail')
    down = scrape(d)
    promtool_check_metrics(down.text)
    for fam in POOL_FAMILIES:
        if not down.series(P + fam, **own):
            problems.append(f'{P}{fam}{own}: gone while PgBouncer is down')
    assert not problems, 'SPEC 5 (every per-target series exists from startup):\n' + \
        '\n'.join(problems)


def test_target_failing_from_its_first_check_is_unavailable(daemon):
    """SPEC 4: availability is the share of the watched time a target was
    up. A server that answers every command with an error has been down
    for all of it, even though it never was up first."""
    with FakeRedis() as fake:
        d = daemon(config_text=f'[daemon]\ninterval = 500ms\ntimeout = 250ms\n\n'
                               f'[target broken]\nkind = redis\nhost = 127.0.0.1\n'
                               f'port = {fake.port}\nfall = 1\n')
        d.wait_for(lambda: d.json('/status')['targets']['broken']['status'] == 'fail',
                   timeout=5, what='broken fails')
        time.sleep(2)
        m = scrape(d)
        promtool_check_metrics(m.text)
    tk = {'target': 'broken', 'kind': 'redis'}
    assert m.value(P + 'target_up', **tk) == 0
    assert m.value(P + 'check_success', **tk) == 0
    assert m.value(P + 'check_failures_total', **tk) >= 3
    assert math.isnan(m.value(P + 'startup_duration_seconds', **tk))
    avail = m.value(P + 'availability_ratio', **tk)
    assert avail < 0.5, (f'availability_ratio {avail} for a target down for all of '
                         'the 2+ s it was watched')


# ----- token (SPEC 8)


def test_token_guards_metrics_not_probes(redis_server, daemon):
    d = daemon(config_text=redis_config(redis_server.redis_port),
               env={'HEALTHD_STATUS_TOKEN': TOKEN})
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=10, what='/readyz 200')
    status, hdrs, body = d.get('/metrics')
    assert status == 401, (status, body[:200])
    assert hdrs.get('WWW-Authenticate', '').startswith('Basic'), hdrs.items()
    for bad in ({'Authorization': 'Bearer wrong'},
                {'Authorization': f'Bearer {TOKEN}x'},
                {'Authorization': f'Bearer {TOKEN[:-1]}'},
                {'Authorization': 'Basic ' + base64.b64encode(b'prom:nope').decode()}):
        assert d.get('/metrics', headers=bad)[0] == 401, bad
    m = scrape(d, headers=bearer())
    promtool_check_metrics(m.text)
    basic = base64.b64encode(f'prometheus:{TOKEN}'.encode()).decode()
    assert d.get('/metrics', headers={'Authorization': f'Basic {basic}'})[0] == 200
    # probes stay open; no answer carries the token
    for path in ('/livez', '/readyz', '/healthz', '/startupz', '/health/redis-cache'):
        status, _, body = d.get(path)
        assert status == 200, (path, status, body)
        assert TOKEN.encode() not in body
    assert TOKEN.encode() not in m.text.encode()


# ----- alert rules (issue item 6)


def test_alert_rules_pass_promtool():
    r = subprocess.run([tool('promtool'), 'check', 'rules', ALERTS],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    alerts = set(re.findall(r'^\s*-\s*alert:\s*(\S+)', read_text(ALERTS), re.M))
    # one per case of the issue: down, reconnects over target, availability
    # under 99.9 % over 24 h, pool clients waiting, queue depth
    text = read_text(ALERTS)
    for metric in ('hdms_healthd_target_up', 'hdms_healthd_reconnects_over_target_total',
                   'hdms_healthd_availability_ratio < 0.999',
                   'hdms_healthd_pgbouncer_clients_waiting',
                   'hdms_healthd_redis_queue_length'):
        assert metric in text, f'alerts.yml: no rule on {metric}'
    assert len(alerts) >= 5, alerts
    r = subprocess.run([tool('promtool'), 'test', 'rules', ALERTS_TEST],
                       capture_output=True, text=True, timeout=60, check=False,
                       cwd=os.path.dirname(ALERTS_TEST))
    assert r.returncode == 0, r.stdout + r.stderr


# ----- a real Prometheus server


class Prometheus:
    """`prometheus` on 127.0.0.1:port with its config and TSDB in `workdir`."""

    def __init__(self, workdir, scrape_port, token=None, rule_files=()):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.log_path = os.path.join(self.dir, 'prometheus.log')
        auth = (f'    authorization:\n      type: Bearer\n      credentials: {token}\n'
                if token else '')
        rules = ''.join(f'  - {json.dumps(p)}\n' for p in rule_files)
        self.config = os.path.join(self.dir, 'prometheus.yml')
        with open(self.config, 'w') as f:
            f.write(f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
{rules or '  []'}
scrape_configs:
  - job_name: hdms-healthd
    honor_labels: false
    static_configs:
      - targets: ['127.0.0.1:{scrape_port}']
{auth}""")
        self.proc = None

    def start(self, timeout=20):
        # No alertmanager, no remote write, no service discovery beyond the
        # static loopback target; Prometheus itself phones nowhere.
        argv = [tool('prometheus'), f'--config.file={self.config}',
                f'--storage.tsdb.path={os.path.join(self.dir, "data")}',
                f'--web.listen-address=127.0.0.1:{self.port}',
                '--storage.tsdb.retention.time=1h', '--log.level=info',
                f'--web.console.templates={os.path.join(self.dir, "consoles")}',
                f'--web.console.libraries={os.path.join(self.dir, "console_libraries")}']
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
                                              'HOME': self.dir})
        wait_for(lambda: self._get('/-/ready')[0] == 200, timeout,
                 what='prometheus /-/ready', check=self.assert_running)
        return self

    def assert_running(self):
        if self.proc.poll() is not None:
            raise AssertionError(f'prometheus exited with {self.proc.returncode}:\n'
                                 f'{tail(read_text(self.log_path))}')

    def _get(self, path):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=3)
        try:
            conn.request('GET', path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def api(self, path, **params):
        q = ('?' + urllib.parse.urlencode(params)) if params else ''
        status, body = self._get(f'/api/v1/{path}{q}')
        doc = json.loads(body)
        assert status == 200 and doc['status'] == 'success', (status, doc)
        return doc['data']

    def query(self, expr):
        """{frozenset(labels without __name__): float} of an instant query."""
        return {frozenset((k, v) for k, v in r['metric'].items() if k != '__name__'):
                float(r['value'][1]) for r in self.api('query', query=expr)['result']}

    def value(self, expr):
        """The single value of an instant query, None when empty."""
        res = self.query(expr)
        assert len(res) <= 1, res
        return next(iter(res.values())) if res else None

    def wait_value(self, expr, want, timeout=20):
        return wait_for(lambda: self.value(expr) == want, timeout, interval=0.2,
                        what=f'prometheus: {expr} == {want}', check=self.assert_running)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def prometheus(request, tmp_path):
    """Factory: prometheus(scrape_port, token=None, rule_files=()) -> started
    Prometheus; stopped after the test, its log printed when the test failed."""
    made = []

    def start(scrape_port, token=None, rule_files=()):
        p = Prometheus(tmp_path / f'prometheus{len(made)}', scrape_port, token, rule_files)
        made.append(p)
        return p.start()

    yield start
    failed = any(getattr(getattr(request.node, 'rep_' + w, None), 'failed', False)
                 for w in ('setup', 'call'))
    for p in made:
        p.stop()
        if failed:
            print(f'----- {p.log_path} -----\n{tail(read_text(p.log_path), 40)}')


def test_prometheus_scrapes_up_and_counts_a_reconnection(redis_server, daemon, prometheus):
    d = daemon(config_text=redis_config(redis_server.redis_port, interval='1s',
                                        timeout='300ms'),
               env={'HEALTHD_STATUS_TOKEN': TOKEN})
    prom = prometheus(d.port, token=TOKEN, rule_files=[ALERTS])
    up = 'hdms_healthd_target_up{target="redis-cache"}'
    count = 'hdms_healthd_reconnect_duration_seconds_count{target="redis-cache"}'

    # Prometheus applies its first target set up to 5 s after it starts.
    prom.wait_value(up, 1, timeout=25)
    series = prom.query(up)
    labels = dict(next(iter(series)))
    assert labels == {'target': 'redis-cache', 'kind': 'redis', 'job': 'hdms-healthd',
                      'instance': f'127.0.0.1:{d.port}'}, labels
    targets = prom.api('targets')['activeTargets']
    assert [t['health'] for t in targets] == ['up'], targets
    # every alert rule loads and evaluates against the real series
    def rules_ok():
        rules = [r for g in prom.api('rules')['groups'] for r in g['rules']]
        return rules and all(r['health'] == 'ok' for r in rules) and rules
    wait_for(rules_ok, 15, interval=0.2, what='alert rules evaluated')
    assert prom.value(count) == 0  # present at zero from the first scrape

    m0 = scrape(d, headers=bearer())
    tk = {'target': 'redis-cache', 'kind': 'redis'}
    c0 = m0.value(P + 'reconnect_duration_seconds_count', **tk)
    over0 = m0.value(P + 'reconnects_over_target_total', **tk)
    trans0 = m0.value(P + 'transitions_total', **tk)
    assert c0 == 0

    redis_server.kill_redis(signal.SIGKILL)
    try:
        d.wait_for(lambda: all_status_auth(d, 'fail'), timeout=5, what='all fail')
        prom.wait_value(up, 0, timeout=10)

        def pending():
            return [a for a in prom.api('alerts')['alerts']
                    if a['labels'].get('alertname') == 'HdmsTargetDown'
                    and a['labels'].get('target') == 'redis-cache']
        wait_for(pending, 10, interval=0.2, what='HdmsTargetDown pending')
        assert pending()[0]['state'] == 'pending'  # `for: 1m` has not passed
    finally:
        redis_server.start_redis()
    d.wait_for(lambda: all_status_auth(d, 'pass'), timeout=10, what='all pass again')

    m1 = scrape(d, headers=bearer())
    promtool_check_metrics(m1.text)
    assert m1.value(P + 'reconnect_duration_seconds_count', **tk) == c0 + 1, \
        'one outage, one more reconnection in the histogram'
    took = m1.value(P + 'reconnect_duration_seconds_sum', **tk) - \
        m0.value(P + 'reconnect_duration_seconds_sum', **tk)
    assert 0 < took < 5, f'reconnection took {took} s'
    assert m1.value(P + 'reconnects_over_target_total', **tk) == over0
    # pass -> fail -> pass (-> warn -> pass on a slow op after the restart)
    assert m1.value(P + 'transitions_total', **tk) >= trans0 + 2
    for other in ('redis-channels', 'redis-celery'):
        assert m1.value(P + 'reconnect_duration_seconds_count',
                        target=other, kind='redis') == 1
    # and Prometheus sees the same
    prom.wait_value(count, c0 + 1, timeout=10)
    prom.wait_value(up, 1, timeout=10)
    assert prom.value(f'increase({count}[1m]) > 0') is not None
    assert prom.value('hdms_healthd_reconnects_over_target_total'
                      '{target="redis-cache"}') == over0
