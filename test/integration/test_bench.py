"""`make bench` runs: bench/run.py --smoke runs every section once for a
second or two against the release build and a stack of its own, and its
results make the report and the chart. Figures are not judged here
(benchmarks report them; tests check behaviour), only that every section
measured what the report needs, so the bench cannot rot unseen."""
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

    assert res['footprint']['anon_kib']['median'] > 0
    assert res['footprint']['cpu_pct']['median'] >= 0
    for kind in ('redis', 'redis-broker', 'postgres', 'pgbouncer'):
        assert res['cost']['kinds'][kind]['checks_per_s']['median'] > 0, kind
        assert res['cost']['callgrind']['kinds'][kind]['ir_net']['median'] > 0, kind
    for name in ('readyz', 'status', 'metrics'):
        e = res['http']['endpoints'][name]
        assert e['rps']['median'] > 0 and e['errors'] == 0, (name, e['rps'], e['errors'])
    assert res['http']['reference']['rps']['median'] > 0
    assert res['http']['small_pool']['rps']['median'] > 0
    for server in ('redis', 'pg'):
        kill = res['detect']['scenarios'][server]['kill']
        assert 0 < kill['seen_ms']['median'] < 5000, (server, kill['seen_ms'])
    for size in ('100', '1000'):
        sc = res['scale']['sizes'][size]
        assert sc['checks_per_s']['median'] > 0.5 * int(size), (size, sc['checks_per_s'])

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
    assert '### 6. State file' in text
    assert (root / 'docs' / 'performance.png').stat().st_size > 10000
