"""Hostile Redis servers (issue 17, the Redis half): a server that speaks
RESP correctly but unexpectedly is a failed (or warned) check with a
protocol reason code, never a dead daemon, a stalled loop or memory that
grows at the sender's pace.

Each case runs the ASan/UBSan build against a fake server
(test/integration/fakeredis.py) or a real redis-server with a
least-privilege ACL user, and asserts, besides its own outcome, that the
daemon stays up, that `/livez` answers within LIVEZ_BOUND every time it is
asked (sampled every 50 ms throughout) and that the daemon exits cleanly
without a sanitizer report (the `daemon` fixture).

docs/reliability.md ("Hostile Redis servers") lists the cases and their
outcomes.
"""

import threading
import time

import pytest

from fakeredis import FakeRedis, Stream
from helpers import SANITIZER_ENV

LIVEZ_BOUND = 1.0  # generous: the ASan build on a busy 2-core machine


def config(port, queues=False, interval='1s', timeout='800ms', user=None, password=None):
    """One target on the fake (or real) server. rise 1 / fall 1: every
    check's outcome shows in the status and the transition log at once."""
    text = (f'[daemon]\ninterval = {interval}\ntimeout = {timeout}\nretry_interval = 250ms\n'
            f'rise = 1\nfall = 1\n\n'
            f'[target hostile]\nkind = redis\nhost = 127.0.0.1\nport = {port}\n'
            f'db = {2 if queues else 0}\n')
    if queues:
        text += 'queues = celery\n'
    if user:
        text += f'user = {user}\n'
    if password:
        text += f'password = {password}\n'
    return text


class Watch:
    """Samples /livez every 50 ms (a new connection each time, like a
    container healthcheck) and, optionally, the daemon's VmRSS."""

    def __init__(self, d, rss_limit_kb=None):
        self.d = d
        self.rss_limit_kb = rss_limit_kb
        self.slowest = 0.0
        self.bad = []
        self.rss_base_kb = self.rss_kb()
        self.rss_peak_kb = self.rss_base_kb
        self.over = threading.Event()  # VmRSS passed rss_limit_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_kb(self):
        try:
            with open(f'/proc/{self.d.pid}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                status = self.d.get('/livez', timeout=5)[0]
            except OSError as e:
                status = repr(e)
            took = time.monotonic() - t0
            self.slowest = max(self.slowest, took)
            if status != 200 or took >= LIVEZ_BOUND:
                self.bad.append((status, round(took, 3)))
            rss = self.rss_kb()
            self.rss_peak_kb = max(self.rss_peak_kb, rss)
            if self.rss_limit_kb is not None and rss > self.rss_limit_kb:
                self.over.set()
            self._stop.wait(0.05)

    def finish(self):
        self._stop.set()
        self._thread.join(10)
        self.d.assert_running()
        assert not self.bad, (f'/livez answers not 200 within {LIVEZ_BOUND} s '
                              f'(status, seconds): {self.bad[:10]}')


def target(d):
    return d.json('/status')['targets']['hostile']


def transitions(d, to='fail'):
    return [e for e in d.logs() if e.get('event') == 'transition' and e.get('to') == to]


def wait_transition(d, reason, to='fail', timeout=10):
    """The first logged transition to `to` with `reason`."""
    found = []

    def seen():
        found[:] = [e for e in transitions(d, to) if e.get('reason') == reason]
        return found
    d.wait_for(seen, timeout=timeout,
               what=f'a transition to {to} with reason {reason} (saw '
                    f'{[(e.get("to"), e.get("reason")) for e in transitions(d, to)]})')
    return found[0]


# ----- unsolicited replies (the hiredis assert in redisProcessCallbacks)


def test_unsolicited_reply_on_idle_connection(daemon):
    """A reply nobody asked for, on the idle persistent connection between
    checks: hiredis 0.14.1 asserts (SIGABRT). It must be a failed check
    with protocol_error, the connection dropped and made again."""
    with FakeRedis(replies={}) as fake:
        d = daemon(config_text=config(fake.port))
        d.wait_for(lambda: target(d)['status'] == 'pass', timeout=10, what='first pass')
        w = Watch(d)
        assert fake.connections == 1
        # the first check after the push is at least ~0.5 s away: the
        # reply lands on an idle connection
        fake.push(b'+OK\r\n')
        ev = wait_transition(d, 'protocol_error')
        assert 'unsolicited' in ev.get('output', ''), ev
        d.wait_for(lambda: target(d)['status'] == 'pass', timeout=10, what='pass again')
        assert fake.connections >= 2, 'the daemon did not reconnect'
        w.finish()


def test_unsolicited_start_of_reply_on_idle_connection(daemon):
    """Half a reply nobody asked for (a bulk that has not ended yet) is
    caught as soon as it arrives, not when it completes."""
    with FakeRedis(replies={}) as fake:
        d = daemon(config_text=config(fake.port))
        d.wait_for(lambda: target(d)['status'] == 'pass', timeout=10, what='first pass')
        w = Watch(d)
        fake.push(b'$100\r\nabc')
        ev = wait_transition(d, 'protocol_error')
        assert 'unsolicited' in ev.get('output', ''), ev
        d.wait_for(lambda: target(d)['status'] == 'pass', timeout=10, what='pass again')
        w.finish()


def test_extra_reply_in_the_same_read(daemon):
    """PING answered with two replies at once, inside the check's pipeline
    (PING, SET, GET, DEL written together): the stray +OK is taken for SET's
    answer, which puts every later answer out of step, and GET then meets
    SET's +OK. The check fails with protocol_error and the connection is
    made again: a stream out of step with the commands never passes."""
    with FakeRedis(replies={'PING': b'+PONG\r\n+OK\r\n'}) as fake:
        d = daemon(config_text=config(fake.port))
        w = Watch(d)
        ev = wait_transition(d, 'protocol_error')
        assert 'get answered a status "OK"' in ev.get('output', ''), ev
        time.sleep(2.5)  # more checks, each reconnecting
        t = target(d)
        assert t['status'] == 'fail' and t['reason'] == 'protocol_error', t
        assert t['lastResult']['status'] == 'fail', t
        assert fake.connections >= 2
        w.finish()


def test_extra_reply_after_the_pipeline(daemon):
    """DEL, the pipeline's last command, answered with two replies: the
    check itself has all its answers, and the stray one behind them is
    caught as unsolicited (no command waits for it), the connection
    dropped and made again."""
    with FakeRedis(replies={'DEL': b':1\r\n+OK\r\n'}) as fake:
        d = daemon(config_text=config(fake.port))
        w = Watch(d)
        ev = wait_transition(d, 'protocol_error')
        assert 'unsolicited' in ev.get('output', ''), ev
        time.sleep(2.5)
        assert fake.connections >= 2, 'the daemon did not reconnect'
        w.finish()


# ----- well-formed but unexpected replies

PUSH = b'>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n'
UNEXPECTED = [
    # (case, replies, target has queues, reason, a word of the output)
    ('resp3_push_for_ping', {'PING': PUSH}, False, 'protocol_error', 'not a Redis answer'),
    ('array_for_ping', {'PING': b'*1\r\n$4\r\nPONG\r\n'}, False, 'protocol_error', 'an array'),
    ('error_for_ping', {'PING': b'-ERR no PONG today\r\n'}, False, 'server_error',
     'no PONG today'),
    ('array_for_set', {'SET': b'*0\r\n'}, False, 'protocol_error', 'set answered an array'),
    ('integer_for_select', {'SELECT': b':1\r\n'}, False, 'protocol_error',
     'select answered an integer'),
    ('status_for_del', {'DEL': b'+OK\r\n'}, False, 'protocol_error', 'del answered a status'),
    ('bulk_for_llen', {'LLEN': b'$2\r\n12\r\n'}, True, 'protocol_error',
     'llen answered a bulk string'),
    ('array_for_client_list', {'CLIENT': b'*1\r\n:1\r\n'}, True, 'protocol_error',
     'client list answered an array'),
    ('negative_array_for_ping', {'PING': b'*-5\r\n'}, False, 'protocol_error',
     'out of range'),
    ('nested_too_deep', {'PING': b'*1\r\n' * 9 + b':1\r\n'}, False, 'protocol_error',
     'nested'),
]


@pytest.mark.parametrize('case,replies,queues,reason,word', UNEXPECTED,
                         ids=[c[0] for c in UNEXPECTED])
def test_unexpected_reply(daemon, case, replies, queues, reason, word):
    with FakeRedis(replies=replies) as fake:
        d = daemon(config_text=config(fake.port, queues=queues))
        w = Watch(d)
        ev = wait_transition(d, reason)
        assert word in ev.get('output', ''), ev
        time.sleep(1.5)  # a few more checks: still up, still failing
        t = target(d)
        assert t['status'] == 'fail' and t['reason'] == reason, t
        w.finish()


# ----- replies too large (item 7)

# ASan keeps freed memory in a quarantine (256 MB by default) before reuse,
# which would hide the difference between a bounded and an unbounded reply
# buffer; a small quarantine keeps VmRSS close to what is live.
SMALL_QUARANTINE = {'ASAN_OPTIONS': SANITIZER_ENV['ASAN_OPTIONS'] + ':quarantine_size_mb=16'}
RSS_GROWTH_LIMIT_KB = 96 * 1024  # the 16 MiB cap, a copy, the quarantine, slack

HUGE = [
    ('huge_bulk', Stream(b'$1000000000\r\n', filler=b'x' * 1024, limit=1 << 30)),
    ('huge_array', Stream(b'*1000000000\r\n', filler=b':1\r\n', limit=1 << 30)),
    # admitted at first (16 MB of element pointers), refused as it fills
    ('long_array', Stream(b'*2000000\r\n', filler=b':1\r\n', limit=8000000)),
    ('endless_status_line', Stream(b'+', filler=b'y' * 1024, limit=1 << 30)),
]


@pytest.mark.parametrize('case,stream', HUGE, ids=[c[0] for c in HUGE])
def test_reply_too_large(daemon, case, stream):
    """PING answered with a reply that never ends (1 GB announced, streamed
    as fast as the daemon reads): the check fails with reply_too_large well
    before its deadline, and the daemon's memory stays bounded."""
    with FakeRedis(replies={'PING': stream}) as fake:
        d = daemon(config_text=config(fake.port, interval='15s', timeout='10s'), env=SMALL_QUARANTINE)
        w = Watch(d)
        w.rss_limit_kb = w.rss_base_kb + RSS_GROWTH_LIMIT_KB
        t0 = time.monotonic()
        found = []

        def failed():
            if w.over.is_set():
                fake.close()  # spare the machine: the test has failed already
                raise AssertionError(f'VmRSS {w.rss_peak_kb} kB, over the limit '
                                     f'{w.rss_limit_kb} kB (base {w.rss_base_kb} kB)')
            found[:] = [e for e in transitions(d) if e.get('reason') == 'reply_too_large']
            return found
        d.wait_for(failed, timeout=12, what='a reply_too_large failure')
        took = time.monotonic() - t0
        assert took < 6, f'reply_too_large after {took:.1f} s: not well before the 10 s deadline'
        assert found[0]['check_ms'] < 5000, found[0]
        time.sleep(3)  # more checks, each streaming again up to the cap
        assert not w.over.is_set(), (w.rss_peak_kb, w.rss_limit_kb)
        assert target(d)['reason'] == 'reply_too_large', target(d)
        assert fake.streamed < 1 << 30, 'the daemon read the whole reply'
        w.finish()


# ----- a least-privilege ACL user (item 6)


def test_least_privilege_user_is_a_warning(redis_server, daemon):
    """A user without @dangerous may not run INFO or CLIENT LIST (NOPERM):
    the target warns (info_denied / client_list_denied), the figures those
    commands give are absent, everything else is still checked, and the
    connection is kept. A target of the same server with a user allowed
    INFO (here the default user) is not affected."""
    user, password = 'healthd-lp', 'lp-Pw-3b1e'
    redis_server.redis_cli('ACL', 'SETUSER', user, 'on', f'>{password}', '~*', '&*',
                           '+@all', '-@dangerous')
    text = config(redis_server.redis_port, user=user, password=password)
    text += (f'\n[target celery]\nkind = redis\nhost = 127.0.0.1\n'
             f'port = {redis_server.redis_port}\ndb = 2\nqueues = celery\n'
             f'user = {user}\npassword = {password}\n')
    text += (f'\n[target full]\nkind = redis\nhost = 127.0.0.1\n'
             f'port = {redis_server.redis_port}\ndb = 1\n')
    d = daemon(config_text=text)
    w = Watch(d)

    def statuses():
        return {n: t['status'] for n, t in d.json('/status')['targets'].items()}
    want = {'hostile': 'warn', 'celery': 'warn', 'full': 'pass'}
    d.wait_for(lambda: statuses() == want, timeout=10, what=f'statuses {want}')
    body = d.json('/status')
    cache, celery = body['targets']['hostile'], body['targets']['celery']
    assert cache['reason'] == 'info_denied', cache
    assert 'INFO refused' in cache['output'], cache
    assert celery['reason'] in ('info_denied', 'client_list_denied'), celery
    assert 'INFO refused' in celery['output'] and 'CLIENT LIST refused' in celery['output'], \
        celery
    checks = body['checks']
    ops = {m['componentId'] for m in checks['hostile:opLatency']}
    assert {'ping', 'set', 'get', 'del'} <= ops, ops
    assert checks['celery:queueLength'][0]['observedValue'] == 0
    # what INFO and CLIENT LIST would have given is absent, not made up
    assert 'hostile:memory' not in checks and 'celery:consumers' not in checks, sorted(checks)
    assert 'full:memory' in checks, sorted(checks)

    def daemon_clients():
        """The ids of the connections the ACL user holds."""
        ids = set()
        for line in redis_server.redis_cli('CLIENT', 'LIST').splitlines():
            fields = dict(f.split('=', 1) for f in line.split() if '=' in f)
            if fields.get('user') == user:
                ids.add(fields['id'])
        return ids
    before = daemon_clients()
    assert len(before) == 2, before  # one persistent connection a target
    time.sleep(3.5)  # three more rounds
    assert statuses() == want
    assert daemon_clients() == before, 'the daemon reconnected: the connection was dropped'
    w.finish()


def test_noperm_info_from_fake_server(daemon):
    """The same through a fake server: NOPERM for INFO only."""
    noperm = b"-NOPERM this user has no permissions to run the 'info' command\r\n"
    with FakeRedis(replies={'INFO': noperm}) as fake:
        d = daemon(config_text=config(fake.port))
        w = Watch(d)
        d.wait_for(lambda: target(d)['status'] == 'warn', timeout=10, what='warn')
        time.sleep(2.5)
        t = target(d)
        assert t['status'] == 'warn' and t['reason'] == 'info_denied', t
        assert fake.connections == 1, 'the connection was not kept'
        assert fake.command_names().count('PING') >= 3
        w.finish()
