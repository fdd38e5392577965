"""Notifications (issue 12, SPEC 12) against real receivers: a real
Alertmanager (Debian's prometheus-alertmanager) routing to a webhook the
test runs, and recording HTTP(S) receivers (receivers.py).

- Alertmanager: Redis killed, the alert for redis-cache is active there
  with the labels and annotations of SPEC 12, re-sent every
  repeat_interval, and reaches the receiver through Alertmanager's own
  route; Redis back, it is resolved there.
- Webhook: the fail and the pass arrive once each, in order, with every
  documented field; `targets` filters; `min_duration` suppresses a blip
  entirely and delays a real outage's alert; `notify_warn`.
- Retries: 500 and 429 are retried with backoff until a 200; a 400 is not
  (one request, result "failed", a notify_failed event, /status lastError).
- A receiver that accepts and never answers, and a black-holed one
  (iptables DROP): /livez stays fast, the loop lag small, checks keep their
  schedule, the queue stays within queue_max and drops are counted.
- HTTPS with a test CA: delivered with the CA configured, refused without;
  http_proxy from the environment.
- A state file: a failure that lasts across a restart is not sent twice,
  and its recovery after the restart is, also when it happened while the
  daemon was stopped (for Alertmanager: no zombie alert).
- A newer state replaces a queued older one (a slow receiver); send_resolved.

The secrets of notifiers (tokens, URL paths and query strings) are in
test_secrets.py; memory under valgrind with a hung receiver in
test_valgrind.py.
"""

import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time

import pytest

from fakeservers import FakeServer
from helpers import assert_loop_free
from localstack import PacketDrop
from receivers import Alertmanager, Receiver
from test_metrics import scrape
from tlsca import CertAuthority

INSTANCE = 'notify-test-host'
EXTERNAL = 'http://127.0.0.1:18080'
# Redis targets checked every 500 ms; a killed Redis is down at once (a
# closed connection and a refused reconnect are two failures).
DAEMON = (f'[daemon]\ninterval = 500ms\ntimeout = 250ms\nretry_interval = 100ms\n'
          f'rise = 2\nfall = 2\ninstance = {INSTANCE}\nexternal_url = {EXTERNAL}\n')
OUTAGE = ('connection_lost', 'connect_refused')
WEBHOOK_FIELDS = {'version', 'event', 'target', 'kind', 'previous', 'reason', 'output',
                  'time', 'since', 'durationSeconds', 'instance', 'url', 'text'}


# ----- configuration and reading the daemon

def redis_targets(port, names=('redis-cache', 'redis-channels', 'redis-celery'),
                  extra=None):
    """One redis target per name on the same server (db 0, 1, ...);
    `extra` maps a name to more keys of its section."""
    text = ''
    for db, name in enumerate(names):
        text += (f'\n[target {name}]\nkind = redis\nhost = 127.0.0.1\nport = {port}\n'
                 f'db = {db}\n{(extra or {}).get(name, "")}')
    return text


def notifier(name, url, kind='webhook', **keys):
    text = f'\n[notify {name}]\nkind = {kind}\nurl = {url}\n'
    return text + ''.join(f'{k} = {v}\n' for k, v in keys.items())


def statuses(d):
    return {n: t['status'] for n, t in d.json('/status')['targets'].items()}


def metrics(d):
    return scrape(d)


def sent(d, name, result='sent'):
    """hdms_healthd_notifications_total{notifier=name, result=result}."""
    return metrics(d).value('hdms_healthd_notifications_total', notifier=name, result=result)


def queue_length(d, name):
    return metrics(d).value('hdms_healthd_notification_queue_length', notifier=name)


def notifiers(d):
    """/status's notifiers as {name: object}, whether the daemon lists them
    as an array of objects with a name or as an object keyed by name."""
    doc = d.json('/status')['notifiers']
    if isinstance(doc, dict):
        return doc
    return {n['name']: n for n in doc}


def events(d, query=''):
    status, _, body = d.get('/events' + query)
    assert status == 200, (query, status, body)
    return json.loads(body)['events']


def parse_time(text):
    """RFC 3339 (with Z or an offset) -> Unix seconds."""
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()


def transition_time(d, target, to):
    """The time of the newest transition event of `target` to `to`."""
    found = [e for e in events(d, f'?target={target}&type=transition') if e['to'] == to]
    assert found, f'no transition of {target} to {to} in /events'
    return parse_time(found[0]['time'])


def checks_total(d):
    """{target: checks run} from /metrics."""
    return {lab['target']: v for lab, v in metrics(d).series('hdms_healthd_checks_total')}


def webhook_events(r, target=None):
    return [(b['event'], b['target']) for b in r.bodies()
            if b is not None and (target is None or b['target'] == target)]


def check_webhook_body(b, event, previous, target='redis-cache', kind='redis'):
    """Every field of SPEC 12's webhook body, with its type and value."""
    assert set(b) >= WEBHOOK_FIELDS, f'missing fields: {WEBHOOK_FIELDS - set(b)} in {b}'
    assert b['version'] == 1, b
    assert b['event'] == event and b['previous'] == previous, b
    assert b['target'] == target and b['kind'] == kind, b
    assert b['instance'] == INSTANCE, b
    assert b['url'].startswith(EXTERNAL), b
    assert isinstance(b['text'], str), b
    # a pass has no failure to explain: its reason and output may be null
    assert isinstance(b['output'], str) or (event == 'pass' and b['output'] is None), b
    assert target in b['text'] and '\n' not in b['text'], b
    assert isinstance(b['durationSeconds'], (int, float)), b
    t, since = parse_time(b['time']), parse_time(b['since'])
    assert since <= t and abs(t - time.time()) < 60, b
    if event == 'fail':
        assert b['reason'] in OUTAGE, b
        assert b['output'], b
    return t, since


class LivezSampler:
    """GET /livez every 50 ms in a thread, keeping the slowest answer, and
    a /metrics scrape every 200 ms whose queue lengths are kept."""

    def __init__(self, d, notifier_name):
        self.d, self.name = d, notifier_name
        self.worst, self.count, self.failures, self.queues = 0.0, 0, [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                code = self.d.get('/livez', timeout=5)[0]
                if code != 200:
                    self.failures.append(code)
            except OSError as e:
                self.failures.append(repr(e))
            self.worst = max(self.worst, time.monotonic() - t0)
            self.count += 1
            n += 1
            if n % 4 == 0:
                try:
                    self.queues.append(queue_length(self.d, self.name))
                except (OSError, AssertionError) as e:  # lint-tests: ok (kept, asserted in stop())
                    self.failures.append(repr(e))
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._t.join(15)
        assert not self.failures, f'/livez or /metrics failed: {self.failures[:5]}'
        assert self.count >= 20, f'only {self.count} /livez samples'
        return self


# ----- Alertmanager


def test_alertmanager_fires_and_resolves(redis_server, daemon, tmp_path):
    """The daemon posts to a real Alertmanager (HEALTHD_ALERTMANAGER_URL),
    whose own route delivers to a webhook receiver."""
    with Receiver() as hook:
        am = Alertmanager(tmp_path / 'am', hook.url('/am')).start()
        try:
            config = DAEMON + redis_targets(
                redis_server.redis_port, extra={'redis-celery': 'critical = no\n'})
            d = daemon(config_text=config,
                       env={'HEALTHD_ALERTMANAGER_URL': am.url,
                            'HEALTHD_INSTANCE': INSTANCE})
            d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 10, what='all pass')
            assert 'alertmanager' in notifiers(d), notifiers(d)
            assert am.alerts(active=True) == []

            redis_server.kill_redis(signal.SIGKILL)
            d.wait_for(lambda: set(statuses(d).values()) == {'fail'}, 10, what='all fail')
            t_fail = transition_time(d, 'redis-cache', 'fail')

            def active(target):
                return [a for a in am.alerts(active=True) if a['labels'].get('target') == target]
            d.wait_for(lambda: active('redis-cache') and active('redis-celery'), 15,
                        what='the alerts active in Alertmanager')
            alert = active('redis-cache')[0]
            assert alert['labels'] == {
                'alertname': 'HdmsHealthdTargetDown', 'target': 'redis-cache',
                'kind': 'redis', 'instance': INSTANCE, 'service': 'hdms-healthd',
                'severity': 'critical'}, alert['labels']
            assert active('redis-celery')[0]['labels']['severity'] == 'warning'
            ann = alert['annotations']
            assert ann.get('summary') and ann.get('description'), ann
            assert ann.get('reason') in OUTAGE, ann
            assert abs(parse_time(alert['startsAt']) - t_fail) < 1.5, (alert, t_fail)
            # an explicit endsAt in the future: now + 4 x repeat_interval (1m)
            ends = parse_time(alert['endsAt']) - time.time()
            assert 150 < ends < 250, f'endsAt {alert["endsAt"]}: {ends:.0f} s from now'
            assert alert['generatorURL'] == EXTERNAL + '/status', alert
            assert alert['status']['state'] == 'active', alert

            # ... and Alertmanager's own route delivered it
            def delivered(status):
                return [a for b in hook.bodies() if b and b.get('status') == status
                        for a in b['alerts'] if a['labels'].get('target') == 'redis-cache'
                        and a['status'] == status]
            d.wait_for(lambda: delivered('firing'), 15, what='the firing alert at the receiver')
            assert delivered('firing')[0]['labels']['alertname'] == 'HdmsHealthdTargetDown'

            redis_server.start_redis()
            d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 10, what='all pass again')
            t_pass = transition_time(d, 'redis-cache', 'pass')
            d.wait_for(lambda: not active('redis-cache') and not active('redis-celery'), 15,
                       what='the alerts resolved in Alertmanager')
            d.wait_for(lambda: delivered('resolved'), 15,
                       what='the resolved alert at the receiver')
            res = delivered('resolved')[0]
            assert abs(parse_time(res['endsAt']) - t_pass) < 1.5, (res, t_pass)
            # the other targets, which never failed, were never sent
            assert not any(a['labels'].get('target') not in
                           ('redis-cache', 'redis-channels', 'redis-celery')
                           for b in hook.bodies() if b for a in b['alerts'])
            m = metrics(d)
            assert m.value('hdms_healthd_notifications_total', notifier='alertmanager',
                           result='sent') >= 6  # three fails, three passes
            assert m.value('hdms_healthd_notifications_total', notifier='alertmanager',
                           result='failed') == 0
            assert notifiers(d)['alertmanager'].get('lastSuccess'), notifiers(d)
        finally:
            am.stop()


def test_alertmanager_repeats_while_firing(redis_server, daemon, tmp_path):
    """repeat_interval: a firing alert is re-posted (Alertmanager's
    updatedAt moves on, endsAt stays now + 4 x repeat_interval)."""
    with Receiver() as hook:
        am = Alertmanager(tmp_path / 'am', hook.url('/am')).start()
        try:
            config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
                + notifier('am', am.url, kind='alertmanager', repeat_interval='2s')
            d = daemon(config_text=config)
            d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
            redis_server.kill_redis(signal.SIGKILL)

            def alert():
                found = am.alerts(active=True)
                return found[0] if found else None
            d.wait_for(alert, 15, what='the alert active in Alertmanager')
            first = alert()
            ends = parse_time(first['endsAt']) - time.time()
            assert 4 < ends < 10, f'endsAt {first["endsAt"]}: {ends:.1f} s from now (4 x 2 s)'
            d.wait_for(lambda: alert()['updatedAt'] != first['updatedAt'], 10,
                       what='a re-post of the firing alert')
            again = alert()
            assert again['startsAt'] == first['startsAt'], (first, again)
            assert parse_time(again['endsAt']) > parse_time(first['endsAt']), (first, again)
            redis_server.start_redis()
            d.wait_for(lambda: alert() is None, 15, what='the alert resolved')
        finally:
            am.stop()


# ----- webhook


def test_webhook_fail_then_pass_once_each(redis_server, daemon):
    """The fail and the pass arrive once each, in order, with every
    documented field; `targets` keeps the other targets out; the bearer
    token is sent."""
    with Receiver() as r:
        config = DAEMON + redis_targets(redis_server.redis_port) + notifier(
            'hook', r.url('/hook'), targets='redis-cache', bearer_token='hook-bearer-5e1')
        d = daemon(config_text=config)
        d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 10, what='all pass')
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: set(statuses(d).values()) == {'fail'}, 10, what='all fail')
        r.wait_count(1, 10, what='the fail at the receiver')
        time.sleep(1.5)  # retries of the failing checks: nothing more is sent
        assert webhook_events(r) == [('fail', 'redis-cache')], r.received()
        redis_server.start_redis()
        d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 10, what='all pass again')
        r.wait_count(2, 10, what='the pass at the receiver')
        time.sleep(1.5)
        reqs = r.received()
        assert webhook_events(r) == [('fail', 'redis-cache'), ('pass', 'redis-cache')], reqs
        for req in reqs:
            assert req.method == 'POST' and req.path == '/hook', req
            assert req.headers.get('Content-Type', '').startswith('application/json'), req.headers
            assert req.headers.get('Authorization') == 'Bearer hook-bearer-5e1', req.headers
        t_fail = transition_time(d, 'redis-cache', 'fail')
        t_pass = transition_time(d, 'redis-cache', 'pass')
        fail, ok = reqs[0].json, reqs[1].json
        t, _ = check_webhook_body(fail, 'fail', 'pass')
        assert abs(t - t_fail) < 1.0, (fail, t_fail)
        t, since = check_webhook_body(ok, 'pass', 'fail')
        assert abs(t - t_pass) < 1.0, (ok, t_pass)
        # the recovery says how long the failure lasted, and since when
        assert abs(since - t_fail) < 1.0, (ok, t_fail)
        assert abs(ok['durationSeconds'] - (t_pass - t_fail)) < 1.0, (ok, t_pass - t_fail)
        assert 'fail' in fail['text'].lower() or 'down' in fail['text'].lower(), fail
        assert sent(d, 'hook') == 2
        assert sent(d, 'hook', 'failed') == 0 and sent(d, 'hook', 'dropped') == 0
        n = notifiers(d)['hook']
        assert n.get('lastSuccess') and not n.get('lastError'), n


def test_webhook_env_shortcut(redis_server, daemon, tmp_path):
    """HEALTHD_WEBHOOK_URL_FILE makes a notifier named `webhook` (for all
    targets), shown as scheme://host:port only."""
    with Receiver() as r:
        url_file = tmp_path / 'webhook.url'
        url_file.write_text(r.url('/services/T000/B000/shortcut') + '\n')
        d = daemon(config_text=DAEMON + redis_targets(redis_server.redis_port),
                   env={'HEALTHD_WEBHOOK_URL_FILE': str(url_file)})
        d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 10, what='all pass')
        assert set(notifiers(d)) == {'webhook'}, notifiers(d)
        assert 'shortcut' not in json.dumps(notifiers(d)), notifiers(d)
        redis_server.kill_redis(signal.SIGKILL)
        r.wait_count(3, 10, what='a fail per target')
        time.sleep(1.0)
        assert sorted(webhook_events(r)) == [('fail', 'redis-cache'), ('fail', 'redis-celery'),
                                             ('fail', 'redis-channels')], r.received()
        assert {q.path for q in r.received()} == {'/services/T000/B000/shortcut'}


def test_min_duration_suppresses_a_blip(redis_server, daemon):
    """min_duration = 3s: a failure shorter than that sends nothing at all
    (neither the fail nor the pass), while a notifier without it sends both
    (so the blip was a real fail transition); a failure that lasts is sent
    once it has lasted min_duration, and then its recovery too."""
    with Receiver() as slow, Receiver() as fast:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('slow', slow.url('/slow'), min_duration='3s') \
            + notifier('fast', fast.url('/fast'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')

        # the blip: Redis killed and started again at once (the outage is
        # what a restart of redis-server takes, a few hundred ms)
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: statuses(d)['redis-cache'] == 'fail', 10, what='the blip seen')
        redis_server.start_redis()
        d.wait_for(lambda: statuses(d)['redis-cache'] == 'pass', 10, what='pass again')
        blip = transition_time(d, 'redis-cache', 'pass') - transition_time(d, 'redis-cache',
                                                                          'fail')
        assert blip < 2.0, f'the blip lasted {blip:.2f} s: not a blip for min_duration 3s'
        fast.wait_count(2, 10, what='fail and pass at the notifier without min_duration')
        assert webhook_events(fast) == [('fail', 'redis-cache'), ('pass', 'redis-cache')]
        time.sleep(3.5)  # past min_duration after the blip's start
        assert slow.received() == [], 'min_duration did not suppress the blip'
        assert sent(d, 'slow') == 0

        # a failure that lasts
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: statuses(d)['redis-cache'] == 'fail', 10, what='down')
        t_fail = transition_time(d, 'redis-cache', 'fail')
        (req,) = slow.wait_count(1, 10, what='the fail after min_duration')
        assert req.time - t_fail > 2.9, f'sent {req.time - t_fail:.2f} s after the ' \
            'failure, before min_duration (3 s)'
        check_webhook_body(req.json, 'fail', 'pass')
        redis_server.start_redis()
        slow.wait_count(2, 10, what='the recovery of a failure that was sent')
        time.sleep(1.0)
        assert webhook_events(slow) == [('fail', 'redis-cache'), ('pass', 'redis-cache')]


def test_notify_warn(redis_server, daemon):
    """A warn (a queue over queue_warn) is sent by a notifier with
    notify_warn = yes (event warn, then pass), and by no other."""
    with Receiver() as warn, Receiver() as quiet:
        targets = redis_targets(redis_server.redis_port, names=('redis-celery',),
                                extra={'redis-celery': 'queues = celery\nqueue_warn = 2\n'})
        config = DAEMON + targets + notifier('warn', warn.url('/w'), notify_warn='yes') \
            + notifier('quiet', quiet.url('/q'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-celery': 'pass'}, 10, what='pass')
        redis_server.redis_cli('-n', '0', 'RPUSH', 'celery', 'a', 'b', 'c', 'd')
        d.wait_for(lambda: statuses(d)['redis-celery'] == 'warn', 10, what='warn')
        (req,) = warn.wait_count(1, 10, what='the warn')
        b = req.json
        assert b['event'] == 'warn' and b['previous'] == 'pass' and \
            b['target'] == 'redis-celery', b
        redis_server.redis_cli('-n', '0', 'DEL', 'celery')
        d.wait_for(lambda: statuses(d)['redis-celery'] == 'pass', 10, what='pass again')
        warn.wait_count(2, 10, what='the pass after the warn')
        time.sleep(1.0)
        assert webhook_events(warn) == [('warn', 'redis-celery'), ('pass', 'redis-celery')]
        assert warn.received()[1].json['previous'] == 'warn'
        assert quiet.received() == [], 'a notifier without notify_warn sent something'


# ----- retries


def test_retries_5xx_and_429_then_delivered(redis_server, daemon):
    """500, then 429, then 200: the same notification three times, with
    the backoff of SPEC 12 (1 s, then 2 s), counted once as sent."""
    with Receiver(answers=[500, 429]) as r:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('hook', r.url('/hook'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        reqs = r.wait_count(3, 20, what='two retries')
        assert [q.status for q in reqs] == [500, 429, 200], reqs
        assert reqs[0].body == reqs[1].body == reqs[2].body, reqs
        assert reqs[0].json['event'] == 'fail', reqs[0]
        gaps = [b.mono - a.mono for a, b in zip(reqs, reqs[1:])]
        # backoff 1 s doubling; the upper bounds leave room for a busy machine
        assert 0.8 < gaps[0] < 3.0 and 1.6 < gaps[1] < 5.0, f'retry gaps {gaps}'
        d.wait_for(lambda: sent(d, 'hook') == 1, 5, what='sent counted')
        time.sleep(1.5)
        assert len(r.received()) == 3, r.received()
        assert sent(d, 'hook', 'failed') == 0
        n = notifiers(d)['hook']
        assert n.get('lastSuccess'), n


def test_400_is_not_retried(redis_server, daemon):
    """A 400 is final: one request, counted as failed, a notify_failed
    event and the error in /status."""
    with Receiver(answers=[400]) as r:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('hook', r.url('/hook'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        r.wait_count(1, 10, what='the fail at the receiver')
        d.wait_for(lambda: sent(d, 'hook', 'failed') == 1, 5, what='counted as failed')
        time.sleep(3.5)  # past the first two backoff steps (1 s, 2 s)
        assert len(r.received()) == 1, f'a 400 was retried: {r.received()}'
        assert sent(d, 'hook') == 0
        evs = events(d, '?type=notify_failed')
        assert len(evs) == 1, evs
        assert evs[0]['notifier'] == 'hook' and '400' in evs[0]['error'], evs[0]
        n = notifiers(d)['hook']
        assert n.get('lastError') and '400' in json.dumps(n['lastError']), n
        assert not n.get('lastSuccess'), n


# ----- receivers that hang or swallow packets


def hang_case(fault, redis_server, daemon):
    """12 targets on one Redis, all failing at once: 12 notifications for
    a receiver that never answers (`silent`: accepts, reads, says nothing)
    or whose packets are dropped (`drop`: iptables DROP of its port), with
    timeout 1s and queue_max 3."""
    names = tuple(f'r{i}' for i in range(12))
    with Receiver() as real, FakeServer(mode='silent') as fake:
        port = fake.port if fault == 'silent' else real.port
        config = DAEMON + redis_targets(redis_server.redis_port, names=names) \
            + notifier('hook', f'http://127.0.0.1:{port}/hook', timeout='1s', queue_max=3)
        d = daemon(config_text=config)
        d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 15, what='all pass')
        drop = PacketDrop(real.port).start() if fault == 'drop' else None
        try:
            sampler = LivezSampler(d, 'hook')
            before = checks_total(d)
            t0 = time.monotonic()
            redis_server.kill_redis(signal.SIGKILL)
            d.wait_for(lambda: set(statuses(d).values()) == {'fail'}, 10, what='all fail')
            d.wait_for(lambda: sent(d, 'hook', 'dropped') >= 1, 10, what='a drop counted')
            time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
            redis_server.start_redis()
            d.wait_for(lambda: set(statuses(d).values()) == {'pass'}, 15, what='all pass again')
            time.sleep(1.0)
            elapsed = time.monotonic() - t0
            after = checks_total(d)
            sampler.stop()
            assert_loop_free(d, sampler.worst)
            # checks kept their schedule: every 500 ms at most (100 ms while
            # failing), so at least one a second even on a busy machine
            slow = {n: after[n] - before[n] for n in names
                    if after[n] - before[n] < elapsed}
            assert not slow, f'checks fell behind in {elapsed:.1f} s: {slow}'
            assert sampler.queues and max(sampler.queues) <= 3, sampler.queues
            assert queue_length(d, 'hook') <= 3
            assert sent(d, 'hook') == 0 and real.received() == []
            assert notifiers(d)['hook'].get('lastError'), notifiers(d)
            if fault == 'drop':
                drop.stop()
                # the black hole gone, a retry gets through
                real.wait_count(1, 40, what='a retry once the packets flow again')
                assert real.received()[0].json['event'] in ('fail', 'pass')
        finally:
            if drop is not None:
                drop.stop()
        t = time.monotonic()
        d.stop()  # a delivery in flight does not hold up the stop
        assert time.monotonic() - t < 5.0, 'the stop waited for the hung receiver'


def test_hung_receiver_does_not_hold_the_loop(redis_server, daemon):
    hang_case('silent', redis_server, daemon)


def test_blackholed_receiver_does_not_hold_the_loop(redis_server, daemon):
    why = PacketDrop.unavailable()
    if why:
        pytest.skip(why)
    hang_case('drop', redis_server, daemon)


# ----- HTTPS


def test_https_receiver_with_test_ca(redis_server, daemon, tmp_path):
    """An HTTPS receiver whose certificate a test CA signed: delivered when
    the notifier trusts that CA (ca_file), refused without it."""
    ca = CertAuthority(tmp_path / 'ca')
    cert, key = ca.issue('receiver', 'IP:127.0.0.1')
    with Receiver(tls=(cert, key)) as trusted, Receiver(tls=(cert, key)) as untrusted:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('trusting', trusted.url('/hook'), ca_file=ca.cert) \
            + notifier('system', untrusted.url('/hook'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        (req,) = trusted.wait_count(1, 10, what='the fail over HTTPS')
        assert req.json['event'] == 'fail', req
        d.wait_for(lambda: notifiers(d)['system'].get('lastError'), 10,
                   what='the untrusted receiver refused')
        err = json.dumps(notifiers(d)['system']['lastError']).lower()
        assert re.search(r'certificate|ssl|tls', err), err
        assert untrusted.received() == [], 'a request got through an untrusted certificate'
        d.wait_for(lambda: sent(d, 'trusting') == 1, 5, what='the HTTPS delivery counted')
        assert sent(d, 'system') == 0


def test_http_proxy_from_the_environment(redis_server, daemon):
    """http_proxy is honoured (libcurl's own rule): the notification goes
    to the proxy, as an absolute URI for a receiver that does not even
    listen (port 1)."""
    with Receiver() as proxy:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('hook', 'http://127.0.0.1:1/hook')
        d = daemon(config_text=config, env={'http_proxy': proxy.url('')})
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        (req,) = proxy.wait_count(1, 10, what='the fail at the proxy')
        assert req.path == 'http://127.0.0.1:1/hook', req
        assert req.json['event'] == 'fail', req
        d.wait_for(lambda: sent(d, 'hook') == 1, 5, what='sent through the proxy')


# ----- restarts and reloads


def test_reload_adds_a_notifier_that_learns_the_current_state(redis_server, daemon):
    """A notifier added by SIGHUP announces a target that is already
    failing; one left unchanged does not announce it again."""
    with Receiver() as old, Receiver() as new:
        base = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('old', old.url('/old'))
        d = daemon(config_text=base)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        old.wait_count(1, 10, what='the fail at the first notifier')
        d.write_config(base + notifier('new', new.url('/new')))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: 'new' in notifiers(d), 10, what='the new notifier')
        (req,) = new.wait_count(1, 10, what='the current failure at the new notifier')
        assert req.json['event'] == 'fail' and req.json['target'] == 'redis-cache', req
        time.sleep(1.0)
        assert webhook_events(old) == [('fail', 'redis-cache')], old.received()
        assert webhook_events(new) == [('fail', 'redis-cache')], new.received()



def maps_libcurl(pid):
    with open(f'/proc/{pid}/maps') as f:
        return any('libcurl' in line for line in f)


def test_libcurl_loaded_only_with_a_notifier(redis_server, daemon):
    """A daemon without notifiers never maps libcurl (its memory is spent
    on notifications only); the first notifier a reload brings loads it and
    is served."""
    with Receiver() as r:
        base = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',))
        d = daemon(config_text=base)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        assert not maps_libcurl(d.pid), 'libcurl mapped with no notifier configured'
        d.write_config(base + notifier('hook', r.url('/hook')))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda: 'hook' in notifiers(d), 10, what='the notifier')
        assert maps_libcurl(d.pid)
        redis_server.kill_redis(signal.SIGKILL)
        (req,) = r.wait_count(1, 10, what='the fail at the notifier')
        assert req.json['event'] == 'fail' and req.json['target'] == 'redis-cache', req


# A libcurl.so.4 that will not do, built here and found first through
# LD_LIBRARY_PATH: 'old' exports every function the daemon looks up and
# says it is 7.74.0; 'bare' exports none of them.
FAKE_CURL_FUNCS = ('global_init', 'global_cleanup', 'version_info', 'multi_init',
                   'multi_setopt', 'multi_cleanup', 'multi_add_handle', 'multi_remove_handle',
                   'multi_socket_action', 'multi_assign', 'multi_info_read', 'multi_strerror',
                   'easy_init', 'easy_setopt', 'easy_getinfo', 'easy_cleanup', 'easy_strerror',
                   'slist_append', 'slist_free_all')


def fake_libcurl(tmp_path, kind):
    d = tmp_path / f'fake-curl-{kind}'
    d.mkdir()
    if kind == 'old':
        # curl_version_info_data's leading fields, as curl.h lays them out
        code = ('struct info { int age; const char *version; unsigned int version_num;\n'
                '              const char *host; int features; };\n'
                'static struct info v = {0, "7.74.0", 0x074a00, "x86_64-pc-linux-gnu",\n'
                '                        1 << 30 /* CURL_VERSION_THREADSAFE */};\n'
                'struct info *curl_version_info(int age) { (void)age; return &v; }\n')
        code += ''.join(f'int curl_{f}(void) {{ return 0; }}\n'
                        for f in FAKE_CURL_FUNCS if f != 'version_info')
    else:
        code = 'int not_libcurl;\n'
    (d / 'fake.c').write_text(code)
    subprocess.run([*shlex.split(os.environ.get('CC', 'cc')), '-shared', '-fPIC', '-o',
                    str(d / 'libcurl.so.4'), str(d / 'fake.c')], check=True)
    return {'LD_LIBRARY_PATH': str(d)}


@pytest.mark.parametrize('kind,says', [
    ('old', 'notifications need libcurl 7.87 or later, libcurl.so.4 is 7.74.0'),
    ('bare', 'notifications need libcurl: libcurl.so.4 has no curl_global_init')])
def test_unusable_libcurl_refuses_notifiers(redis_server, daemon, run_healthd, tmp_path,
                                             kind, says):
    """Without a usable libcurl a configuration that names a notifier is
    an error: at start, exit 2 with the reason; on a reload, refused, the
    old configuration kept and its checks going on. A configuration with no
    notifier never needs libcurl."""
    env = fake_libcurl(tmp_path, kind)
    base = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',))
    with_hook = base + notifier('hook', 'http://127.0.0.1:9/hook')
    r = run_healthd([], env=env, config_text=with_hook, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert says in r.stderr, r.stderr[-2000:]
    # --check-config refuses what the daemon would refuse; --once sends no
    # notification, so needs no libcurl
    r = run_healthd(['--check-config'], env=env, config_text=with_hook)
    assert r.returncode == 2 and says in r.stderr, (r.returncode, r.stderr[-2000:])
    r = run_healthd(['--once'], env=env, config_text=with_hook)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])

    d = daemon(env=env, config_text=base)
    d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
    checks = d.json('/status')['targets']['redis-cache']['checks']
    d.write_config(with_hook)
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: 'reload refused' in d.stderr(), 10, what='the refused reload')
    assert says in d.stderr(), d.stderr()[-2000:]
    assert notifiers(d) == {}, notifiers(d)
    d.wait_for(lambda: d.json('/status')['targets']['redis-cache']['checks'] >= checks + 4, 10,
               what='the old configuration checking on')
    assert statuses(d) == {'redis-cache': 'pass'}


def test_restart_sends_no_duplicate(redis_server, daemon, tmp_path):
    """With a state file, a failure that lasts across a restart of the
    daemon is sent once; its recovery after the restart is sent."""
    state = tmp_path / 'state.json'
    with Receiver() as r:
        config = DAEMON + f'state_file = {state}\n' + redis_targets(
            redis_server.redis_port, names=('redis-cache',)) + notifier('hook', r.url('/hook'))
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        r.wait_count(1, 10, what='the fail')
        # the daemon has its answer (a stop before it would rightly send again)
        d.wait_for(lambda: sent(d, 'hook') == 1, 5, what='the fail acknowledged')
        d.stop()
        d2 = daemon(config_text=config)
        d2.wait_for(lambda: statuses(d2) == {'redis-cache': 'fail'}, 10, what='still down')
        time.sleep(2.0)
        assert webhook_events(r) == [('fail', 'redis-cache')], \
            f'the failure was sent again after the restart: {r.received()}'
        redis_server.start_redis()
        d2.wait_for(lambda: statuses(d2) == {'redis-cache': 'pass'}, 10, what='pass again')
        r.wait_count(2, 10, what='the recovery after the restart')
        time.sleep(1.0)
        assert webhook_events(r) == [('fail', 'redis-cache'), ('pass', 'redis-cache')], \
            r.received()
        assert r.received()[1].json['previous'] == 'fail'

        # down again, and back while the daemon is stopped: the next start
        # tells the receiver, which was last told "fail"
        redis_server.kill_redis(signal.SIGKILL)
        r.wait_count(3, 10, what='the second fail')
        d2.wait_for(lambda: sent(d2, 'hook') == 2, 5, what='the second fail acknowledged')
        d2.stop()
        redis_server.start_redis()
        d3 = daemon(config_text=config)
        d3.wait_for(lambda: statuses(d3) == {'redis-cache': 'pass'}, 10, what='pass at start')
        r.wait_count(4, 10, what='the recovery that happened while the daemon was stopped')
        time.sleep(1.0)
        assert webhook_events(r) == [('fail', 'redis-cache'), ('pass', 'redis-cache')] * 2, \
            r.received()


def test_alertmanager_no_zombie_after_restart(redis_server, daemon, tmp_path):
    """A firing alert is kept in the state file: when its target recovers
    while the daemon is stopped, the next start resolves it in
    Alertmanager (not left firing until its endsAt, minutes later)."""
    state = tmp_path / 'state.json'
    with Receiver() as hook:
        am = Alertmanager(tmp_path / 'am', hook.url('/am')).start()
        try:
            config = DAEMON + f'state_file = {state}\n' + redis_targets(
                redis_server.redis_port, names=('redis-cache',)) + notifier(
                    'am', am.url, kind='alertmanager')
            d = daemon(config_text=config)
            d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
            redis_server.kill_redis(signal.SIGKILL)
            d.wait_for(lambda: am.alerts(active=True), 15, what='the alert active')
            d.stop()
            # a restart while still down: the alert stays, and stays one
            d2 = daemon(config_text=config)
            d2.wait_for(lambda: statuses(d2) == {'redis-cache': 'fail'}, 10, what='still down')
            time.sleep(1.0)
            assert len(am.alerts(active=True)) == 1, am.alerts(active=True)
            d2.stop()
            redis_server.start_redis()
            d3 = daemon(config_text=config)
            d3.wait_for(lambda: statuses(d3) == {'redis-cache': 'pass'}, 10, what='pass at start')
            d3.wait_for(lambda: am.alerts(active=True) == [], 15,
                        what='the alert resolved by the next start')
            d3.wait_for(lambda: any(b and b.get('status') == 'resolved' for b in hook.bodies()),
                        15, what='the resolution through Alertmanager\'s route')
        finally:
            am.stop()


def test_newer_state_replaces_the_queued_one(redis_server, daemon):
    """While a slow receiver holds the fail (8 s), the target comes back,
    fails and comes back again: the queued states replace each other, so
    the receiver gets the fail and then only the latest state, the pass."""
    with Receiver(delay=8.0) as r:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('hook', r.url('/hook'), timeout='15s')
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: r.received(), 10, what='the fail at the (slow) receiver')
        t0 = time.monotonic()
        redis_server.start_redis()
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'fail'}, 10, what='fail')
        redis_server.start_redis()
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        flaps = time.monotonic() - t0
        assert flaps < 7.0, f"the flaps took {flaps:.1f} s, not within the first request"
        assert len(r.received()) == 1, r.received()
        r.wait_count(2, 30, what='the latest state')
        time.sleep(1.0)
        assert webhook_events(r) == [('fail', 'redis-cache'), ('pass', 'redis-cache')], \
            r.received()
        assert sent(d, 'hook') == 2 and sent(d, 'hook', 'dropped') == 2


def test_send_resolved_no(redis_server, daemon):
    """send_resolved = no: the fail is sent, its recovery is not."""
    with Receiver() as r:
        config = DAEMON + redis_targets(redis_server.redis_port, names=('redis-cache',)) \
            + notifier('hook', r.url('/hook'), send_resolved='no')
        d = daemon(config_text=config)
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass')
        redis_server.kill_redis(signal.SIGKILL)
        r.wait_count(1, 10, what='the fail')
        redis_server.start_redis()
        d.wait_for(lambda: statuses(d) == {'redis-cache': 'pass'}, 10, what='pass again')
        time.sleep(1.5)
        assert webhook_events(r) == [('fail', 'redis-cache')], r.received()
