#!/usr/bin/python3
"""docs/performance.png from bench/run.py's results (matplotlib, Agg).

    bench/chart.py build/bench/results.json [bench/baseline.json] [OUT.png]

Bars are medians, whiskers the spread (min-max) over the runs; dashed red
lines are the issue's goals. With a baseline, "before" bars (grey) stand
beside "after" ones.
"""

import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

AFTER, BEFORE, GOAL = '#2b6cb0', '#b0b7c3', '#c53030'


def _s(r, *path):
    for p in path:
        if not isinstance(r, dict):
            return None
        r = r.get(p)
    return r


def _mm(s, scale=1.0):
    """(median, [lower err, upper err]) of a summary dict, scaled."""
    if not isinstance(s, dict) or s.get('median') is None:
        return None, [0, 0]
    m = s['median'] * scale
    return m, [max(0.0, m - s['min'] * scale), max(0.0, s['max'] * scale - m)]


def _bars(ax, labels, after, before=None, scale=1.0, fmt='{:.0f}'):
    """Grouped bars: after (and before) summary dicts for each label."""
    n = len(labels)
    xs = list(range(n))
    width = 0.38 if before else 0.6
    series = [(after, AFTER, 'after' if before else None, 0.0)]
    if before:
        series = [(before, BEFORE, 'before', -width / 2), (after, AFTER, 'after', width / 2)]
    for data, color, label, off in series:
        meds, errs = [], [[], []]
        for s in data:
            m, e = _mm(s, scale)
            meds.append(m if m is not None else 0)
            errs[0].append(e[0])
            errs[1].append(e[1])
        bars = ax.bar([x + off for x in xs], meds, width, yerr=errs, color=color, label=label,
                      capsize=3, error_kw={'elinewidth': 0.8})
        for b, m in zip(bars, meds):
            if m:
                ax.annotate(fmt.format(m), (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha='center', va='bottom', fontsize=7, xytext=(0, 2),
                            textcoords='offset points')
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    if before:
        ax.legend(fontsize=7, loc='best')


def _goal(ax, y, text, x0=None, x1=None):
    if x0 is None:
        ax.axhline(y, color=GOAL, ls='--', lw=1)
    else:
        ax.hlines(y, x0, x1, colors=GOAL, linestyles='--', lw=1)
    ax.annotate(text, (ax.get_xlim()[1] if x1 is None else x1, y), color=GOAL, fontsize=7,
                ha='right', va='bottom')


def draw(r, base, path):
    fig, axes = plt.subplots(2, 4, figsize=(17, 8.5))
    meta = r.get('meta', {})
    fig.suptitle(f'hdms-healthd benchmarks: {meta.get("binary")} ({meta.get("date")}, '
                 f'{meta.get("cpus")} CPUs, {"quick" if meta.get("quick") else "full"} run)'
                 + ('; grey: before (bench/baseline.json)' if base else ''), fontsize=11)
    b = base or {}

    # 1. memory
    ax = axes[0][0]
    keys = [('rss_kib', 'RSS total'), ('anon_kib', 'anonymous'), ('private_kib', 'private')]
    _bars(ax, [k[1] for k in keys], [_s(r, 'footprint', k[0]) for k in keys],
          [_s(b, 'footprint', k[0]) for k in keys] if base else None, 1 / 1024, '{:.2f}')
    ax.set_title('Idle memory (MiB)', fontsize=9)
    _goal(ax, 12, 'RSS goal 12 MiB', -0.5, 0.5)
    _goal(ax, 2, 'anonymous goal 2 MiB', 0.5, 1.5)

    # 2. idle CPU
    ax = axes[0][1]
    _bars(ax, ['idle CPU'], [_s(r, 'footprint', 'cpu_pct')],
          [_s(b, 'footprint', 'cpu_pct')] if base else None, 1, '{:.3f}')
    ax.set_title('Idle CPU, 5 targets at 1 s (% of a core)', fontsize=9)
    ax.set_xlim(-0.8, 0.8)
    _goal(ax, 0.1, 'goal < 0.1 %')

    # 3. HTTP throughput
    ax = axes[0][2]
    eps = ['readyz', 'status', 'metrics']
    _bars(ax, ['/' + e for e in eps], [_s(r, 'http', 'endpoints', e, 'rps') for e in eps],
          [_s(b, 'http', 'endpoints', e, 'rps') for e in eps] if base else None, 1 / 1000,
          '{:.1f}')
    ax.set_title('HTTP throughput, wrk -t1 -c10 (1,000 req/s)', fontsize=9)
    _goal(ax, 20, '/readyz goal 20k', -0.5, 0.5)
    _goal(ax, 5, '/metrics goal 5k', 1.5, 2.5)

    # 4. HTTP p99
    ax = axes[0][3]
    _bars(ax, ['/' + e for e in eps], [_s(r, 'http', 'endpoints', e, 'p99_ms') for e in eps],
          [_s(b, 'http', 'endpoints', e, 'p99_ms') for e in eps] if base else None, 1, '{:.2f}')
    ax.set_title('HTTP latency p99 (ms)', fontsize=9)
    _goal(ax, 1, '/readyz goal 1 ms', -0.5, 0.5)

    # 5. cost per check
    ax = axes[1][0]
    kinds = list((_s(r, 'cost', 'kinds') or {}).keys())
    _bars(ax, kinds, [_s(r, 'cost', 'kinds', k, 'cpu_us_net') for k in kinds],
          [_s(b, 'cost', 'kinds', k, 'cpu_us_net') for k in kinds] if base else None, 1, '{:.0f}')
    ax.set_title('CPU per check, net of the loop (us)', fontsize=9)
    ax.tick_params(axis='x', labelsize=7)

    # 6. detection
    ax = axes[1][1]
    items = [('Redis\nkill', 'redis', 'kill', 'seen_ms'), ('PG\nkill', 'pg', 'kill', 'seen_ms'),
             ('Redis 1st\npass-acc.', 'redis', 'kill', 'first_pass_after_accept_ms'),
             ('PG 1st\npass-acc.', 'pg', 'kill', 'first_pass_after_accept_ms'),
             ('Redis\nup-acc.', 'redis', 'kill', 'up_after_accept_ms'),
             ('PG\nup-acc.', 'pg', 'kill', 'up_after_accept_ms')]
    _bars(ax, [i[0] for i in items],
          [_s(r, 'detect', 'scenarios', i[1], i[2], i[3]) for i in items],
          [_s(b, 'detect', 'scenarios', i[1], i[2], i[3]) for i in items] if base else None,
          1, '{:.0f}')
    ax.set_title('Detection and recovery (ms)', fontsize=9)
    ax.tick_params(axis='x', labelsize=6.5)
    _goal(ax, 50, '50 ms', -0.5, 1.5)
    _goal(ax, 270, '270 ms', 1.5, 3.5)
    _goal(ax, 500, '500 ms', 3.5, 5.5)

    # 7. scale CPU
    sizes = ['100', '1000']
    ax = axes[1][2]
    _bars(ax, [f'{n} targets' for n in sizes],
          [_s(r, 'scale', 'sizes', n, 'cpu_pct') for n in sizes],
          [_s(b, 'scale', 'sizes', n, 'cpu_pct') for n in sizes] if base else None, 1, '{:.2f}')
    ax.set_title('Scale: daemon CPU (% of a core)', fontsize=9)
    _goal(ax, 10, 'goal < 10 % at 1,000', 0.5, 1.5)

    # 8. scale lag
    ax = axes[1][3]
    _bars(ax, [f'{n} targets' for n in sizes],
          [_s(r, 'scale', 'sizes', n, 'lag_p99_ms') for n in sizes],
          [_s(b, 'scale', 'sizes', n, 'lag_p99_ms') for n in sizes] if base else None, 1,
          '{:.2f}')
    ax.set_title('Scale: loop lag p99 (ms)', fontsize=9)
    _goal(ax, 5, 'goal < 5 ms at 1,000', 0.5, 1.5)

    for row in axes:
        for ax in row:
            ax.grid(axis='y', alpha=0.3)
            ax.tick_params(axis='y', labelsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv):
    import json
    if len(argv) < 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        r = json.load(f)
    base = None
    if len(argv) > 2 and argv[2] != '-':
        with open(argv[2]) as f:
            base = json.load(f)
    draw(r, base, argv[3] if len(argv) > 3 else 'docs/performance.png')


if __name__ == '__main__':
    main(sys.argv)
