#!/usr/bin/python3
"""make bench: footprint, cost per check, HTTP, detection and scale figures.

Starts a local PostgreSQL + PgBouncer + Redis stack (test/localstack.py) on
127.0.0.1, runs the release build against it, and writes

  build/bench/results.json   every figure and every raw sample
  docs/performance.md        the report (between its bench markers)
  docs/performance.png       the chart (bench/chart.py)

Every figure is a median over repeated runs with its spread (min-max).
Nothing here is a pass/fail test: goals are compared and reported.

    bench/run.py [--quick] [--bin PATH] [--only SECTION,...] [--no-report]

BENCH_LOGINS_BEFORE (or --logins-before PATH) also runs the logins section
on an older binary, for a before/after of the loop lag during logins.

Section state (issue 11): the state file's size and serialisation time at
5 and 1,000 targets, and the loop lag while it is written every second.

BENCH_QUICK=1 (or --quick) runs each part shorter and fewer times (about
4 minutes instead of about 11); --smoke runs each once for a second or two
(about a minute: `make test` runs it, so the bench cannot rot unseen). BENCH_BIN (or --bin) measures another
binary (a patched build, say). Sections: footprint, crowd, cost, http,
detect, scale, logins, state. Loopback only; every loop and wait is bounded.
"""

import argparse
import datetime
import glob
import hashlib
import http.client
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in bench/ or test/
sys.path.insert(0, os.path.join(ROOT, 'test'))

import localstack  # noqa: E402
from localstack import Stack, fast_tmpdir, free_port  # noqa: E402

SECTIONS = ('footprint', 'crowd', 'cost', 'http', 'detect', 'scale', 'logins', 'state')

# The goals, in the units the results use.
GOALS = {
    'anon_kib': 2048,            # private (anonymous) memory idle, KiB
    'rss_kib': 12 * 1024,        # total RSS idle, KiB
    'idle_cpu_pct': 0.1,         # % of one core, five targets at 1 s
    'readyz_rps': 20000,
    'readyz_p99_ms': 1.0,
    'metrics_rps': 5000,
    'kill_ms': 50,               # killed server -> /readyz 503
    'first_pass_slack_ms': 20,   # first pass within retry_interval + 20 ms of accepting
    'scale_cpu_pct': 10.0,       # 1,000 targets at 1 s, % of one core
    'scale_lag_p99_ms': 5.0,
    'scale_render_turn_ms': 5.0,  # the loop held by one render turn, 1,000 targets
    'rss_growth_kib': 512,       # after 10 s of wrk on each endpoint
    'crowd_cpu_pct': 0.05,       # five default targets at 1 s beside a production-shaped crowd
    'crowd_per_check_ratio': 1.10,  # CPU per check, crowded / empty
}

INTERVAL_MS, TIMEOUT_MS, RETRY_MS, RISE, FALL = 1000, 500, 250, 2, 2
WAKER_RATE = 5  # bench/waker.c's wakeups a second (one per default target)
SMALL_POOL = 32 * 1024  # bytes: the http section's second /readyz daemon


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', flush=True)


# ----- statistics


def summary(values):
    """median, min, max, n of a list of numbers (None-free)."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {'median': None, 'min': None, 'max': None, 'n': 0}
    return {'median': statistics.median(vals), 'min': min(vals), 'max': max(vals),
            'n': len(vals)}


# ----- /proc


def cpu_ns(pid):
    """CPU time of every thread of pid, in ns (scheduler accounting, not
    10 ms ticks)."""
    total = 0
    try:
        for tid in os.listdir(f'/proc/{pid}/task'):
            with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf('SC_CLK_TCK')


def loop_thread_wakeups(pid):
    """Voluntary context switches of the process's first thread (the loop):
    how often it went to sleep, so how often it was woken up."""
    with open(f'/proc/{pid}/task/{pid}/status') as f:
        for line in f:
            if line.startswith('voluntary_ctxt_switches:'):
                return int(line.split()[1])
    return 0


def loop_thread_cpu_ns(pid):
    """CPU time of the process's first thread (the loop), from schedstat."""
    with open(f'/proc/{pid}/task/{pid}/schedstat') as f:
        return int(f.read().split()[0])


def proc_mem(pid):
    """Memory (KiB) and context switches of pid from /proc."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile', 'RssShmem'):
                out[k] = int(v.split()[0])
            elif k in ('voluntary_ctxt_switches', 'nonvoluntary_ctxt_switches'):
                out[k] = int(v)
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                k, _, v = line.partition(':')
                if k in ('Pss', 'Private_Clean', 'Private_Dirty', 'Anonymous'):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    out['ctxt'] = out.get('voluntary_ctxt_switches', 0) + out.get('nonvoluntary_ctxt_switches', 0)
    return out


def fd_count(pid):
    try:
        return len(os.listdir(f'/proc/{pid}/fd'))
    except OSError:
        return -1


class MachineLoad:
    """Busy share of the whole machine (all CPUs) over a window, from
    /proc/stat, and the load average: how noisy the machine was."""

    def __init__(self):
        self.t0 = self._read()
        self.load0 = os.getloadavg()[0]

    @staticmethod
    def _read():
        with open('/proc/stat') as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle

    def result(self):
        t1 = self._read()
        total, idle = t1[0] - self.t0[0], t1[1] - self.t0[1]
        return {'machine_busy_pct': round(100.0 * (total - idle) / total, 1) if total else None,
                'cpus': os.cpu_count(), 'loadavg_start': round(self.load0, 2),
                'loadavg_end': round(os.getloadavg()[0], 2)}


# ----- HTTP and Prometheus text


class Http:
    """One keep-alive HTTP/1.1 client; reconnects when the server closes."""

    def __init__(self, port, timeout=3.0):
        self.port, self.timeout, self.conn = port, timeout, None

    def get(self, path, headers=None):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                                           timeout=self.timeout)
                self.conn.request('GET', path, headers=headers or {})
                r = self.conn.getresponse()
                body = r.read()
                if (r.getheader('Connection') or '').lower() == 'close':
                    self.close()
                return r.status, body
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError('unreachable')

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of a text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line[0] == '#':
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(3) or '')),
                        float(m.group(4))))
    return out


def metric_sum(samples, name, **match):
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == w for k, w in match.items()))


def histogram_buckets(samples, name, **match):
    """{le (float): cumulative count} summed over every series of a histogram."""
    out = {}
    for n, lab, v in samples:
        if n == name + '_bucket' and all(lab.get(k) == w for k, w in match.items()):
            le = float('inf') if lab['le'] == '+Inf' else float(lab['le'])
            out[le] = out.get(le, 0) + v
    return out


def histogram_delta(b1, b0):
    return {le: b1[le] - b0.get(le, 0) for le in b1}


def histogram_quantile(q, buckets):
    """(estimate, bucket upper bound) of quantile q from cumulative buckets,
    linear inside the bucket as Prometheus does; (None, None) when empty."""
    les = sorted(buckets)
    total = buckets[les[-1]] if les else 0
    if total <= 0:
        return None, None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if math.isinf(le):
                return prev_le, le
            if c == prev_c:
                return le, le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c), le
        prev_le, prev_c = le, c
    return None, None


def share_at_most(buckets, bound):
    les = sorted(buckets)
    total = buckets[les[-1]] if les else 0
    return buckets.get(bound, 0) / total if total else None


def count_over(buckets, bound):
    """Samples above `bound` (one of the histogram's bounds)."""
    les = sorted(buckets)
    total = buckets[les[-1]] if les else 0
    return total - buckets.get(bound, 0)


def max_bucket(buckets):
    """Upper bound of the bucket holding the largest sample (None: empty)."""
    les = sorted(buckets)
    total = buckets[les[-1]] if les else 0
    for le in les:
        if total and buckets[le] >= total:
            return le
    return None


# ----- the daemon


class Daemon:
    """One hdms-healthd process on 127.0.0.1, with its own work dir."""

    def __init__(self, bench, name, env=None, config=None, wrapper=None, default_env=True):
        self.bench = bench
        self.name = name
        self.dir = os.path.join(bench.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        full = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C',
                # a closed loopback port: no DNS query can leave the machine
                'HEALTHD_NAMESERVERS': f'127.0.0.1:{free_port(udp=True)}'}
        if default_env:
            full.update(bench.stack.env())
            full.update(HEALTHD_INTERVAL=f'{INTERVAL_MS}ms', HEALTHD_TIMEOUT=f'{TIMEOUT_MS}ms')
        full.update(env or {})
        full.update(bench.daemon_env)
        self.env = full
        self.argv = list(wrapper or []) + [bench.bin, '-l', f'127.0.0.1:{self.port}',
                                           '--log-format', 'json']
        if config is not None:
            path = os.path.join(self.dir, 'healthd.conf')
            with open(path, 'w') as f:
                f.write(config)
            self.argv += ['-c', path]
        self.proc = None
        self.http = Http(self.port)
        bench.daemons.append(self)

    def start(self, nofile=None):
        def limits():
            if nofile:
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                if soft < nofile:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
        with open(os.path.join(self.dir, 'stdout.log'), 'ab') as out, \
                open(os.path.join(self.dir, 'stderr.log'), 'ab') as err:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True, preexec_fn=limits)
        self.started = time.monotonic()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise RuntimeError(f'{self.name}: daemon exited ({self.proc.returncode}); '
                               f'see {self.dir}/stderr.log')

    def get(self, path):
        return self.http.get(path)

    def status(self):
        return json.loads(self.get('/status')[1])

    def metrics(self):
        return parse_metrics(self.get('/metrics')[1].decode())

    def wait_ready(self, timeout=60.0, every_target=True):
        """Until /readyz answers 200 (and, with every_target, every target
        has passed at least once and none fails)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                code, _ = self.get('/readyz')
                if code == 200 and (not every_target or self.all_up()):
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f'{self.name}: not ready within {timeout:.0f} s; '
                           f'see {self.dir}/stderr.log')

    def wait_up_quietly(self, timeout=60.0):
        """Until every target has turned pass or warn, read from the daemon's
        own log: no HTTP request is served, so "idle" means idle."""
        deadline = time.monotonic() + timeout
        path = os.path.join(self.dir, 'stderr.log')
        while time.monotonic() < deadline:
            self.check_alive()
            state, ntargets = {}, None
            with open(path, errors='replace') as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    m = re.search(r', (\d+) targets$', ev.get('msg', ''))
                    if m:
                        ntargets = int(m.group(1))
                    if ev.get('event') == 'transition':
                        state[ev['target']] = ev['to']
            if ntargets and len(state) == ntargets and \
                    all(v in ('pass', 'warn') for v in state.values()):
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise RuntimeError(f'{self.name}: targets not up within {timeout:.0f} s')

    def all_up(self):
        st = self.status()
        return all(t.get('status') in ('pass', 'warn') for t in st['targets'].values())

    def stop(self):
        if self.proc is None:
            return
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self in self.bench.daemons:
            self.bench.daemons.remove(self)


class Crowd:
    """The servers' population of a production stack: 40 idle clients on
    PgBouncer (five Django services' pools), 30 idle Redis clients and 4
    Celery workers blocked in BRPOP on db 2. What a check reads from the
    servers (CLIENT LIST, SHOW SERVERS, ...) grows with it."""

    def __init__(self, stack, pg_clients=40, redis_clients=30, workers=4):
        self.stack = stack
        self.procs = []
        self.socks = []
        for _ in range(pg_clients):
            # one login, one query, then the session sits idle in psql,
            # waiting for more on its stdin (closed by close(): psql ends
            # and leaves nothing behind)
            p = stack.psql_tcp_bg(stdin=subprocess.PIPE)
            p.stdin.write('SELECT 1;\n')
            p.stdin.flush()
            self.procs.append(p)
        for _ in range(redis_clients):
            self.socks.append(socket.create_connection(('127.0.0.1', stack.redis_port), 5))
        for _ in range(workers):
            s = socket.create_connection(('127.0.0.1', stack.redis_port), 5)
            s.sendall(b'*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n'
                      b'*3\r\n$5\r\nBRPOP\r\n$6\r\ncelery\r\n$1\r\n0\r\n')
            self.socks.append(s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lists = stack.pgb_show('LISTS')
            used = next((int(r['items']) for r in lists if r['list'] == 'used_clients'), 0)
            if used >= pg_clients:
                break
            time.sleep(0.2)
        self.pg_clients = used

    def close(self):
        for s in self.socks:
            s.close()
        for p in self.procs:
            p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ----- config files


def build_c(name, *pkgs):
    """bench/NAME.c -> build/bench/NAME with dashes (a reference program
    the bench runs beside the daemon); None if it cannot be built."""
    out = os.path.join(ROOT, 'build', 'bench', name.replace('_', '-'))
    src = os.path.join(ROOT, 'bench', f'{name}.c')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', *pkgs],
                           capture_output=True, text=True).stdout.split() if pkgs else []
    r = subprocess.run([os.environ.get('CC', 'cc'), '-O2', '-g', '-o', out, src, *flags],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f'{name} not built: {r.stderr.strip()[:300]}')
        return None
    return out


def callgrind_latest(d):
    """(path, instructions) of the newest callgrind dump of daemon d (run
    with --callgrind-out-file=DIR/callgrind.out.%p), or (None, None)."""
    dumps = sorted(glob.glob(os.path.join(d.dir, f'callgrind.out.{d.pid}.*')),
                   key=os.path.getmtime)
    if not dumps:
        return None, None
    with open(dumps[-1]) as f:
        for line in f:
            if line.startswith('summary:'):
                return dumps[-1], int(line.split()[1])
    return dumps[-1], None


def target_conf(stack, kind, name, **extra):
    p = stack.passwords
    if kind == 'postgres':
        body = (f'kind = postgres\nhost = 127.0.0.1\nport = {stack.pg_port}\n'
                f'dbname = hdms\nuser = healthd\npassword = {p["healthd"]}\napp_user = hdms\n')
    elif kind == 'pgbouncer':
        body = (f'kind = pgbouncer\nhost = 127.0.0.1\nport = {stack.pgb_port}\n'
                f'dbname = hdms\nuser = healthd\npassword = {p["healthd"]}\n'
                f'admin_user = pgbouncer\nadmin_password = {p["pgbouncer"]}\n')
    elif kind == 'redis':
        body = f'kind = redis\nhost = 127.0.0.1\nport = {stack.redis_port}\ndb = 0\n'
    elif kind == 'redis-broker':
        body = (f'kind = redis\nhost = 127.0.0.1\nport = {stack.redis_port}\ndb = 2\n'
                'queues = celery\n')
    else:
        raise ValueError(kind)
    body += ''.join(f'{k} = {v}\n' for k, v in extra.items())
    return f'[target {name}]\n{body}\n'


# ----- the bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.smoke = args.smoke
        self.bin = os.path.abspath(args.bin)
        self.rng = random.Random(20261127)
        self.daemons = []
        self.workdir = tempfile.mkdtemp(prefix='hdms-bench-', dir=fast_tmpdir())
        os.chmod(self.workdir, 0o755)
        self.stack = None
        self.results = {}
        self.daemon_env = dict(kv.split('=', 1) for kv in args.daemon_env)

    # --- helpers

    def n(self, full, quick, smoke):
        """How many runs or seconds: a full, a quick or a smoke run."""
        return smoke if self.smoke else quick if self.quick else full

    def cleanup(self):
        for d in list(self.daemons):
            try:
                d.stop()
            except Exception as e:  # noqa: BLE001 (best effort)
                log(f'stopping {d.name}: {e}')
        if self.stack is not None:
            self.stack.destroy()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start_stack(self):
        self.stack = Stack(os.path.join(self.workdir, 'stack'))
        t0 = time.monotonic()
        self.stack.start()
        log(f'stack up in {time.monotonic() - t0:.1f} s: PostgreSQL :{self.stack.pg_port}, '
            f'PgBouncer :{self.stack.pgb_port}, Redis :{self.stack.redis_port}')

    def wait_stack_healthy(self, timeout=40.0):
        """After fault injection: every server running and accepting."""
        for name in ('pg', 'pgbouncer', 'redis'):
            if not self.stack.alive(name):
                {'pg': self.stack.start_pg, 'pgbouncer': self.stack.start_pgbouncer,
                 'redis': self.stack.start_redis}[name]()

    # --- 1. footprint

    def footprint(self):
        runs = self.n(3, 2, 1)
        secs = self.n(60, 15, 2)
        log(f'footprint: {runs} daemons side by side, five default targets at 1 s, '
            f'{secs} s idle each')
        ds = [Daemon(self, f'footprint-{i}').start() for i in range(runs)]
        for d in ds:
            d.wait_up_quietly()
        time.sleep(self.n(5, 3, 1))  # connections made, first rounds done
        load = MachineLoad()
        t0 = time.monotonic()
        c0 = {d.name: cpu_ns(d.pid) for d in ds}
        m0 = {d.name: proc_mem(d.pid) for d in ds}
        peak = {d.name: 0 for d in ds}
        while time.monotonic() - t0 < secs:
            time.sleep(min(5.0, max(0.0, secs - (time.monotonic() - t0))))
            for d in ds:
                d.check_alive()
                peak[d.name] = max(peak[d.name], proc_mem(d.pid)['VmRSS'])
        wall = time.monotonic() - t0
        c1 = {d.name: cpu_ns(d.pid) for d in ds}
        runs_out = []
        for d in ds:
            m1 = proc_mem(d.pid)
            # then one request of each endpoint, as a scraper and a probe would
            for path in ('/readyz', '/status', '/metrics'):
                d.get(path)
            d.http.close()
            time.sleep(0.3)
            m2 = proc_mem(d.pid)
            mets = d.metrics()
            checks = metric_sum(mets, 'hdms_healthd_checks_total')
            runs_out.append({
                'cpu_pct': 100.0 * (c1[d.name] - c0[d.name]) / (wall * 1e9),
                'cpu_us_per_s': (c1[d.name] - c0[d.name]) / wall / 1e3,
                'wakeups_per_s': (m1['ctxt'] - m0[d.name]['ctxt']) / wall,
                'checks_per_s': checks / (time.monotonic() - d.started),
                'rss_kib': m1['VmRSS'], 'anon_kib': m1['RssAnon'], 'file_kib': m1['RssFile'],
                'private_kib': m1.get('Private_Clean', 0) + m1.get('Private_Dirty', 0),
                'pss_kib': m1.get('Pss'), 'rss_peak_kib': peak[d.name],
                'rss_served_kib': m2['VmRSS'], 'anon_served_kib': m2['RssAnon'],
                'fds': fd_count(d.pid),
            })
            d.stop()
        keys = ('cpu_pct', 'cpu_us_per_s', 'wakeups_per_s', 'checks_per_s', 'rss_kib',
                'anon_kib', 'file_kib', 'private_kib', 'pss_kib', 'rss_peak_kib',
                'rss_served_kib', 'anon_served_kib')
        self.results['footprint'] = {
            'seconds': secs, 'runs': runs_out,
            **{k: summary([r[k] for r in runs_out]) for k in keys},
            'machine': load.result(),
        }
        f = self.results['footprint']
        log(f'footprint: RSS {f["rss_kib"]["median"]} KiB (anon {f["anon_kib"]["median"]}), '
            f'CPU {f["cpu_pct"]["median"]:.3f}% of a core, '
            f'{f["wakeups_per_s"]["median"]:.1f} wakeups/s; after one request of each '
            f'endpoint: anon {f["anon_served_kib"]["median"]} KiB')

    # --- 1b. the servers' crowd

    def crowd(self):
        """Idle CPU of five default targets at 1 s, the servers empty and
        then crowded (Crowd), in alternating windows: a check should cost
        what its round trips cost, not what the size of the servers' client
        lists is. The reference client (bench/ref_client.c) makes the same
        round trips in the same windows and nothing else: the machine's
        floor of the moment. bench/waker.c, in the same windows too, only
        wakes up WAKER_RATE times a second: what one wakeup costs here."""
        daemons = self.n(3, 2, 1)
        rounds = self.n(3, 2, 1)
        secs = self.n(30, 15, 2)
        settle = self.n(12, 12, 1)  # the slow figures (every 10 s) read again
        log(f'crowd: {daemons} daemons side by side, five default targets at 1 s, {rounds} '
            f'rounds of {secs} s with the servers empty, then as long beside 40 PgBouncer '
            'clients, 30 idle Redis clients and 4 workers in BRPOP; the reference client in '
            'the same windows')
        ds = [Daemon(self, f'crowd-{i}').start() for i in range(daemons)]
        for d in ds:
            d.wait_up_quietly()
        ref = self.start_ref_client()
        waker = self.start_waker()
        time.sleep(self.n(5, 3, 1))
        wins = {'empty': [], 'crowded': []}
        refs = {'empty': [], 'crowded': []}
        wakes = []  # us of CPU per bare wakeup, every window

        def window(label):
            n0 = {d.name: self._checks(d) for d in ds}
            t0 = time.monotonic()
            c0 = {d.name: cpu_ns(d.pid) for d in ds}
            w0 = {d.name: loop_thread_wakeups(d.pid) for d in ds}
            r0 = cpu_ns(ref.pid) if ref else None
            k0 = cpu_ns(waker.pid) if waker else None
            time.sleep(secs)
            c1 = {d.name: cpu_ns(d.pid) for d in ds}
            w1 = {d.name: loop_thread_wakeups(d.pid) for d in ds}
            r1 = cpu_ns(ref.pid) if ref else None
            k1 = cpu_ns(waker.pid) if waker else None
            wall = time.monotonic() - t0
            ref_ns = r1 - r0 if ref and ref.poll() is None else None
            if ref_ns is not None:
                refs[label].append(100.0 * ref_ns / (wall * 1e9))
            if waker and waker.poll() is None:
                wakes.append((k1 - k0) / 1e3 / (wall * WAKER_RATE))
            for d in ds:
                d.check_alive()
                cpu = c1[d.name] - c0[d.name]
                checks = self._checks(d) - n0[d.name]
                wins[label].append({
                    'cpu_pct': 100.0 * cpu / (wall * 1e9),
                    'cpu_us_per_check': cpu / 1e3 / checks if checks else None,
                    # above the floor: what the daemon adds to the round trips
                    'net_us_per_check': ((cpu - ref_ns) / 1e3 / checks
                                         if checks and ref_ns is not None else None),
                    'checks_per_s': checks / wall,
                    'loop_wakeups_per_s': (w1[d.name] - w0[d.name]) / wall})

        try:
            pg_clients = self._empty_then_crowded(rounds, settle, window)
        finally:
            for p in (ref, waker):
                if p:
                    p.terminate()
                    p.wait(10)
        for d in ds:
            d.stop()
        res = {'seconds': secs, 'runs': daemons, 'rounds': rounds, 'pg_clients': pg_clients,
               'redis_clients': 30, 'workers': 4, 'waker_rate': WAKER_RATE}
        if wakes:
            res['wakeup_us'] = summary(wakes)
        keys = ('cpu_pct', 'cpu_us_per_check', 'net_us_per_check', 'checks_per_s',
                'loop_wakeups_per_s')
        for label, rs in wins.items():
            res[label] = {k: summary([x[k] for x in rs if x[k] is not None]) for k in keys}
            res[label]['raw'] = rs
            if refs[label]:
                res[f'ref_{label}_cpu_pct'] = summary(refs[label])
        e, c = res['empty']['cpu_us_per_check']['median'], res['crowded']['cpu_us_per_check']['median']
        res['per_check_ratio'] = c / e if e else None
        ne = res['empty']['net_us_per_check']['median']  # summary(): None when unmeasured
        nc = res['crowded']['net_us_per_check']['median']
        res['net_per_check_ratio'] = nc / ne if ne and nc is not None else None
        try:
            res['callgrind'] = self.crowd_callgrind(rounds, settle)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            log(f'crowd: instructions not counted: {e}')  # the CPU figures stand
            res['callgrind'] = None
        self.results['crowd'] = res
        log(f'crowd: CPU {res["empty"]["cpu_pct"]["median"]:.3f}% empty, '
            f'{res["crowded"]["cpu_pct"]["median"]:.3f}% crowded; per check {e:.1f} us empty, '
            f'{c:.1f} us crowded (x{res["per_check_ratio"]:.2f})')
        if 'wakeup_us' in res:
            log(f'crowd: a bare wakeup costs {res["wakeup_us"]["median"]:.1f} us here; the '
                f'daemon wakes {res["crowded"]["loop_wakeups_per_s"]["median"]:.2f} times a '
                'second')
        if 'ref_crowded_cpu_pct' in res:
            log(f'crowd: the reference client (the same round trips, nothing else) '
                f'{res["ref_empty_cpu_pct"]["median"]:.3f}% empty, '
                f'{res["ref_crowded_cpu_pct"]["median"]:.3f}% crowded; the daemon above it '
                f'{ne or 0:.1f} us a check empty, {nc or 0:.1f} us crowded')

    def _empty_then_crowded(self, rounds, settle, window):
        """window('empty'), then window('crowded') beside a Crowd started
        settle seconds before, rounds times; returns the crowd's PgBouncer
        clients as last counted."""
        pg_clients = None
        for r in range(rounds):
            window('empty')
            crowd = Crowd(self.stack)
            try:
                time.sleep(settle)
                window('crowded')
            finally:
                crowd.close()
            pg_clients = crowd.pg_clients
            if r + 1 < rounds:
                time.sleep(settle)
        return pg_clients

    def crowd_callgrind(self, rounds, settle):
        """Instructions per check of the five default targets, servers
        empty and crowded in alternating windows, under callgrind: the
        cost of a check's own work, which the machine's CPU noise cannot
        reach (CPU time swings 2x from window to window here); the checks
        of a window are counted to about one round (callgrind_control acts
        at the daemon's next wakeup). None without valgrind."""
        if not shutil.which('valgrind') or not shutil.which('callgrind_control'):
            log('crowd: valgrind not installed, instructions not counted')
            return None
        secs = self.n(10, 5, 2)
        # a PostgreSQL login (SCRAM) takes ~0.3 s under valgrind
        d = Daemon(self, 'crowd-callgrind', env={'HEALTHD_TIMEOUT': '900ms'})
        out = os.path.join(d.dir, 'callgrind.out.%p')
        d.argv = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}'] + d.argv
        d.start()
        per = {'empty': [], 'crowded': []}
        try:
            d.wait_ready(timeout=180)
            time.sleep(settle)  # every figure read once (the slow ones every 10 s)

            def window(label):
                n0 = metric_sum(d.metrics(), 'hdms_healthd_checks_total')
                subprocess.run(['callgrind_control', '-z', str(d.pid)], check=True,
                               capture_output=True, timeout=60)
                time.sleep(secs)
                subprocess.run(['callgrind_control', '-d', str(d.pid)], check=True,
                               capture_output=True, timeout=60)
                checks = metric_sum(d.metrics(), 'hdms_healthd_checks_total') - n0
                ir = callgrind_latest(d)[1]
                if ir and checks:
                    per[label].append(ir / checks)

            self._empty_then_crowded(rounds, settle, window)
        finally:
            d.stop()
        res = {'seconds': secs, 'rounds': rounds,
               'empty': summary(per['empty']), 'crowded': summary(per['crowded'])}
        e, c = res['empty']['median'], res['crowded']['median']
        res['ratio'] = c / e if e and c is not None else None
        if res['ratio'] is not None:
            log(f'crowd: {e:,.0f} instructions per check empty, {c:,.0f} crowded '
                f'(x{res["ratio"]:.2f}, callgrind)')
        return res

    @staticmethod
    def start_waker():
        """bench/waker.c at WAKER_RATE wakeups a second, or None."""
        exe = build_c('waker')
        if exe is None:
            return None
        proc = subprocess.Popen([exe, str(WAKER_RATE)], stdin=subprocess.DEVNULL)
        time.sleep(0.2)
        if proc.poll() is not None:
            log(f'crowd: the waker exited at start ({proc.returncode})')
            return None
        return proc

    def start_ref_client(self):
        """The reference client on the bench's stack: the round trips of the
        five default targets once a second (three Redis connections)."""
        exe = build_c('ref_client', 'libpq', 'libevent')
        if exe is None:
            return None
        st, p = self.stack, self.stack.passwords
        env = dict(os.environ,
                   REF_PG=f'host=127.0.0.1 port={st.pg_port} dbname=hdms user=healthd '
                          f'password={p["healthd"]}',
                   REF_PGBOUNCER=f'host=127.0.0.1 port={st.pgb_port} dbname=hdms user=healthd '
                                 f'password={p["healthd"]}',
                   REF_ADMIN=f'host=127.0.0.1 port={st.pgb_port} dbname=pgbouncer '
                             f'user={localstack.PGB_ADMIN} password={p[localstack.PGB_ADMIN]}')
        proc = subprocess.Popen([exe, str(st.redis_port), '3'], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        if proc.poll() is not None:
            log(f'crowd: reference client exited at start ({proc.returncode})')
            return None
        return proc

    @staticmethod
    def _checks(d):
        """Checks so far (one scrape: callers keep it outside their CPU window)."""
        m = d.metrics()
        d.http.close()
        return metric_sum(m, 'hdms_healthd_checks_total')

    # --- 2. cost per check

    COST_KINDS = ('redis', 'redis-broker', 'postgres', 'pgbouncer')

    def cost_configs(self, interval_ms, timeout_ms):
        """One config per kind with one target, plus 'baseline': one Redis
        target whose first check is the only one in the window (the loop's
        fixed cost: its lag timer, HTTP listener, timers)."""
        out = {}
        for kind in self.COST_KINDS:
            out[kind] = ('[daemon]\n'
                         f'interval = {interval_ms}ms\ntimeout = {timeout_ms}ms\n\n'
                         + target_conf(self.stack, kind, 't'))
        out['baseline'] = ('[daemon]\ninterval = 3600s\ntimeout = 1s\n\n'
                           + target_conf(self.stack, 'redis', 't'))
        return out

    def cost(self):
        runs = self.n(3, 2, 1)
        secs = self.n(20, 6, 2)
        interval, timeout = 100, 90
        log(f'cost per check: {len(self.COST_KINDS)} kinds + baseline side by side, one target '
            f'each at {interval} ms, {runs} x {secs} s')
        load = MachineLoad()
        per = {k: [] for k in self.COST_KINDS + ('baseline',)}
        confs = self.cost_configs(interval, timeout)
        for r in range(runs):
            # default_env=False: HEALTHD_INTERVAL in the environment would win over the file
            ds = {k: Daemon(self, f'cost-{k}-{r}', config=c, default_env=False).start()
                  for k, c in confs.items()}
            for d in ds.values():
                d.wait_ready()
            time.sleep(1.0)
            before = {}
            for k, d in ds.items():
                m0 = d.metrics()
                d.http.close()
                before[k] = (metric_sum(m0, 'hdms_healthd_checks_total'),
                             metric_sum(m0, 'hdms_healthd_check_failures_total'),
                             cpu_ns(d.pid), time.monotonic())
            time.sleep(secs)
            for k, d in ds.items():
                c1, t1 = cpu_ns(d.pid), time.monotonic()
                mets = d.metrics()
                n0, f0, c0, t0 = before[k]
                checks = metric_sum(mets, 'hdms_healthd_checks_total') - n0
                per[k].append({'cpu_ns': c1 - c0, 'seconds': t1 - t0, 'checks': checks,
                               'failures': metric_sum(mets, 'hdms_healthd_check_failures_total') - f0,
                               'check_p50_ms': 1000 * (histogram_quantile(
                                   0.5, histogram_buckets(mets, 'hdms_healthd_check_duration_seconds'))[0] or 0)})
            for d in ds.values():
                d.stop()
        base = [x['cpu_ns'] / x['seconds'] for x in per['baseline']]  # ns per second
        base_med = statistics.median(base)
        out = {'interval_ms': interval, 'seconds': secs, 'runs': runs,
               'baseline_cpu_us_per_s': summary([b / 1e3 for b in base]), 'kinds': {}}
        for k in self.COST_KINDS:
            gross = [x['cpu_ns'] / x['checks'] / 1e3 for x in per[k] if x['checks']]
            net = [(x['cpu_ns'] - base_med * x['seconds']) / x['checks'] / 1e3
                   for x in per[k] if x['checks']]
            out['kinds'][k] = {'cpu_us_gross': summary(gross), 'cpu_us_net': summary(net),
                               'checks_per_s': summary([x['checks'] / x['seconds'] for x in per[k]]),
                               'failures': sum(x['failures'] for x in per[k]),
                               'check_ms_p50': summary([x['check_p50_ms'] for x in per[k]]),
                               'raw': per[k]}
        out['machine'] = load.result()
        self.results['cost'] = out
        for k in self.COST_KINDS:
            log(f'cost {k}: {out["kinds"][k]["cpu_us_net"]["median"]:.1f} us CPU per check '
                f'(net of the loop\'s fixed cost)')
        self.callgrind()

    def callgrind(self):
        if not shutil.which('valgrind') or not shutil.which('callgrind_control'):
            log('callgrind: valgrind not installed, skipped')
            self.results['cost']['callgrind'] = None
            return
        runs = self.n(3, 1, 1)
        secs = self.n(10, 5, 3)
        # slow enough for valgrind: a PostgreSQL login (SCRAM) takes ~0.3 s under it
        interval, timeout = 1000, 900
        log(f'callgrind: instructions per check, {runs} x {secs} s per kind (under valgrind)')
        confs = self.cost_configs(interval, timeout)
        per = {k: [] for k in confs}
        top = {}
        for r in range(runs):
            ds = {}
            for k, c in confs.items():
                d = Daemon(self, f'callgrind-{k}-{r}', config=c, default_env=False)
                out = os.path.join(d.dir, 'callgrind.out.%p')
                d.argv = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
                          '--collect-atstart=yes'] + d.argv
                ds[k] = d.start()
            for d in ds.values():
                d.wait_ready(timeout=180)
            time.sleep(2.0)
            before = {}
            for k, d in ds.items():
                before[k] = metric_sum(d.metrics(), 'hdms_healthd_checks_total')
                subprocess.run(['callgrind_control', '-z', str(d.pid)], check=True,
                               capture_output=True, timeout=60)
                before[k] = (before[k], time.monotonic())
            time.sleep(secs)
            for k, d in ds.items():
                subprocess.run(['callgrind_control', '-d', str(d.pid)], check=True,
                               capture_output=True, timeout=60)
                t1 = time.monotonic()
                checks = metric_sum(d.metrics(), 'hdms_healthd_checks_total') - before[k][0]
                dump, ir = callgrind_latest(d)
                per[k].append({'ir': ir, 'checks': checks, 'seconds': t1 - before[k][1]})
                if r == 0 and dump and shutil.which('callgrind_annotate'):
                    a = subprocess.run(['callgrind_annotate', '--inclusive=yes', dump],
                                       capture_output=True, text=True, timeout=120)
                    top[k] = _annotate_top(a.stdout, 12)
            for d in ds.values():
                d.stop()
        base = statistics.median(x['ir'] / x['seconds'] for x in per['baseline'] if x['ir'])
        out = {'interval_ms': interval, 'seconds': secs, 'runs': runs,
               'baseline_ir_per_s': base, 'kinds': {}, 'top': top}
        for k in self.COST_KINDS:
            xs = [x for x in per[k] if x['ir'] and x['checks']]
            out['kinds'][k] = {
                'ir_gross': summary([x['ir'] / x['checks'] for x in xs]),
                'ir_net': summary([(x['ir'] - base * x['seconds']) / x['checks'] for x in xs]),
                'raw': per[k]}
            log(f'callgrind {k}: {out["kinds"][k]["ir_net"]["median"]:.0f} instructions per check')
        self.results['cost']['callgrind'] = out

    # --- 3. HTTP

    # (name, path, request headers): Prometheus asks for gzip on every scrape
    ENDPOINTS = (('readyz', '/readyz', ()), ('status', '/status', ()),
                 ('metrics', '/metrics', ()),
                 ('metrics_gzip', '/metrics', ('Accept-Encoding: gzip',)))

    def _wrk(self, port, path, secs, pid, headers=()):
        lua = os.path.join(ROOT, 'bench', 'wrk_report.lua')
        c0 = cpu_ns(pid)
        hdr_args = [a for h in headers for a in ('-H', h)]
        p = subprocess.Popen(['wrk', '-t1', '-c10', f'-d{secs}s', '--latency', '-s', lua,
                              *hdr_args, f'http://127.0.0.1:{port}{path}'],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(secs / 2)
        peak = proc_mem(pid)['VmRSS']
        text = p.communicate(timeout=secs + 30)[0]
        c1 = cpu_ns(pid)
        m = re.search(r'^BENCHJSON (.*)$', text, re.M)
        if not m:
            raise RuntimeError(f'wrk gave no result:\n{text}')
        w = json.loads(m.group(1))
        secs_run = w['duration_us'] / 1e6
        w['rps'] = w['requests'] / secs_run
        w['cpu_us_per_req'] = (c1 - c0) / 1e3 / max(1, w['requests'])
        w['cpu_pct'] = 100.0 * (c1 - c0) / 1e9 / secs_run
        w['errors_total'] = sum(w['errors'].values())
        w['rss_peak_kib'] = peak
        return w

    def http(self):
        if not shutil.which('wrk'):
            log('http: wrk not installed, skipped')
            return
        runs = self.n(3, 1, 1)
        secs = self.n(10, 4, 1)
        log(f'http: wrk -t1 -c10 -d{secs}s, {runs} rounds of: the reference server (256 and '
            f'32 KiB pools), /readyz with a 32 KiB pool, /readyz, /status, /metrics')
        d = Daemon(self, 'http').start()
        d.wait_ready()
        time.sleep(2.0)
        d.http.close()
        # The same with a 32 KiB connection pool: libmicrohttpd 0.9.75 zeroes the
        # whole pool at every request of a kept-alive connection, so the pool
        # size (http_memory_limit, 256 KiB by default) is a cost per request.
        small = Daemon(self, 'http-32k', env={'HEALTHD_HTTP_MEMORY_LIMIT': str(SMALL_POOL)})
        small.start()
        small.wait_ready()
        time.sleep(1.0)
        small.http.close()
        ref_bin = build_c('ref_server', 'libmicrohttpd', 'libevent')
        ref, ref_port = None, free_port()
        ref_small, ref_small_port = None, free_port()
        if ref_bin:
            ref = subprocess.Popen([ref_bin, str(ref_port)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ref_small = subprocess.Popen([ref_bin, str(ref_small_port), str(SMALL_POOL)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            time.sleep(0.3)
        load = MachineLoad()
        base_fds = fd_count(d.pid)
        idle = proc_mem(d.pid)
        out = {'seconds': secs, 'runs': runs, 'idle_rss_kib': idle['VmRSS'],
               'idle_anon_kib': idle['RssAnon'], 'endpoints': {}}
        rs = {name: [] for name, _, _ in self.ENDPOINTS}
        refs, refs_small, smalls = [], [], []
        after_first = {}
        for r in range(runs):
            if ref is not None:
                refs.append(self._wrk(ref_port, '/', secs, ref.pid))
                refs_small.append(self._wrk(ref_small_port, '/', secs, ref_small.pid))
            small.check_alive()
            smalls.append(self._wrk(small.port, '/readyz', secs, small.pid))
            for name, path, headers in self.ENDPOINTS:
                d.check_alive()
                rs[name].append(self._wrk(d.port, path, secs, d.pid, headers))
                # the daemon closes wrk's connections; then memory settles
                deadline = time.monotonic() + 5
                while fd_count(d.pid) > base_fds and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.5)
                if r == 0:
                    after_first[name] = proc_mem(d.pid)
        final = proc_mem(d.pid)
        for name, path, headers in self.ENDPOINTS:
            ws = rs[name]
            a = after_first[name]
            out['endpoints'][name] = {
                'path': path,
                'rps': summary([w['rps'] for w in ws]),
                'p50_ms': summary([w['p50_us'] / 1e3 for w in ws]),
                'p99_ms': summary([w['p99_us'] / 1e3 for w in ws]),
                'cpu_us_per_req': summary([w['cpu_us_per_req'] for w in ws]),
                'cpu_pct': summary([w['cpu_pct'] for w in ws]),
                'errors': sum(w['errors_total'] for w in ws),
                'body_bytes': len(d.get(path)[1]),
                'request_headers': list(headers),
                # after the first 10 s on this endpoint (and on the ones before it)
                'rss_growth_kib': a['VmRSS'] - idle['VmRSS'],
                'anon_growth_kib': a['RssAnon'] - idle['RssAnon'],
                'rss_peak_kib': max(w['rss_peak_kib'] for w in ws),
                'raw': ws,
            }
            e = out['endpoints'][name]
            log(f'http {path}: {e["rps"]["median"]:.0f} req/s, p50 {e["p50_ms"]["median"]:.2f} ms, '
                f'p99 {e["p99_ms"]["median"]:.2f} ms, RSS +{e["rss_growth_kib"]} KiB')
        d.http.close()
        out['rss_growth_all_kib'] = final['VmRSS'] - idle['VmRSS']
        out['anon_growth_all_kib'] = final['RssAnon'] - idle['RssAnon']
        def figures(ws):
            return {'rps': summary([w['rps'] for w in ws]),
                    'p50_ms': summary([w['p50_us'] / 1e3 for w in ws]),
                    'p99_ms': summary([w['p99_us'] / 1e3 for w in ws]),
                    'cpu_us_per_req': summary([w['cpu_us_per_req'] for w in ws]),
                    'raw': ws}
        out['small_pool'] = dict(figures(smalls), pool_bytes=SMALL_POOL)
        log(f'http /readyz with a {SMALL_POOL // 1024} KiB pool: '
            f'{out["small_pool"]["rps"]["median"]:.0f} req/s, p99 '
            f'{out["small_pool"]["p99_ms"]["median"]:.2f} ms')
        small.stop()
        if refs:
            out['reference'] = figures(refs)
            out['reference_small_pool'] = dict(figures(refs_small), pool_bytes=SMALL_POOL)
            for key, what in (('reference', 'reference server'),
                              ('reference_small_pool', 'reference server, 32 KiB pool')):
                log(f'http {what}: {out[key]["rps"]["median"]:.0f} req/s, p99 '
                    f'{out[key]["p99_ms"]["median"]:.2f} ms')
            for p in (ref, ref_small):
                p.terminate()
                p.wait(10)
        out['machine'] = load.result()
        d.stop()
        self.results['http'] = out

    # --- 4. detection

    def detect(self):
        runs = self.n(10, 3, 1)
        log(f'detection: kill -9, SIGSTOP, restart and resume of Redis and PostgreSQL, '
            f'{runs} runs each')
        d = Daemon(self, 'detect').start()
        d.wait_ready()
        load = MachineLoad()
        out = {'runs': runs, 'interval_ms': INTERVAL_MS, 'timeout_ms': TIMEOUT_MS,
               'retry_ms': RETRY_MS, 'rise': RISE, 'fall': FALL, 'scenarios': {}}
        for server, target in (('redis', 'redis-cache'), ('pg', 'postgres')):
            kills, stops = [], []
            for i in range(runs):
                kills.append(self._kill_cycle(d, server, target))
                log(f'  {server} kill #{i + 1}: seen {kills[-1]["seen_ms"]:.1f} ms, first pass '
                    f'{kills[-1]["first_pass_after_accept_ms"]:.0f} ms after accepting, '
                    f'/readyz 200 {kills[-1]["readyz_200_ms"]:.0f} ms after start')
            for i in range(runs):
                stops.append(self._stop_cycle(d, server, target))
                log(f'  {server} stop #{i + 1}: seen {stops[-1]["seen_ms"]:.0f} ms, '
                    f'resume -> 200 {stops[-1]["resume_200_ms"]:.0f} ms')
            out['scenarios'][server] = {
                'kill': {k: summary([r[k] for r in kills]) for k in kills[0]},
                'stop': {k: summary([r[k] for r in stops]) for k in stops[0]},
                'raw_kill': kills, 'raw_stop': stops,
            }
        out['machine'] = load.result()
        d.stop()
        self.results['detect'] = out

    def _server_pids(self, server):
        return self.stack.pg_pids() if server == 'pg' else self.stack.pids(server)

    def _wait_code(self, d, code, timeout, poll=0.001):
        """Poll /readyz until it answers `code`; monotonic time seen, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c, _ = d.get('/readyz')
                if c == code:
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(poll)
        return None

    def _settle(self, d, timeout=60.0):
        """Every target up again and every server accepting."""
        self.wait_stack_healthy()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if d.get('/readyz')[0] == 200 and d.all_up():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError('the daemon did not come back up after a fault')

    def _target(self, d, target, status=None, timeout=5.0):
        """The target's entry in /status; with `status`, once it has that
        status (its lastChange is then that transition), None if it never
        does within the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            t = d.status()['targets'][target]
            if status is None or t.get('status') == status:
                return t
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)

    def _kill_cycle(self, d, server, target):
        self._settle(d)
        time.sleep(0.3 + self.rng.random() * INTERVAL_MS / 1000)  # random phase
        pids = self._server_pids(server)
        wall0, t0 = time.time(), time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        t503 = self._wait_code(d, 503, 10)
        if t503 is None:
            raise RuntimeError(f'{server} killed, /readyz never answered 503')
        seen = (t503 - t0) * 1e3
        down_wall = _parse_time((self._target(d, target, 'fail') or {}).get('lastChange'))
        # clean up every process of the server (and PostgreSQL's shared memory)
        (self.stack.kill_pg if server == 'pg' else self.stack.kill_redis)(signal.SIGKILL)
        time.sleep(0.2 + self.rng.random() * 0.4)  # a random phase of the retry timer
        res = self._restart_and_watch(d, server, target)
        res.update(seen_ms=seen,
                   daemon_seen_ms=None if down_wall is None else (down_wall - wall0) * 1e3)
        return res

    def _restart_and_watch(self, d, server, target):
        """Start the server again; measure its own time to accept (the floor)
        and the daemon's first passing check, up, and /readyz 200."""
        floor = FloorPoller(server, self.stack)
        watcher = TargetWatcher(d.port, target)
        floor.start()
        watcher.start()
        time.sleep(0.02)
        wall0, t0 = time.time(), time.monotonic()
        floor.t0 = t0
        if server == 'pg':
            self.stack._spawn_pg()
        else:
            self.stack._spawn_redis()
        t200 = self._wait_code(d, 200, 30)
        floor.join(10)
        watcher.stop_at_up(10)
        if t200 is None or floor.accepted is None or watcher.first_pass is None:
            raise RuntimeError(f'{server} restart: not seen back up '
                               f'(accept {floor.accepted}, first pass {watcher.first_pass})')
        accept = (floor.accepted - t0) * 1e3
        first_pass = (watcher.first_pass - wall0) * 1e3
        up = (watcher.up - wall0) * 1e3 if watcher.up else None
        self.stack._wait_ready(server)  # its log line too, for the next cycle
        return {'accept_ms': accept, 'first_pass_ms': first_pass, 'up_ms': up,
                'readyz_200_ms': (t200 - t0) * 1e3,
                'first_pass_after_accept_ms': first_pass - accept,
                'up_after_accept_ms': None if up is None else up - accept}

    def _stop_cycle(self, d, server, target):
        self._settle(d)
        time.sleep(0.3 + self.rng.random() * INTERVAL_MS / 1000)
        wall0, t0 = time.time(), time.monotonic()
        self.stack._kill(server, signal.SIGSTOP)
        t503 = self._wait_code(d, 503, 15)
        if t503 is None:
            self.stack._kill(server, signal.SIGCONT)
            raise RuntimeError(f'{server} stopped, /readyz never answered 503')
        down_wall = _parse_time((self._target(d, target, 'fail') or {}).get('lastChange'))
        time.sleep(0.2 + self.rng.random() * 0.4)
        t1 = time.monotonic()
        self.stack._kill(server, signal.SIGCONT)
        t200 = self._wait_code(d, 200, 30)
        if t200 is None:
            raise RuntimeError(f'{server} resumed, /readyz never answered 200')
        return {'seen_ms': (t503 - t0) * 1e3,
                'daemon_seen_ms': None if down_wall is None else (down_wall - wall0) * 1e3,
                'resume_200_ms': (t200 - t1) * 1e3}

    # --- 5. scale

    def scale(self):
        sizes = (100, 1000)
        runs = self.n(3, 1, 1)
        secs = self.n(20, 10, 2)
        out = {'interval_ms': INTERVAL_MS, 'timeout_ms': TIMEOUT_MS, 'seconds': secs,
               'runs': runs, 'render_seconds': self.n(10, 5, 1), 'sizes': {}}
        for n in sizes:
            log(f'scale: {n} Redis targets at 1 s, {runs} x {secs} s')
            rs = [self._scale_run(n, secs, r) for r in range(runs)]
            agg = {}
            for k, v in rs[0].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    agg[k] = summary([x[k] for x in rs])
            agg['probe_readyz_p99_ms'] = summary([x['probe_readyz_ms']['p99'] for x in rs
                                                  if x['probe_readyz_ms']])
            agg['probe_readyz_max_ms'] = summary([x['probe_readyz_ms']['max'] for x in rs
                                                  if x['probe_readyz_ms']])
            agg['machine_busy_pct'] = summary([x['machine']['machine_busy_pct'] for x in rs])
            agg['render_probe_readyz_max_ms'] = summary(
                [x['render_probe_readyz_ms']['max'] for x in rs if x['render_probe_readyz_ms']])
            agg['raw'] = rs
            out['sizes'][str(n)] = agg
            log(f'scale {n}: CPU {agg["cpu_pct"]["median"]:.2f}% of a core, lag p99 '
                f'{agg["lag_p99_ms"]["median"]:.2f} ms, {agg["failures"]["max"]:.0f} checks over '
                f'their deadline (max of runs), {agg["checks_per_s"]["median"]:.0f} checks/s')
            g = lambda k, w='median': (agg.get(k) or {}).get(w)  # noqa: E731
            log(f'scale {n} rendering: {g("render_multi_turn")} renders over '
                f'{g("render_turns_median")} turns (median), longest turn '
                f'{g("render_turn_max_ms", "max")} ms ({g("render_turn_cpu_max_ms", "max")} ms '
                f'on the CPU); '
                f'lag samples > 5 ms {g("render_lag_over_5ms", "max")} '
                f'(quiet window: {g("lag_over_5ms", "max")}), largest lag in the '
                f'{g("render_lag_max_bucket_ms", "max")} ms bucket, /readyz max '
                f'{g("render_probe_readyz_max_ms", "max")} ms; /status '
                f'{g("render_status_json_ms")} ms, html {g("render_status_html_ms")} ms, '
                f'/metrics gzip {g("render_metrics_gzip_ms")} ms, plain '
                f'{g("render_metrics_plain_ms")} ms')
        self.results['scale'] = out

    def _scale_run(self, n, secs, r):
        conf = (f'[daemon]\ninterval = {INTERVAL_MS}ms\ntimeout = {TIMEOUT_MS}ms\n\n'
                + ''.join(target_conf(self.stack, 'redis', f'r{i:04d}') for i in range(n)))
        d = Daemon(self, f'scale-{n}-{r}', config=conf, default_env=False)
        d.argv += ['--log-level', 'debug']  # a render over several turns says how long each was
        nofile_before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        d.start(nofile=n + 256)
        ready = d.wait_ready(timeout=120)
        time.sleep(self.n(5, 3, 1))
        load = MachineLoad()
        # the snapshot is taken as the request arrives: time it there, and
        # parse (slow in Python at 1,000 targets) outside the CPU window
        q0 = time.monotonic()
        raw0 = d.get('/metrics')[1]
        c0, t0 = cpu_ns(d.pid), time.monotonic()
        redis_pids = self.stack.pids('redis')
        r0 = sum(cpu_ns(p) for p in redis_pids)
        probe = LatencyProbe(d.port, '/readyz', 0.02)
        probe.start()
        time.sleep(secs)
        probe.stop()
        c1, t1 = cpu_ns(d.pid), time.monotonic()
        r1 = sum(cpu_ns(p) for p in redis_pids)
        q1 = time.monotonic()
        raw1 = d.get('/metrics')[1]
        m0, m1 = parse_metrics(raw0.decode()), parse_metrics(raw1.decode())
        big = {}
        for path in ('/metrics', '/status'):
            h = Http(d.port, timeout=30)
            b0 = time.monotonic()
            body = h.get(path)[1]
            big[path] = {'ms': (time.monotonic() - b0) * 1e3, 'bytes': len(body)}
            h.close()
        mem = proc_mem(d.pid)
        wall = t1 - t0
        lag = histogram_delta(histogram_buckets(m1, 'hdms_healthd_loop_lag_seconds'),
                              histogram_buckets(m0, 'hdms_healthd_loop_lag_seconds'))
        dur = histogram_delta(histogram_buckets(m1, 'hdms_healthd_check_duration_seconds'),
                              histogram_buckets(m0, 'hdms_healthd_check_duration_seconds'))
        checks = (metric_sum(m1, 'hdms_healthd_checks_total')
                  - metric_sum(m0, 'hdms_healthd_checks_total'))
        fails = (metric_sum(m1, 'hdms_healthd_check_failures_total')
                 - metric_sum(m0, 'hdms_healthd_check_failures_total'))
        p99, p99_bound = histogram_quantile(0.99, lag)
        p50, _ = histogram_quantile(0.5, lag)
        dp99, dp99_bound = histogram_quantile(0.99, dur)
        st = d.status()
        res = {
            'targets': n, 'startup_s': ready,
            'cpu_pct': 100.0 * (c1 - c0) / 1e9 / wall,
            'redis_cpu_pct': 100.0 * (r1 - r0) / 1e9 / wall,
            'cpu_us_per_check': ((c1 - c0) / 1e3 / wall) / (checks / (q1 - q0)) if checks else None,
            'checks': checks, 'checks_per_s': checks / (q1 - q0),
            'expected_checks_per_s': n * 1000.0 / INTERVAL_MS,
            'failures': fails,
            'lag_samples': max(lag.values()) if lag else 0,
            'lag_p50_ms': None if p50 is None else p50 * 1e3,
            'lag_p99_ms': None if p99 is None else p99 * 1e3,
            'lag_p99_bucket_ms': None if p99_bound is None else p99_bound * 1e3,
            'lag_share_le_5ms': share_at_most(lag, 0.005),
            'lag_max_s_since_start': st.get('loopLag', {}).get('maxSeconds'),
            'probe_readyz_ms': probe.result(),
            'metrics_request_ms': big['/metrics']['ms'],
            'metrics_bytes': big['/metrics']['bytes'],
            'status_request_ms': big['/status']['ms'],
            'status_bytes': big['/status']['bytes'],
            'check_p99_ms': None if dp99 is None else dp99 * 1e3,
            'check_p99_bucket_ms': None if dp99_bound is None else dp99_bound * 1e3,
            'rss_kib': mem['VmRSS'], 'anon_kib': mem['RssAnon'], 'fds': fd_count(d.pid),
            'nofile_soft_inherited': nofile_before,
            'machine': load.result(),
        }
        res['lag_over_5ms'] = count_over(lag, 0.005)
        res['lag_max_bucket_ms'] = None if max_bucket(lag) is None else max_bucket(lag) * 1e3
        res.update(self._render_window(d, self.n(10, 5, 1)))  # as render_seconds
        d.stop()
        return res

    RENDER_PATHS = (('/status', None), ('/status?format=html', None),
                    ('/metrics', {'Accept-Encoding': 'gzip'}), ('/metrics', None))

    def _render_window(self, d, secs):
        """The loop while a client asks for the big answers back to back
        (issue 13, item 5): /status (JSON), /status?format=html, /metrics
        gzip'd (as Prometheus asks) and /metrics plain, in turn, for `secs`.
        The loop's lag histogram over the window says how long a render held
        it; /readyz every 20 ms sees the same from outside."""
        m0 = d.metrics()
        log_path = os.path.join(d.dir, 'stderr.log')
        log_from = os.path.getsize(log_path)
        lat = {i: [] for i in range(len(self.RENDER_PATHS))}
        halt = threading.Event()

        def client():
            h = Http(d.port, timeout=30)
            try:
                while not halt.is_set():
                    for i, (path, headers) in enumerate(self.RENDER_PATHS):
                        t0 = time.monotonic()
                        try:
                            h.get(path, headers)
                        except OSError:
                            continue
                        lat[i].append((time.monotonic() - t0) * 1e3)
            finally:
                h.close()

        probe = LatencyProbe(d.port, '/readyz', 0.02)
        th = threading.Thread(target=client, daemon=True)
        load = MachineLoad()
        probe.start()
        th.start()
        time.sleep(secs)
        halt.set()
        th.join(60)
        probe.stop()
        m1 = d.metrics()
        lag = histogram_delta(histogram_buckets(m1, 'hdms_healthd_loop_lag_seconds'),
                              histogram_buckets(m0, 'hdms_healthd_loop_lag_seconds'))
        p99, _ = histogram_quantile(0.99, lag)
        top = max_bucket(lag)
        # the daemon's own account of each render that took several turns
        # (its debug line; an older build renders in one turn and says nothing)
        turns, longest, longest_cpu = [], [], []
        with open(log_path, 'rb') as f:
            f.seek(log_from)
            for line in f.read().decode(errors='replace').splitlines():
                m = re.search(r'took (\d+) loop turns, the longest ([0-9.]+) ms '
                              r'\(([0-9.]+) ms on the CPU\)', line)
                if m:
                    turns.append(int(m.group(1)))
                    longest.append(float(m.group(2)))
                    longest_cpu.append(float(m.group(3)))

        def p99_of(xs):
            return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else None
        out = {'render_seconds': secs,
               'render_lag_samples': max(lag.values()) if lag else 0,
               'render_lag_p99_ms': None if p99 is None else p99 * 1e3,
               'render_lag_over_5ms': count_over(lag, 0.005),
               'render_lag_max_bucket_ms': None if top is None else top * 1e3,
               'render_probe_readyz_ms': probe.result(),
               'render_machine_busy_pct': load.result()['machine_busy_pct'],
               'render_multi_turn': len(turns),
               'render_turns_median': statistics.median(turns) if turns else None,
               'render_turn_max_ms': max(longest) if longest else None,
               'render_turn_p99_ms': p99_of(longest),
               'render_turn_cpu_max_ms': max(longest_cpu) if longest_cpu else None,
               'render_turn_cpu_p99_ms': p99_of(longest_cpu)}
        for i, key in enumerate(('status_json', 'status_html', 'metrics_gzip', 'metrics_plain')):
            xs = sorted(lat[i])
            out[f'render_{key}_n'] = len(xs)
            out[f'render_{key}_ms'] = xs[len(xs) // 2] if xs else None
            out[f'render_{key}_max_ms'] = xs[-1] if xs else None
        return out

    # --- 6. logins

    def logins(self):
        """Loop lag while the daemon logs in again and again: every
        PostgreSQL login is a SCRAM exchange whose PBKDF2 runs inside
        libpq (4-11 ms of CPU each)."""
        n = 10
        secs = self.n(20, 10, 2)
        runs = self.n(3, 1, 1)
        bins = [('after', self.bin)]
        if self.args.logins_before:
            bins.insert(0, ('before', os.path.abspath(self.args.logins_before)))
        out = {'targets': n, 'seconds': secs, 'runs': runs, 'every_s': 0.5, 'binaries': {}}
        for label, path in bins:
            log(f'logins ({label}, {path}): {n} postgres targets, every backend of the '
                f'daemon terminated every 0.5 s, {runs} x {secs} s')
            rs = [self._logins_run(path, n, secs, f'{label}-{r}') for r in range(runs)]
            agg = {k: summary([x[k] for x in rs]) for k in rs[0]
                   if isinstance(rs[0][k], (int, float)) and rs[0][k] is not None}
            agg['binary'] = os.path.relpath(path, ROOT) if path.startswith(ROOT) else path
            agg['raw'] = rs
            out['binaries'][label] = agg
            log(f'logins {label}: {agg["logins"]["median"]:.0f} logins, loop lag p99 '
                f'{agg["lag_p99_ms"]["median"]:.2f} ms, max {agg["lag_max_ms"]["median"]:.1f} ms')
        self.results['logins'] = out

    def _logins_run(self, binary, n, secs, tag):
        conf = (f'[daemon]\ninterval = {INTERVAL_MS}ms\ntimeout = {TIMEOUT_MS}ms\n\n'
                + ''.join(target_conf(self.stack, 'postgres', f'pg{i:02d}') for i in range(n)))
        d = Daemon(self, f'logins-{tag}', config=conf, default_env=False)
        d.argv[0] = binary
        d.start()
        d.wait_ready(timeout=60)
        m0 = d.metrics()
        lag_max0 = d.status().get('loopLag', {}).get('maxSeconds') or 0.0
        loop0 = loop_thread_cpu_ns(d.pid)
        kill = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'hdms-healthd'")
        logins = 0
        end = time.monotonic() + secs
        while time.monotonic() < end:
            out = self.stack.psql(kill).strip().splitlines()
            logins += int(out[-1]) if out and out[-1].strip().isdigit() else 0
            time.sleep(0.5)
        time.sleep(1.0)  # the last wave logs in again
        loop1 = loop_thread_cpu_ns(d.pid)
        m1 = d.metrics()
        st = d.status()
        lag = histogram_delta(histogram_buckets(m1, 'hdms_healthd_loop_lag_seconds'),
                              histogram_buckets(m0, 'hdms_healthd_loop_lag_seconds'))
        p99, _ = histogram_quantile(0.99, lag)
        p50, _ = histogram_quantile(0.5, lag)
        lag_max = st.get('loopLag', {}).get('maxSeconds') or 0.0
        d.stop()
        return {'logins': logins,
                # CPU of the loop's own thread: what a login costs the loop,
                # whatever else the machine runs
                'loop_cpu_ms_per_login': (loop1 - loop0) / 1e6 / logins if logins else None,
                'lag_p50_ms': None if p50 is None else p50 * 1e3,
                'lag_p99_ms': None if p99 is None else p99 * 1e3,
                'lag_max_ms': max(lag_max, lag_max0) * 1e3,
                'lag_samples': max(lag.values()) if lag else 0,
                'share_le_5ms': share_at_most(lag, 0.005)}

    # --- 7. the state file (issue 11)

    def state(self):
        runs = self.n(3, 1, 1)
        secs = self.n(20, 10, 3)
        out = {'state_interval_ms': 1000, 'seconds': secs, 'runs': runs, 'sizes': {}}
        for n in (5, 1000):
            log(f'state: {n} targets at 1 s, the state file written every second, '
                f'{runs} x {secs} s')
            rs = [self._state_run(n, secs, r) for r in range(runs)]
            agg = {k: summary([x[k] for x in rs if x[k] is not None]) for k, v in rs[0].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
            agg['raw'] = rs
            out['sizes'][str(n)] = agg
            log(f'state {n}: {agg["bytes"]["median"]:.0f} bytes, serialised in '
                f'{agg["serialise_ms"]["median"]:.3f} ms, {agg["writes"]["median"]:.0f} writes, '
                f'loop lag p99 {agg["lag_p99_ms"]["median"]:.2f} ms')
        self.results['state'] = out

    def _state_run(self, n, secs, r):
        path = os.path.join(self.workdir, f'state-{n}-{r}', 'state.json')
        os.makedirs(os.path.dirname(path))
        if n == 5:  # the default set, as in the footprint section
            d = Daemon(self, f'state-{n}-{r}',
                       env={'HEALTHD_STATE_FILE': path, 'HEALTHD_STATE_INTERVAL': '1s'})
            d.start()
        else:
            conf = (f'[daemon]\ninterval = {INTERVAL_MS}ms\ntimeout = {TIMEOUT_MS}ms\n'
                    f'state_file = {path}\nstate_interval = 1s\n\n'
                    + ''.join(target_conf(self.stack, 'redis', f'r{i:04d}') for i in range(n)))
            d = Daemon(self, f'state-{n}-{r}', config=conf, default_env=False)
            d.start(nofile=n + 256)
        d.wait_ready(timeout=120)
        time.sleep(self.n(3, 2, 1))
        m0, c0, t0 = d.metrics(), cpu_ns(d.pid), time.monotonic()
        time.sleep(secs)
        m1, c1, t1 = d.metrics(), cpu_ns(d.pid), time.monotonic()
        lag = histogram_delta(histogram_buckets(m1, 'hdms_healthd_loop_lag_seconds'),
                              histogram_buckets(m0, 'hdms_healthd_loop_lag_seconds'))
        p99, _ = histogram_quantile(0.99, lag)
        p50, _ = histogram_quantile(0.5, lag)
        writes = (metric_sum(m1, 'hdms_healthd_state_writes_total', result='ok')
                  - metric_sum(m0, 'hdms_healthd_state_writes_total', result='ok'))
        errors = (metric_sum(m1, 'hdms_healthd_state_writes_total', result='error')
                  - metric_sum(m0, 'hdms_healthd_state_writes_total', result='error'))
        res = {
            'targets': n,
            'bytes': os.path.getsize(path),
            'serialise_ms': metric_sum(m1, 'hdms_healthd_state_serialise_seconds') * 1e3,
            'serialise_turn_ms': metric_sum(m1, 'hdms_healthd_state_serialise_turn_seconds') * 1e3,
            'writes': writes, 'write_errors': errors,
            'cpu_pct': 100.0 * (c1 - c0) / 1e9 / (t1 - t0),
            'lag_p50_ms': None if p50 is None else p50 * 1e3,
            'lag_p99_ms': None if p99 is None else p99 * 1e3,
            'lag_share_le_5ms': share_at_most(lag, 0.005),
            'lag_samples': max(lag.values()) if lag else 0,
        }
        with open(path) as f:  # the file on disk is a whole state
            doc = json.load(f)
        if len(doc['targets']) != n:
            raise RuntimeError(f'state file of {n} targets holds {len(doc["targets"])}')
        d.stop()
        return res

    # --- run

    def run(self, only):
        self.results['meta'] = meta(self)
        log(f'binary {self.bin} ({self.results["meta"]["binary_sha256"][:12]}), '
            f'{"smoke" if self.smoke else "quick" if self.quick else "full"} run, work dir {self.workdir}')
        t0 = time.monotonic()
        self.start_stack()
        for section in SECTIONS:
            if section in only:
                s0 = time.monotonic()
                getattr(self, section)()
                self.results.setdefault('timing', {})[section] = round(time.monotonic() - s0, 1)
        self.results['meta']['total_seconds'] = round(time.monotonic() - t0, 1)
        self.results['meta']['loadavg_end'] = [round(x, 2) for x in os.getloadavg()]
        return self.results


def _annotate_top(text, n):
    """The first n function rows of callgrind_annotate --inclusive=yes, less
    the frames that hold the whole window (main, the loop, anonymous
    addresses). After callgrind_control -z the self costs of a dump all land
    on main; the inclusive ones are right."""
    rows = []
    for line in text.splitlines():
        m = re.match(r'^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*?)\s*(\[.*\])?$', line)
        if m and ':' in m.group(3) and 'PROGRAM TOTALS' not in line:
            fn = m.group(3).split(':', 1)[1].strip()
            lib = os.path.basename((m.group(4) or '').strip('[]'))
            if float(m.group(2)) > 90 or fn.startswith(('0x', '(below')):
                continue
            if any(r['function'] == fn for r in rows):
                continue  # the same function again, by file (inlined copies)
            rows.append({'ir': int(m.group(1).replace(',', '')), 'pct': float(m.group(2)),
                         'function': fn, 'object': lib})
        if len(rows) >= n:
            break
    return rows


def _parse_time(s):
    """RFC 3339 UTC with milliseconds -> epoch seconds (None for None)."""
    if not s:
        return None
    return datetime.datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp()


class LatencyProbe(threading.Thread):
    """GET a path every `every` seconds on a keep-alive connection and
    record each answer's latency: the loop's responsiveness seen from
    outside (a busy loop answers late), independent of the daemon's own
    lag histogram."""

    def __init__(self, port, path, every):
        super().__init__(daemon=True)
        self.port, self.path, self.every = port, path, every
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        h = Http(self.port)
        try:
            while not self._halt.is_set():
                t0 = time.monotonic()
                try:
                    h.get(self.path)
                    self.samples.append((time.monotonic() - t0) * 1e3)
                except OSError:
                    pass
                self._halt.wait(self.every)
        finally:
            h.close()

    def stop(self):
        self._halt.set()
        self.join(10)

    def result(self):
        xs = sorted(self.samples)
        if not xs:
            return None
        return {'n': len(xs), 'p50': xs[len(xs) // 2], 'p99': xs[min(len(xs) - 1, int(len(xs) * 0.99))],
                'max': xs[-1]}


class FloorPoller(threading.Thread):
    """The server's own time to accept: poll it from the restart on, the same
    1 ms cadence as the daemon-side pollers. Redis: PING answers PONG.
    PostgreSQL: a startup packet is answered with an authentication request
    (what pg_isready calls accepting connections)."""

    def __init__(self, server, stack):
        super().__init__(daemon=True)
        self.server, self.stack = server, stack
        self.port = stack.redis_port if server == 'redis' else stack.pg_port
        self.t0 = None
        self.accepted = None

    def probe(self):
        with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as s:
            if self.server == 'redis':
                s.sendall(b'PING\r\n')
                return s.recv(64).startswith((b'+PONG', b'-NOAUTH'))
            params = b'user\0healthd\0database\0hdms\0\0'
            s.sendall(struct.pack('!II', 8 + len(params), 196608) + params)
            first = s.recv(1)
            return first == b'R'

    def run(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.t0 is not None:
                try:
                    if self.probe():
                        self.accepted = time.monotonic()
                        return
                except OSError:
                    pass
            time.sleep(0.001)


class TargetWatcher(threading.Thread):
    """Polls /status for one target: when its raw result first passes, and
    when it is up (rise) again; both as the daemon's own timestamps (wall
    clock, ms): lastCheck of the first passing check, lastChange at up."""

    def __init__(self, port, target):
        super().__init__(daemon=True)
        self.port, self.target = port, target
        self.first_pass = self.up = None
        self._halt = threading.Event()

    def run(self):
        h = Http(self.port)
        deadline = time.monotonic() + 40
        try:
            while not self._halt.is_set() and time.monotonic() < deadline:
                try:
                    t = json.loads(h.get('/status')[1])['targets'][self.target]
                except (OSError, ValueError, KeyError):
                    time.sleep(0.002)
                    continue
                raw = (t.get('lastResult') or {}).get('status')
                if self.first_pass is None and raw in ('pass', 'warn'):
                    self.first_pass = _parse_time(t.get('lastCheck'))
                if t.get('status') in ('pass', 'warn'):
                    self.up = _parse_time(t.get('lastChange'))
                    return
                time.sleep(0.002)
        finally:
            h.close()

    def stop_at_up(self, timeout):
        self.join(timeout)
        self._halt.set()


def meta(bench):
    with open(bench.bin, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    def git(*a):
        # a tarball or a machine without git has no commit to name
        try:
            r = subprocess.run(['git', '-C', ROOT, *a], capture_output=True, text=True,
                               check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ''
        return r.stdout.strip()
    try:
        with open('/proc/cpuinfo') as f:
            model = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), '')
    except OSError:
        model = ''
    vers = {}
    for name, cmd in (('redis', ['redis-server', '--version']),
                      ('pgbouncer', ['pgbouncer', '--version']),
                      ('wrk', ['wrk', '--version']),
                      ('valgrind', ['valgrind', '--version'])):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            vers[name] = (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            vers[name] = None
    try:
        pg = subprocess.run([os.path.join(localstack.pg_bindir(), 'postgres'), '--version'],
                            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, RuntimeError):
        pg = None
    vers['postgres'] = pg
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'binary': os.path.relpath(bench.bin, ROOT) if bench.bin.startswith(ROOT) else bench.bin,
        'binary_sha256': sha,
        'git_commit': git('rev-parse', '--short', 'HEAD'),
        'git_dirty': bool(git('status', '--porcelain', '--', 'src', 'include', 'Makefile')),
        'source': bench.args.source or ('this tree' if bench.bin == os.path.join(
            ROOT, 'build', 'hdms-healthd') else None),
        'quick': bench.quick, 'smoke': bench.smoke, 'cpus': os.cpu_count(), 'cpu_model': model,
        'daemon_env': bench.daemon_env,
        'kernel': os.uname().release, 'loadavg_start': [round(x, 2) for x in os.getloadavg()],
        'versions': vers,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    default=os.environ.get('BENCH_QUICK', '') not in ('', '0'))
    ap.add_argument('--smoke', action='store_true',
                    help='every section once, in seconds: that the bench runs (make test), '
                         'no figure to keep; implies --no-report')
    ap.add_argument('--bin', default=os.environ.get('BENCH_BIN')
                    or os.path.join(ROOT, 'build', 'hdms-healthd'))
    ap.add_argument('--only', default=os.environ.get('BENCH_ONLY', ','.join(SECTIONS)))
    ap.add_argument('--logins-before', default=os.environ.get('BENCH_LOGINS_BEFORE'),
                    metavar='PATH', help='an older binary for the logins section too')
    ap.add_argument('--source', default=os.environ.get('BENCH_SOURCE'),
                    help='what the binary was built from, for the report (another build)')
    ap.add_argument('--out', default=os.path.join(ROOT, 'build', 'bench', 'results.json'))
    ap.add_argument('--daemon-env', action='append', default=[], metavar='NAME=VALUE',
                    help='extra environment for every daemon (experiments)')
    ap.add_argument('--no-report', action='store_true',
                    help='only the JSON; leave docs/performance.md and the chart alone')
    ap.add_argument('--report-only', metavar='JSON',
                    help='write the report and chart from an existing results file')
    args = ap.parse_args(argv)

    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    import report  # noqa: E402  (bench/report.py)

    if args.report_only:
        with open(args.report_only) as f:
            results = json.load(f)
        report.write_all(results, ROOT)
        return 0

    only = [s.strip() for s in args.only.split(',') if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f'unknown section(s) {bad}; known: {", ".join(SECTIONS)}')
    if not os.access(args.bin, os.X_OK):
        ap.error(f'{args.bin}: no binary (run `make` first)')

    bench = Bench(args)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        results = bench.run(only)
    finally:
        bench.cleanup()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)
    log(f'results: {args.out} ({results["meta"]["total_seconds"]:.0f} s)')
    if not args.no_report and not args.smoke:
        if set(only) != set(SECTIONS):
            log('not every section ran: report not written (use --report-only to force)')
        else:
            report.write_all(results, ROOT)
    return 0


if __name__ == '__main__':
    sys.exit(main())
