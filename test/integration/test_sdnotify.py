"""sd_notify (SPEC 14, issue 16): the daemon talks to a real AF_UNIX
datagram socket that the test binds and names in NOTIFY_SOCKET, as systemd
does, in both forms systemd uses: a path and an @abstract name."""
import itertools
import os
import re
import signal
import socket
import time

import pytest

from helpers import free_port
from test_redis_core import redis_config

_names = itertools.count()


class NotifySocket:
    """The receiving end of NOTIFY_SOCKET; every datagram is kept with the
    monotonic time it arrived, as a dict of its KEY=VALUE lines."""

    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = f'@hdms-sdnotify-{os.getpid()}-{next(_names)}'
            self.sock.bind('\0' + self.name[1:])
        else:
            self.name = str(tmp_path / 'notify.sock')
            self.sock.bind(self.name)
        self.received = []  # (monotonic time, {key: value}, raw text)

    def close(self):
        self.sock.close()

    def recv(self, timeout):
        """The next datagram within timeout, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        text = data.decode()
        fields = dict(line.split('=', 1) for line in text.split('\n') if line)
        msg = (time.monotonic(), fields, text)
        self.received.append(msg)
        return msg

    def wait(self, key, timeout, value=None):
        """The first datagram from now on that carries key (=value)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.recv(end - time.monotonic())
            if msg and key in msg[1] and (value is None or msg[1][key] == value):
                return msg
        raise AssertionError(f'no {key}{"=" + value if value else ""} within {timeout} s; '
                             f'received: {[m[2] for m in self.received]}')

    def collect(self, seconds):
        """Every datagram arriving within the next `seconds`."""
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = self.recv(end - time.monotonic())
            if msg:
                out.append(msg)
        return out


@pytest.fixture(params=['path', 'abstract'])
def notify(request, tmp_path):
    ns = NotifySocket(tmp_path, request.param == 'abstract')
    yield ns
    ns.close()


def closed_port_config():
    """One target on a port nobody listens on: it fails at once, no DNS."""
    return (f'[daemon]\ninterval = 1s\ntimeout = 300ms\n\n'
            f'[target nobody]\nkind = redis\nhost = 127.0.0.1\nport = {free_port()}\n')


STATUS_RE = re.compile(r'^\d+ targets?(: \d+ (pass|warn|fail|unknown)(, \d+ (pass|warn|fail|unknown))*)?$')


def test_ready_once_listening_then_status(notify, redis_server, daemon):
    d = daemon(env={'NOTIFY_SOCKET': notify.name},
               config_text=redis_config(redis_server.redis_port), wait=False)
    _, fields, _ = notify.wait('READY', timeout=15, value='1')
    # READY=1 means the listener is up: /livez answers at once, no retry.
    status, _, body = d.get('/livez', timeout=2)
    assert status == 200, body
    assert STATUS_RE.match(fields.get('STATUS', '')), fields
    assert fields['STATUS'].startswith('3 targets')
    # The line follows the targets' results.
    _, fields, _ = notify.wait('STATUS', timeout=10, value='3 targets: 3 pass')
    assert 'READY' not in fields and 'WATCHDOG' not in fields
    # Without WATCHDOG_USEC there is no keep-alive.
    later = notify.collect(2.5)
    assert not [m for m in later if 'WATCHDOG' in m[1]], [m[2] for m in later]
    d.stop()


def test_watchdog_rate_and_a_stopped_daemon_goes_silent(notify, daemon):
    d = daemon(env={'NOTIFY_SOCKET': notify.name, 'WATCHDOG_USEC': '2000000'},
               config_text=closed_port_config(), wait=False)
    notify.wait('READY', timeout=15, value='1')
    beats = [m[0] for m in notify.collect(6.2) if m[1].get('WATCHDOG') == '1']
    # Half of WATCHDOG_USEC: one a second, so 6 in 6.2 s (bounds for a busy
    # 2-core machine).
    assert 4 <= len(beats) <= 8, beats
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert 0.6 <= sum(gaps) / len(gaps) <= 1.4, gaps
    assert max(gaps) < 1.9, gaps  # never close to the 2 s systemd allows

    # A stopped process sends nothing: what systemd's watchdog relies on to
    # restart a daemon whose loop hangs.
    d.signal(signal.SIGSTOP)
    try:
        time.sleep(0.2)  # a datagram already in flight may still arrive
        notify.collect(0.1)
        silent = notify.collect(3.0)
        assert not [m for m in silent if 'WATCHDOG' in m[1]], [m[2] for m in silent]
    finally:
        d.signal(signal.SIGCONT)
    notify.wait('WATCHDOG', timeout=3, value='1')
    d.stop()


def test_watchdog_for_another_pid_is_ignored(notify, daemon):
    # WATCHDOG_PID names the unit's main process; a child that inherited the
    # variables (or a helper started from a script) must not pet the watchdog.
    d = daemon(env={'NOTIFY_SOCKET': notify.name, 'WATCHDOG_USEC': '1000000',
                    'WATCHDOG_PID': '1'},
               config_text=closed_port_config(), wait=False)
    notify.wait('READY', timeout=15, value='1')
    later = notify.collect(2.5)
    assert not [m for m in later if 'WATCHDOG' in m[1]], [m[2] for m in later]
    d.stop()


def test_reload_and_stop(notify, daemon):
    d = daemon(env={'NOTIFY_SOCKET': notify.name},
               config_text=closed_port_config(), wait=False)
    notify.wait('READY', timeout=15, value='1')
    d.wait_for(lambda: d.get('/status')[0] in (200, 503), timeout=5)

    before_us = time.monotonic() * 1e6  # CLOCK_MONOTONIC, as MONOTONIC_USEC
    d.signal(signal.SIGHUP)
    _, fields, _ = notify.wait('RELOADING', timeout=10, value='1')
    after_us = time.monotonic() * 1e6
    assert before_us <= int(fields['MONOTONIC_USEC']) <= after_us, (before_us, fields, after_us)
    _, fields, _ = notify.wait('READY', timeout=10, value='1')
    assert fields['STATUS'].startswith('1 target'), fields

    # A refused reload (the old configuration stays) still ends with READY=1:
    # systemd would otherwise wait for the reload to time out.
    d.write_config('[daemon]\ninterval = soon\n')
    d.signal(signal.SIGHUP)
    notify.wait('RELOADING', timeout=10, value='1')
    _, fields, _ = notify.wait('READY', timeout=10, value='1')
    assert fields['STATUS'].startswith('1 target'), fields
    assert any('reload refused' in str(e.get('msg', e)) for e in d.logs()), d.stderr()[-2000:]

    d.signal(signal.SIGTERM)
    _, fields, _ = notify.wait('STOPPING', timeout=10, value='1')
    d.stop()  # exits 0, no sanitizer report
    assert not [m for m in notify.collect(0.3) if 'WATCHDOG' in m[1] or 'READY' in m[1]]


def test_without_notify_socket_nothing_is_sent(tmp_path, daemon):
    # A socket exists but is not named: the daemon must neither find it nor
    # complain that it has no systemd to talk to.
    ns = NotifySocket(tmp_path, abstract=False)
    try:
        d = daemon(env={'WATCHDOG_USEC': '1000000'}, config_text=closed_port_config())
        assert ns.collect(2.5) == []
        d.stop()
        assert 'sd_notify' not in d.stderr() + d.stdout()
    finally:
        ns.close()


def test_a_vanished_socket_costs_one_warning(tmp_path, daemon):
    # systemd gone (or NOTIFY_SOCKET stale): the daemon keeps serving and
    # logs the failure once, not once per watchdog beat.
    d = daemon(env={'NOTIFY_SOCKET': str(tmp_path / 'nobody.sock'),
                    'WATCHDOG_USEC': '500000'},
               config_text=closed_port_config())
    time.sleep(2.5)
    assert d.get('/livez')[0] == 200
    d.stop()
    warnings = [e for e in d.logs() if 'cannot send to NOTIFY_SOCKET' in str(e.get('msg', ''))]
    assert len(warnings) == 1, d.stderr()[-2000:]
