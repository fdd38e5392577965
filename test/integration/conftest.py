"""pytest harness for the hdms-healthd integration tests.

Real servers only (test/localstack.py), the daemon under ASan/UBSan
($HEALTHD_BIN, default build/asan/hdms-healthd), a fake DNS server.

Fixtures:
  make_stack(redis_password=None, pg_max_connections=100, servers=ALL) -> Stack
  stack          a started PostgreSQL + PgBouncer + Redis stack (per test)
  redis_server   a Stack with only Redis started
  fakedns        a FakeDNS (test/integration/fakedns.py) on 127.0.0.1
  daemon(env=None, config_text=None, args=(), dns=None, ...) -> Daemon
  run_healthd(args, env=None, config_text=None, ...) -> CompletedProcess

Helpers for tests (wait_for, Daemon, healthd_env) are in helpers.py. On a
failed test the servers' and daemon's logs are copied to
test/artifacts/<test>/ and their tails printed.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from helpers import (TEST_DIR, Daemon, healthd_bin, healthd_env, read_text,
                     sanitizer_reports, tail)
from localstack import Stack, fast_tmpdir
from fakedns import FakeDNS


def _test_failed(request):
    return any(getattr(getattr(request.node, 'rep_' + when, None), 'failed', False)
               for when in ('setup', 'call'))


def _keep_artifacts(request, files):
    """Copy logs of a failed test to test/artifacts/<test>/ and print tails."""
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.nodeid)[-120:]
    dest = os.path.join(TEST_DIR, 'artifacts', name)
    os.makedirs(dest, exist_ok=True)
    for label, path in files:
        if os.path.exists(path):
            shutil.copy(path, os.path.join(dest, label))
            print(f'----- {label} ({path}) -----\n{tail(read_text(path))}')
    print(f'----- logs kept in {dest}')


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    setattr(item, 'rep_' + rep.when, rep)


@pytest.fixture
def make_stack(request):
    """Factory: make_stack(redis_password=None, pg_max_connections=100,
    servers=('pg', 'pgbouncer', 'redis')) -> started Stack, with
    `start_seconds`. Every stack is stopped and deleted after the test."""
    stacks = []

    def make(redis_password=None, pg_max_connections=100, servers=Stack.SERVERS):
        # A short path (unix sockets: 108 bytes at most) that the postgres
        # user can traverse; on tmpfs when there is one.
        st = Stack(tempfile.mkdtemp(prefix='hdms-stack-', dir=fast_tmpdir()),
                   redis_password=redis_password,
                   pg_max_connections=pg_max_connections)
        stacks.append(st)
        t0 = time.monotonic()
        st.start(servers)
        st.start_seconds = time.monotonic() - t0
        return st

    yield make
    failed = _test_failed(request)
    for i, st in enumerate(stacks):
        try:
            st.stop()
        finally:
            if failed:
                _keep_artifacts(request, [(f'stack{i}-{os.path.basename(p)}', p)
                                          for p in st.logs.values()])
            st.destroy()


@pytest.fixture
def stack(make_stack):
    return make_stack()


@pytest.fixture
def redis_server(make_stack):
    return make_stack(servers=('redis',))


@pytest.fixture
def fakedns():
    with FakeDNS() as dns:
        yield dns


@pytest.fixture
def daemon(request, tmp_path, make_stack):
    """Factory: daemon(env=None, config_text=None, args=(), dns=None,
    port=None, wait=True, binary=None) -> started Daemon.

    The test's `fakedns` fixture, when it uses one, is the nameserver unless
    `dns` is given. Daemons still running after the test are stopped, and
    each must exit 0 without sanitizer reports, or the test errors.
    (make_stack is requested so that daemons stop before the servers do.)"""
    made = []

    def start(env=None, config_text=None, args=(), dns=None, port=None,
              wait=True, binary=None):
        if dns is None and 'fakedns' in request.fixturenames:
            dns = request.getfixturevalue('fakedns')
        d = Daemon(binary or healthd_bin(), tmp_path / f'daemon{len(made)}',
                   healthd_env(env, dns), config_text, args, port)
        made.append(d)
        return d.start(wait=wait)

    yield start
    errors = []
    for d in made:
        try:
            if d.running:
                d.stop()
            else:
                d.check_sanitizers()
        except AssertionError as e:  # lint-tests: ok (collected, and failed below)
            errors.append(str(e))
    if _test_failed(request) or errors:
        _keep_artifacts(request, [(f'daemon{i}-{n}', p) for i, d in enumerate(made)
                                  for n, p in (('stderr.log', d.stderr_path),
                                               ('stdout.log', d.stdout_path),
                                               ('healthd.conf', d.config_path or ''))])
    if errors:
        pytest.fail('\n'.join(errors), pytrace=False)


@pytest.fixture
def run_healthd(request, tmp_path):
    """Factory: run_healthd(args, env=None, config_text=None, dns=None,
    timeout=30, binary=None) -> CompletedProcess (text) of a one-shot run
    (--once, --check-config, probe ...), asserted free of sanitizer reports."""
    def run(args, env=None, config_text=None, dns=None, timeout=30, binary=None):
        if dns is None and 'fakedns' in request.fixturenames:
            dns = request.getfixturevalue('fakedns')
        argv = [binary or healthd_bin()]
        if config_text is not None:
            path = tmp_path / f'run-{time.monotonic_ns()}.conf'
            path.write_text(config_text)
            argv += ['-c', str(path)]
        r = subprocess.run(argv + list(args), env=healthd_env(env, dns),
                           cwd=tmp_path, capture_output=True, text=True,
                           timeout=timeout, check=False)
        reports = sanitizer_reports(r.stderr, r.stdout)
        assert not reports, 'sanitizer report:\n' + tail(r.stderr, 80)
        return r

    return run
