"""Helpers for the integration tests: the Daemon wrapper and bounded waits.

Tests import from here (`from helpers import wait_for, Daemon`); fixtures
live in conftest.py.
"""

import http.client
import json as jsonlib
import os
import signal
import subprocess
import sys
import time

import pytest

TEST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TEST_DIR)
if TEST_DIR not in sys.path:
    sys.path.insert(0, TEST_DIR)

from localstack import free_port, tcp_accepts  # noqa: E402

SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer',
                     'runtime error:')
SANITIZER_ENV = {'ASAN_OPTIONS': 'detect_leaks=1:abort_on_error=0',
                 'UBSAN_OPTIONS': 'halt_on_error=1:print_stacktrace=1'}


def healthd_bin():
    path = os.environ.get('HEALTHD_BIN') or \
        os.path.join(ROOT, 'build', 'asan', 'hdms-healthd')
    if not os.access(path, os.X_OK):
        pytest.fail(f'{path}: no daemon binary (run `make asan` or set HEALTHD_BIN)')
    return path


def wait_for(predicate, timeout, interval=0.02, what=None, check=None):
    """Poll until predicate() is truthy; return the elapsed seconds.

    An exception from predicate counts as "not yet" (a server may be
    restarting); the last one is reported on timeout. `check()` runs on
    every round and may raise to end the wait early."""
    t0 = time.monotonic()
    last = None
    while True:
        if check:
            check()
        try:
            value = predicate()
            if value:
                return time.monotonic() - t0
            last = value
        except Exception as e:  # noqa: BLE001
            last = e
        if time.monotonic() - t0 >= timeout:
            raise AssertionError(f'timed out after {timeout} s waiting for '
                                 f'{what or getattr(predicate, "__name__", predicate)}; '
                                 f'last result: {last!r}')
        time.sleep(interval)


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def tail(text, lines=30):
    return '\n'.join(text.splitlines()[-lines:])


def sanitizer_reports(*texts):
    """Lines of sanitizer reports found in the texts."""
    return [line for t in texts for line in t.splitlines()
            if any(m in line for m in SANITIZER_MARKERS)]


def healthd_env(env=None, dns=None):
    """The daemon's whole environment: only what the test gives, PATH, the
    sanitizer options and HEALTHD_NAMESERVERS. Without a FakeDNS the
    nameserver is a closed loopback port, so no lookup can leave 127.0.0.1."""
    full = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), **SANITIZER_ENV,
            'HEALTHD_NAMESERVERS': dns.address if dns else
            f'127.0.0.1:{free_port(udp=True)}'}
    full.update(env or {})
    return full


class Daemon:
    """One hdms-healthd process listening on 127.0.0.1:port."""

    def __init__(self, binary, workdir, env, config_text=None, args=(), port=None):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.env = dict(env)
        self.config_path = None
        if config_text is not None:
            self.write_config(config_text)
        self.argv = [binary, '-l', f'127.0.0.1:{self.port}', '--log-format', 'json']
        if self.config_path:
            self.argv += ['-c', self.config_path]
        self.argv += list(args)
        self.stdout_path = os.path.join(self.workdir, 'stdout.log')
        self.stderr_path = os.path.join(self.workdir, 'stderr.log')
        self.proc = None
        self.returncode = None

    def write_config(self, text):
        """(Re)write the config file; send SIGHUP yourself to reload."""
        self.config_path = os.path.join(self.workdir, 'healthd.conf')
        with open(self.config_path, 'w') as f:
            f.write(text)
        return self.config_path

    def start(self, wait=True, timeout=10):
        with open(self.stdout_path, 'ab') as out, open(self.stderr_path, 'ab') as err:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.workdir,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err)
        self.started_at = time.monotonic()
        if wait:
            wait_for(lambda: tcp_accepts(self.port, timeout=0.2), timeout,
                     what=f'the daemon to listen on {self.port}',
                     check=self.assert_running)
        return self

    @property
    def pid(self):
        return self.proc.pid

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f'daemon exited with {self.proc.returncode}:\n'
                                 f'{tail(self.stderr())}')

    def stdout(self):
        return read_text(self.stdout_path)

    def stderr(self):
        return read_text(self.stderr_path)

    def logs(self):
        """The JSON log lines (stdout and stderr) as dicts."""
        out = []
        for line in (self.stderr() + '\n' + self.stdout()).splitlines():
            if line.startswith('{'):
                try:
                    out.append(jsonlib.loads(line))
                except ValueError:
                    pass
        return out

    def url(self, path):
        return f'http://127.0.0.1:{self.port}{path}'

    def get(self, path, headers=None, timeout=2, method='GET'):
        """-> (status, headers (case-insensitive), body bytes)."""
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def json(self, path, headers=None, timeout=2):
        """The body of GET path, parsed (any status)."""
        return jsonlib.loads(self.get(path, headers, timeout)[2])

    def wait_for(self, predicate, timeout=10, interval=0.02, what=None):
        """wait_for() that also fails at once when the daemon has died."""
        return wait_for(predicate, timeout, interval, what, check=self.assert_running)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM; assert a clean exit (0) within timeout and no sanitizer report."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f'daemon ignored SIGTERM for {timeout} s:\n'
                                     f'{tail(self.stderr())}')
        self.returncode = self.proc.returncode if self.proc else None
        self.check_sanitizers()
        assert self.returncode == 0, \
            f'daemon exited with {self.returncode}:\n{tail(self.stderr())}'

    def check_sanitizers(self):
        reports = sanitizer_reports(self.stderr(), self.stdout())
        assert not reports, 'sanitizer report:\n' + tail(self.stderr(), 80)


# What a test's client sees of /livez on a loaded 2-core machine includes the
# client's own scheduling (131 ms was seen with a loop lag of 16 ms at a load
# average of 8); whether the daemon's loop was held is its own loop lag.
LIVEZ_CLIENT_BOUND = 1.0
LOOP_LAG_BOUND = 0.25


def assert_loop_free(d, worst_client, what='/livez'):
    """The daemon's loop was never held: its own loop lag under
    LOOP_LAG_BOUND, and the slowest answer the test saw under
    LIVEZ_CLIENT_BOUND (a held loop costs whole timeouts, i.e. seconds)."""
    lag = d.json('/status')['loopLag']['maxSeconds']
    assert lag < LOOP_LAG_BOUND, f'the loop was held: loop lag {lag * 1000:.0f} ms'
    assert worst_client < LIVEZ_CLIENT_BOUND, \
        f'{what} took {worst_client * 1000:.0f} ms (loop lag {lag * 1000:.0f} ms)'
