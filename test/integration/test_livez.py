"""/livez (SPEC 5): the daemon itself is alive while every target's last
result is younger than its staleness bound, max(3 x interval, interval +
timeout + retry_interval). A target that has no result yet is as old as the
target itself, not as old as the daemon."""
import json
import signal
import time

from fakeservers import FakeServer
from test_redis_core import redis_config


def test_livez_stays_200_while_a_target_added_by_sighup_waits_for_its_first_result(
        redis_server, daemon):
    text = redis_config(redis_server.redis_port)
    d = daemon(config_text=text)
    # Up for longer than the new target's staleness bound (3 s: 3 x 1 s),
    # so that an age counted from the daemon's start would be stale.
    d.wait_for(lambda: d.json('/status')['uptimeSeconds'] > 4.0, timeout=15)
    assert d.get('/livez')[0] == 200
    with FakeServer('silent') as hung:
        # Its first check waits for its whole timeout: a server that
        # accepts and never answers.
        d.write_config(text + (f'[target hung]\nkind = redis\nhost = 127.0.0.1\n'
                               f'port = {hung.port}\ninterval = 1s\ntimeout = 900ms\n'
                               'critical = no\n'))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), timeout=5)
        waiting = 0  # /livez answers while `hung` had no result yet
        answers = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            code, _, body = d.get('/livez')
            answers.append((code, body))
            health = json.loads(d.get('/health/hung')[2])
            if health.get('reason') == 'no_result_yet':
                waiting += 1
            time.sleep(0.05)
        bad = [(c, b) for c, b in answers if c != 200]
        assert not bad, bad[:3]
        assert waiting >= 3, waiting  # the window before the first result was seen
        assert hung.accepted >= 1
        # and the new target's first result did come: a timeout, not a hang
        health = json.loads(d.get('/health/hung')[2])
        assert health['status'] == 'fail' and health['reason'] == 'timeout', health
