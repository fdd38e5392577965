"""Reload and early signals (issue 17, item 10).

- A SIGHUP that changes `nameservers` is applied: later lookups go to the
  new nameservers, and a lookup already in flight on the old ones still
  ends in its answer (the old resolver lives until it is answered).
- A bad `nameservers` on reload is refused with a log line; the old
  configuration stays.
- A SIGHUP or SIGTERM that arrives before the daemon's signal events exist
  neither kills it nor is lost: the daemon blocks them from the start of
  main and handles them once its loop runs.
"""

import http.client
import os
import signal
import subprocess

from fakedns import FakeDNS
from helpers import free_port, healthd_bin, healthd_env, wait_for


def _config(dns, targets):
    text = f'[daemon]\nnameservers = {dns.address}\ninterval = 1s\nretry_interval = 100ms\n'
    for name, host, port in targets:
        text += f'\n[target {name}]\nkind = redis\nhost = {host}\nport = {port}\n'
    return text


def _status(d, name):
    t = d.json('/status')['targets'].get(name)
    return t['status'] if t else None


def _log_has(d, text):
    return any(text in e.get('msg', '') for e in d.logs())


# An empty HEALTHD_NAMESERVERS is "not set", so the file's nameservers
# (which a reload can change) are the ones in force.
NO_ENV_NAMESERVERS = {'HEALTHD_NAMESERVERS': ''}


def test_reload_applies_new_nameservers(redis_server, daemon):
    """Before, the resolver kept the nameservers of the start: the new
    target's name went to the old server, which does not know it."""
    port = redis_server.redis_port
    with FakeDNS({'cache.test': '127.0.0.1'}) as old, \
            FakeDNS({'cache.test': '127.0.0.1', 'other.test': '127.0.0.1'}) as new:
        d = daemon(env=NO_ENV_NAMESERVERS,
                   config_text=_config(old, [('cache', 'cache.test', port)]))
        d.wait_for(lambda: _status(d, 'cache') == 'pass', timeout=10, what='cache passes')
        assert 'cache.test' in old.names_queried()

        d.write_config(_config(new, [('cache', 'cache.test', port),
                                     ('other', 'other.test', port)]))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: _status(d, 'other') == 'pass', timeout=10,
                   what='the target added by the reload passes')
        assert 'other.test' in new.names_queried()
        assert 'other.test' not in old.names_queried()
        assert _log_has(d, 'new lookups go to nameservers')
        # the unchanged target kept its connection and its status
        assert _status(d, 'cache') == 'pass'


def test_reload_keeps_a_lookup_in_flight(redis_server, daemon):
    """A reload while the old nameserver has not answered yet: that lookup
    ends in its answer (no failed check, no crash under ASan), and lookups
    after the reload go to the new nameserver."""
    port = redis_server.redis_port
    with FakeDNS({'cache.test': '127.0.0.1'}) as old, \
            FakeDNS({'cache.test': '127.0.0.1', 'late.test': '127.0.0.1'}) as new:
        old.delay = 0.3  # within evdns's 0.5 s retransmit
        d = daemon(env=NO_ENV_NAMESERVERS,
                   config_text=_config(old, [('cache', 'cache.test', port)]))
        wait_for(lambda: 'cache.test' in old.names_queried(), timeout=5,
                 what='the first lookup sent')
        d.write_config(_config(new, [('cache', 'cache.test', port),
                                     ('late', 'late.test', port)]))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: _status(d, 'cache') == 'pass' and _status(d, 'late') == 'pass',
                   timeout=10, what='both targets pass')
        t = d.json('/status')['targets']['cache']
        assert t.get('failures', 0) == 0, t
        assert 'late.test' in new.names_queried()
        assert 'late.test' not in old.names_queried()


def _fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def test_reload_frees_old_resolvers(redis_server, daemon):
    """Each reload that changes nameservers retires a resolver (with its
    socket); once idle it is freed, so twenty reloads leave no descriptors
    behind."""
    port = redis_server.redis_port
    with FakeDNS({'cache.test': '127.0.0.1'}) as a, FakeDNS({'cache.test': '127.0.0.1'}) as b:
        d = daemon(env=NO_ENV_NAMESERVERS,
                   config_text=_config(a, [('cache', 'cache.test', port)]))
        d.wait_for(lambda: _status(d, 'cache') == 'pass', timeout=10, what='cache passes')
        before = _fds(d.pid)
        for i in range(20):
            d.write_config(_config(b if i % 2 == 0 else a, [('cache', 'cache.test', port)]))
            d.signal(signal.SIGHUP)
            d.wait_for(lambda: sum('new lookups go to' in e.get('msg', '')
                                   for e in d.logs()) == i + 1,
                       timeout=5, what=f'reload {i + 1}')
        # a retired resolver is freed after a second of idleness
        d.wait_for(lambda: _fds(d.pid) <= before, timeout=5,
                   what=f'descriptors back to {before} (now {_fds(d.pid)})')
        assert _status(d, 'cache') == 'pass'


def test_reload_refuses_bad_nameservers(redis_server, daemon):
    port = redis_server.redis_port
    with FakeDNS({'cache.test': '127.0.0.1'}) as dns:
        d = daemon(env=NO_ENV_NAMESERVERS,
                   config_text=_config(dns, [('cache', 'cache.test', port)]))
        d.wait_for(lambda: _status(d, 'cache') == 'pass', timeout=10, what='cache passes')
        text = _config(dns, [('cache', 'cache.test', port), ('b', 'cache.test', port)])
        d.write_config(text.replace(dns.address, 'not-an-address'))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: _log_has(d, 'reload refused'), timeout=5, what='the refusal')
        msg = [e['msg'] for e in d.logs() if 'reload refused' in e.get('msg', '')][0]
        assert "nameservers: 'not-an-address'" in msg, msg
        assert list(d.json('/status')['targets']) == ['cache']


def _sigpipe_ignored(pid):
    """True once main() has ignored SIGPIPE, its first step after blocking
    SIGHUP, SIGTERM and SIGINT (before that the process is still in the
    dynamic loader or the sanitizer's start-up, which no program can
    guard)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('SigIgn:'):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGPIPE - 1)))
    except FileNotFoundError:
        pass
    return False


def _spawn_and_signal(tmp_path, i, sig, redis_port):
    conf = tmp_path / f'early{i}.conf'
    conf.write_text(f'[target cache]\nkind = redis\nhost = 127.0.0.1\nport = {redis_port}\n')
    port = free_port()
    out = open(tmp_path / f'early{i}.log', 'wb')
    p = subprocess.Popen([healthd_bin(), '-c', str(conf), '-l', f'127.0.0.1:{port}',
                          '--log-format', 'json'],
                         env=healthd_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    out.close()
    wait_for(lambda: _sigpipe_ignored(p.pid) or p.poll() is not None, timeout=10,
             interval=0.0005, what='main() to start')
    p.send_signal(sig)
    return p, port


def test_early_sighup_does_not_kill(tmp_path, redis_server):
    """SIGHUP as soon as main() runs, 20 times: before, the default action
    (terminate) killed the daemon while it was still loading its
    configuration.  Now it stays up, answers /livez and the reload is done
    once the loop runs."""
    for i in range(20):
        p, port = _spawn_and_signal(tmp_path, i, signal.SIGHUP, redis_server.redis_port)
        try:
            def livez():
                assert p.poll() is None, f'spawn {i}: daemon exited with {p.returncode}'
                try:
                    c = http.client.HTTPConnection('127.0.0.1', port, timeout=1)
                    c.request('GET', '/livez')
                    return c.getresponse().status in (200, 503)
                except OSError:
                    return False
            wait_for(livez, timeout=10, what=f'spawn {i}: /livez answers')
            wait_for(lambda: 'configuration reloaded' in
                     (tmp_path / f'early{i}.log').read_text(), timeout=5,
                     what=f'spawn {i}: the early SIGHUP handled as a reload')
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                raise
        log = (tmp_path / f'early{i}.log').read_text()
        assert rc == 0, f'spawn {i}: exit {rc}:\n{log}'
        assert 'AddressSanitizer' not in log and 'runtime error' not in log, log


def test_early_sigterm_stops_cleanly(tmp_path, redis_server):
    """SIGTERM as soon as main() runs: not lost, and no death by signal:
    the daemon starts, then stops cleanly with status 0."""
    for i in range(5):
        p, _ = _spawn_and_signal(tmp_path, i, signal.SIGTERM, redis_server.redis_port)
        try:
            rc = p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise AssertionError(f'spawn {i}: an early SIGTERM was lost')
        log = (tmp_path / f'early{i}.log').read_text()
        assert rc == 0, f'spawn {i}: exit {rc}:\n{log}'
        assert 'received SIGTERM, stopping' in log, log
