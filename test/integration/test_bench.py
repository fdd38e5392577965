"""`make bench` runs: bench/run.py --smoke runs every section once for a
second or two against the release build and a stack of its own, and its
results make the report and the chart. Figures are not judged against
the goals here (benchmarks report them; tests check behaviour), but each
must lie in a plausible range, so that a section that measures nothing, or
measures the wrong thing, cannot rot unseen."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE_BIN = os.environ.get('HEALTHD_RELEASE_BIN', os.path.join(ROOT, 'build', 'hdms-healthd'))


def test_bench_smoke_every_section_and_the_report(tmp_path):
    if not os.access(RELEASE_BIN, os.X_OK):
        pytest.fail(f'{RELEASE_BIN}: missing (run `make`)')
    out = tmp_path / 'results.json'
    r = subprocess.run(['/usr/bin/python3', os.path.join(ROOT, 'bench', 'run.py'), '--smoke',
                        '--bin', RELEASE_BIN, '--out', str(out)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res['meta']['smoke'] is True
    # the report is not written by a smoke run
    assert 'report:' not in r.stdout + r.stderr

    # Plausible ranges, wide enough for a busy 2-core machine and narrow
    # enough that a broken measurement (a wrong pid, a unit off by 1000, a
    # counter read twice, an idle daemon that spins) falls outside them.
    fp = res['footprint']
    assert 256 < fp['anon_kib']['median'] < 64 * 1024, fp['anon_kib']
    assert fp['rss_kib']['median'] >= fp['anon_kib']['median'], (fp['rss_kib'], fp['anon_kib'])
    # five targets at 1 s, idle: some CPU, far from a spinning loop
    assert 0 < fp['cpu_pct']['median'] < 25, fp['cpu_pct']
    # the same figure in two units: 1 % of a core is 10,000 us per second
    assert abs(fp['cpu_us_per_s']['median'] - 1e4 * fp['cpu_pct']['median']) <= \
        1e-6 * fp['cpu_us_per_s']['median'] + 1e-9, (fp['cpu_us_per_s'], fp['cpu_pct'])
    assert 0 < fp['wakeups_per_s']['median'] < 2000, fp['wakeups_per_s']
    # five targets at 1 s, counted from the daemon's start (whose first
    # round comes at once): about 5 a second, 6 in a short run; a counter
    # read twice would be 10 or more
    assert 3 < fp['checks_per_s']['median'] < 9, fp['checks_per_s']
    cr = res['crowd']  # issue 13: the daemon beside the servers' crowd, and the floor
    for label in ('empty', 'crowded'):
        assert 0 < cr[label]['cpu_pct']['median'] < 25, (label, cr[label])
        assert 0 < cr[f'ref_{label}_cpu_pct']['median'] < 25, (label, cr)
    assert cr['pg_clients'] >= 40, cr['pg_clients']
    # the loop sleeps between rounds: at least one wakeup a second (the
    # round's timer), and not hundreds
    for label in ('empty', 'crowded'):
        assert 1 <= cr[label]['loop_wakeups_per_s']['median'] < 200, (label, cr[label])
    # the same checks under callgrind, empty and crowded: instructions per
    # check, and their ratio
    cg = cr['callgrind']
    assert cg is not None, 'the crowd\'s instructions were not counted (valgrind?)'
    for label in ('empty', 'crowded'):
        assert 1e3 < cg[label]['median'] < 1e8, (label, cg)
    # a smoke window holds some ten checks, counted to about one round
    # (callgrind_control acts at the next wakeup), so the ratio of a sound
    # measurement stays within a few tens of percent of 1; a window read
    # twice or a count from the wrong daemon is far outside
    assert 0.3 < cg['ratio'] < 3.5, cg
    # bench/waker.c: a bare wakeup costs something, and less than a second
    assert 'wakeup_us' in cr, 'bench/waker.c did not run'
    assert 0 < cr['wakeup_us']['median'] < 1e6, cr['wakeup_us']
    cost = res['cost']
    for kind in ('redis', 'redis-broker', 'postgres', 'pgbouncer'):
        k = cost['kinds'][kind]
        # one target every 100 ms: about 10 a second
        assert 5 < k['checks_per_s']['median'] < 15, (kind, k['checks_per_s'])
        assert k['failures'] == 0, (kind, k['failures'])
        assert 0 < k['cpu_us_gross']['median'] < 20000, (kind, k['cpu_us_gross'])
        ir = cost['callgrind']['kinds'][kind]['ir_net']['median']
        assert 1e3 < ir < 1e8, (kind, ir)  # instructions per check
    for name in ('readyz', 'status', 'metrics'):
        e = res['http']['endpoints'][name]
        assert 50 < e['rps']['median'] < 1e6 and e['errors'] == 0, (name, e['rps'], e['errors'])
    assert 50 < res['http']['reference']['rps']['median'] < 1e6
    assert 50 < res['http']['small_pool']['rps']['median'] < 1e6
    for server in ('redis', 'pg'):
        kill = res['detect']['scenarios'][server]['kill']
        assert 0 < kill['seen_ms']['median'] < 5000, (server, kill['seen_ms'])
    for size in ('100', '1000'):
        sc = res['scale']['sizes'][size]
        # every target at 1 s: about `size` checks a second (a short window
        # can catch one slot of 32 targets more or less)
        assert sc['expected_checks_per_s']['median'] == int(size), sc['expected_checks_per_s']
        assert 0.5 * int(size) < sc['checks_per_s']['median'] < 1.5 * int(size), \
            (size, sc['checks_per_s'])

    for size in ('5', '1000'):  # issue 11: the state file's figures
        st = res['state']['sizes'][size]
        assert st['bytes']['median'] > 100 * int(size), (size, st['bytes'])
        assert st['serialise_ms']['median'] > 0 and st['writes']['median'] >= 1, (size, st)
        assert st['write_errors']['median'] == 0, (size, st)

    # the report and the chart from these results, into a scratch copy
    root = tmp_path / 'root'
    (root / 'docs').mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, 'docs', 'performance.md'), root / 'docs')
    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    try:
        import report
        report.write_all(res, str(root))
    finally:
        sys.path.remove(os.path.join(ROOT, 'bench'))
    text = (root / 'docs' / 'performance.md').read_text()
    with open(os.path.join(ROOT, 'docs', 'performance.md')) as f:
        before = f.read()
    mark = '<!-- bench:begin'
    assert text.split(mark)[0] == before.split(mark)[0]  # the hand-written part kept
    assert 'smoke (--smoke) run' in text.split(mark)[1]  # the generated part is this run's
    goals = text.split('### Goals')[1].split('###')[0]
    assert 'not measured' not in goals, goals
    assert '### 7. State file' in text
    assert 'The reference client (bench/ref_client.c)' in text.split(mark)[1]
    assert (root / 'docs' / 'performance.png').stat().st_size > 10000
