"""The release build under valgrind memcheck: an outage, a reload and a
clean stop, with no memory error and no leak; with a state file (the writer
thread, restoring a changed target on reload, the final write) and a second
start that restores it; and with notifiers (libcurl), one of them hung at
the stop."""
import os
import signal
import subprocess

from fakeservers import FakeServer
from helpers import ROOT
from receivers import Receiver
from test_redis_core import redis_config, all_status


def test_memcheck_outage_reload_stop(redis_server, daemon, tmp_path):
    binary = os.path.join(ROOT, 'build', 'hdms-healthd')
    assert os.access(binary, os.X_OK), 'run `make` first: build/hdms-healthd is missing'
    log = tmp_path / 'valgrind.log'
    wrapper = tmp_path / 'vg.sh'
    wrapper.write_text('#!/bin/sh\nexec valgrind --error-exitcode=99 --leak-check=full '
                       '--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect '
                       f'--log-file={log} {binary} "$@"\n')
    wrapper.chmod(0o755)
    state = tmp_path / 'state.json'
    text = redis_config(redis_server.redis_port, interval='500ms', timeout='200ms',
                        extra=f'state_file = {state}\nstate_interval = 500ms\n')
    text += '[target down]\nkind = postgres\nhost = 127.0.0.1\nport = 1\ncritical = no\n'
    d = daemon(config_text=text, binary=str(wrapper))
    d.wait_for(lambda: all_status(d, 'pass') is False and d.get('/readyz')[0] == 200,
               timeout=30, what='ready under valgrind')
    for path in ('/status', '/metrics', '/status?format=html', '/readyz', '/nope',
                 '/events', '/events?type=transition&limit=2', '/events?limit=0'):
        d.get(path, timeout=10)
    redis_server.kill_redis(signal.SIGKILL)
    d.wait_for(lambda: d.get('/readyz', timeout=10)[0] == 503, timeout=30)
    redis_server.start_redis()
    d.wait_for(lambda: d.get('/readyz', timeout=10)[0] == 200, timeout=30)
    d.write_config(text.replace('db = 1\n', 'db = 4\n'))
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: any('reloaded' in e.get('msg', '') for e in d.logs()), timeout=30)
    d.get('/status', timeout=10)
    d.signal(signal.SIGTERM)
    try:
        d.proc.wait(60)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        raise
    report = log.read_text()
    assert d.proc.returncode == 0, f'valgrind exit {d.proc.returncode}:\n{report[-4000:]}'
    assert 'HEAP SUMMARY' in report, 'valgrind did not run:\n' + report[-2000:]
    assert 'ERROR SUMMARY: 0 errors' in report, report[-4000:]
    assert '"type":"stop"' in state.read_text()

    # a second start restores the file, then stops again
    log.unlink()
    d2 = daemon(config_text=text, binary=str(wrapper))
    d2.wait_for(lambda: d2.get('/readyz', timeout=10)[0] == 200, timeout=30,
                what='ready again under valgrind')
    assert any(e['type'] == 'start' and e['restored'] for e in d2.json('/events', timeout=10)['events'])
    d2.signal(signal.SIGTERM)
    try:
        d2.proc.wait(60)
    except subprocess.TimeoutExpired:
        d2.proc.kill()
        raise
    report = log.read_text()
    assert d2.proc.returncode == 0, f'valgrind exit {d2.proc.returncode}:\n{report[-4000:]}'
    assert 'ERROR SUMMARY: 0 errors' in report, report[-4000:]


def test_memcheck_notifier_hung_at_stop(redis_server, daemon, tmp_path):
    """Notifications under valgrind (SPEC 12): one delivered, one retried
    after a 500, and one to a receiver that accepts and never answers,
    still in flight at SIGTERM: a clean stop, no memory error, no leak."""
    binary = os.path.join(ROOT, 'build', 'hdms-healthd')
    assert os.access(binary, os.X_OK), 'run `make` first: build/hdms-healthd is missing'
    log = tmp_path / 'valgrind.log'
    wrapper = tmp_path / 'vg.sh'
    wrapper.write_text('#!/bin/sh\nexec valgrind --error-exitcode=99 --leak-check=full '
                       '--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect '
                       f'--log-file={log} {binary} "$@"\n')
    wrapper.chmod(0o755)
    with Receiver() as ok, Receiver(answers=[500]) as retry, FakeServer(mode='silent') as hung:
        text = redis_config(redis_server.redis_port, interval='500ms', timeout='200ms')
        for name, url in (('ok', ok.url('/ok')), ('retry', retry.url('/retry')),
                          ('hung', f'http://127.0.0.1:{hung.port}/hung')):
            text += f'[notify {name}]\nkind = webhook\nurl = {url}\ntimeout = 30s\n\n'
        d = daemon(config_text=text, binary=str(wrapper))
        d.wait_for(lambda: all_status(d, 'pass') and d.get('/readyz')[0] == 200,
                   timeout=30, what='ready under valgrind')
        redis_server.kill_redis(signal.SIGKILL)
        d.wait_for(lambda: all_status(d, 'fail'), timeout=30, what='down under valgrind')
        ok.wait_count(3, 30, what='the fails delivered')
        retry.wait_count(2, 30, what='the retry after the 500')
        d.wait_for(lambda: hung.accepted >= 1 and hung.bytes_in > 0, timeout=30,
                   what='a request sent to the hung receiver')
        for path in ('/status', '/metrics', '/events?type=notify_failed'):
            d.get(path, timeout=10)
        d.signal(signal.SIGTERM)
        try:
            d.proc.wait(60)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            raise
    report = log.read_text()
    assert d.proc.returncode == 0, f'valgrind exit {d.proc.returncode}:\n{report[-4000:]}'
    assert 'HEAP SUMMARY' in report, 'valgrind did not run:\n' + report[-2000:]
    assert 'ERROR SUMMARY: 0 errors' in report, report[-4000:]
