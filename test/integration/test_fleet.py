"""A fleet Prometheus and the Grafana dashboard against real daemons
(issue 14, items 4 and 5; SPEC 14 and 5).

- etc/prometheus/prometheus.yml, its rule files (alerts.yml, recording.yml,
  fleet-alerts.yml) pass `promtool check config` / `check rules`, and the
  fleet rules pass their multi-stack unit tests (fleet_test.yml);
- a real Prometheus (Debian's, on a loopback port, its own storage) runs
  that very configuration, with only what a test machine cannot have
  swapped: 1 s scrapes, paths into the test's directory, and, because
  Debian's Prometheus is built without Kubernetes discovery, the
  kubernetes job's kubernetes_sd_configs replaced by a file_sd file holding
  the __meta_kubernetes_* labels that discovery would give a pod (its
  relabel rules run unchanged). It scrapes three daemons (the real
  binary, each watching a real local stack) for about 30 s: two as Compose
  hosts of stack "eu", one as a pod in namespace "hdms-us"; a pod port not
  named `healthd` is dropped;
- every series carries the `instance` and `stack` labels the relabelling
  promises, job="hdms-healthd" for both jobs; every rule group evaluates
  without error and the recording rules have series;
- every query of every panel of etc/grafana/hdms-healthd.json, its
  variables substituted (each variable's own query resolved through the
  HTTP API; All, and each instance in turn), returns at least one series
  with a number in it.

Needs Debian's `prometheus` package; without it these tests fail, never skip.
"""

import json
import os
import re
import subprocess
import time

import pytest
import yaml

from helpers import ROOT, read_text, tail, wait_for
from test_metrics import Prometheus, tool

PROM_DIR = os.path.join(ROOT, 'etc', 'prometheus')
PROM_YML = os.path.join(PROM_DIR, 'prometheus.yml')
DASHBOARD = os.path.join(ROOT, 'etc', 'grafana', 'hdms-healthd.json')
TOKEN = 'fleet-T0ken-4b7e'
K8S_POD = 'hdms-healthd-7d9f6c5b8-x2p4q'
SCRAPE_SECONDS = 30
# Grafana's built-in variables, as Grafana would set them for a 5-minute
# view with 1 s scrapes.
BUILTINS = {'$__rate_interval': '1m', '$__interval': '15s', '$__range': '5m'}


def promtool(*args, cwd=None):
    r = subprocess.run([tool('promtool'), *args], capture_output=True, text=True,
                       timeout=60, check=False, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def load_prometheus_yml():
    with open(PROM_YML, encoding='utf-8') as f:
        return yaml.safe_load(f)


def test_rule_files_pass_promtool_and_the_multi_stack_unit_tests():
    conf = load_prometheus_yml()
    files = [os.path.join(PROM_DIR, f) for f in conf['rule_files']]
    assert [os.path.basename(f) for f in files] == ['alerts.yml', 'recording.yml',
                                                    'fleet-alerts.yml']
    rc, out = promtool('check', 'rules', *files)
    assert rc == 0, out
    rc, out = promtool('test', 'rules', 'fleet_test.yml', cwd=PROM_DIR)
    assert rc == 0, out
    # the unit tests cover several stacks and every fleet alert
    with open(os.path.join(PROM_DIR, 'fleet_test.yml'), encoding='utf-8') as f:
        text = f.read()
    assert {'stack="eu"', 'stack="us"'} <= set(re.findall(r'stack="\w+"', text))
    with open(os.path.join(PROM_DIR, 'fleet-alerts.yml'), encoding='utf-8') as f:
        alerts = re.findall(r'^\s*- alert: (\S+)', f.read(), re.M)
    tested = set(re.findall(r'alertname: (\S+)', text))
    assert alerts and set(alerts) <= tested, (alerts, tested)


def test_config_jobs_relabel_to_instance_and_stack():
    conf = load_prometheus_yml()
    jobs = {j['job_name']: j for j in conf['scrape_configs']}
    assert set(jobs) == {'hdms-healthd', 'hdms-healthd-kubernetes'}
    assert 'file_sd_configs' in jobs['hdms-healthd']
    assert jobs['hdms-healthd-kubernetes']['kubernetes_sd_configs'] == [{'role': 'pod'}]
    for job in jobs.values():
        targets = {r.get('target_label') for r in job['relabel_configs']}
        assert {'instance', 'stack'} <= targets, job['job_name']
    # Debian's promtool cannot parse kubernetes_sd_configs (built without
    # it): the unmodified file fails only on that, nothing else.
    rc, out = promtool('check', 'config', PROM_YML)
    if rc != 0:
        assert 'field kubernetes_sd_configs not found' in out, out


def fleet_config(workdir, targets_dir, k8s_dir, token_file):
    """prometheus.yml as shipped, adapted to this machine (see the module
    docstring for exactly what changes)."""
    conf = load_prometheus_yml()
    conf['global'].update(scrape_interval='1s', scrape_timeout='1s', evaluation_interval='1s')
    conf['rule_files'] = [os.path.join(PROM_DIR, f) for f in conf['rule_files']]
    for job in conf['scrape_configs']:
        job['authorization']['credentials_file'] = token_file
        if 'file_sd_configs' in job:
            job['file_sd_configs'] = [{'files': [os.path.join(targets_dir, '*.yml')],
                                       'refresh_interval': '1s'}]
        else:
            assert job.pop('kubernetes_sd_configs') == [{'role': 'pod'}]
            job['file_sd_configs'] = [{'files': [os.path.join(k8s_dir, '*.yml')],
                                       'refresh_interval': '1s'}]
    path = os.path.join(workdir, 'fleet-prometheus.yml')
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(conf, f, sort_keys=False)
    return path


def pod_meta(port, port_name, namespace='hdms-us', pod=K8S_POD):
    """The labels Kubernetes discovery (role pod) gives one container port."""
    return {'targets': [f'127.0.0.1:{port}'],
            'labels': {'__meta_kubernetes_namespace': namespace,
                       '__meta_kubernetes_pod_name': pod,
                       '__meta_kubernetes_pod_label_hdms_healthd_scrape': 'true',
                       '__meta_kubernetes_pod_labelpresent_hdms_healthd_scrape': 'true',
                       '__meta_kubernetes_pod_label_app_kubernetes_io_name': 'hdms-healthd',
                       '__meta_kubernetes_pod_container_name': 'hdms-healthd',
                       '__meta_kubernetes_pod_container_port_name': port_name,
                       '__meta_kubernetes_pod_container_port_number': str(port),
                       '__meta_kubernetes_pod_container_port_protocol': 'TCP',
                       '__meta_kubernetes_pod_container_init': 'false',
                       '__meta_kubernetes_pod_phase': 'Running',
                       '__meta_kubernetes_pod_ready': 'true'}}


def grafana_queries(dash):
    """[(panel title, refId, expr)] of every panel, rows' nested panels too."""
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get('panels', []))
            for t in p.get('targets', []):
                out.append((p['title'], t['refId'], t['expr']))
    walk(dash['panels'])
    return out


def substitute(expr, values):
    """Grafana's variable interpolation for Prometheus: a multi-value
    variable becomes a regex alternation (All: its allValue)."""
    for name, val in BUILTINS.items():
        expr = expr.replace(name, val)
    for name, val in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace('${' + name + '}', val).replace('$' + name, val)
    assert '$' not in expr.replace('$labels', ''), f'unsubstituted variable in {expr}'
    return expr


def promql_regex_escape(value):
    """A value as Grafana puts it into a PromQL regex matcher: regex
    metacharacters escaped, the backslashes doubled for the string."""
    return re.sub(r'[$^*{}\[\]\'+?.()|\\]', lambda m: '\\\\' + m.group(0), value)


def regex_of(values):
    return '(' + '|'.join(promql_regex_escape(v) for v in values) + ')' if len(values) > 1 \
        else promql_regex_escape(values[0])


def label_values(prom, query, values):
    """Resolves Grafana's label_values(selector, label) through the API."""
    m = re.fullmatch(r'label_values\((.*),\s*(\w+)\)', query.strip())
    assert m, f'unsupported variable query {query}'
    selector = substitute(m.group(1), values)
    data = prom.api(f'label/{m.group(2)}/values', **{'match[]': selector})
    return sorted(data)


def has_number(result):
    return any(v[1] not in ('NaN', '+Inf', '-Inf')
               for r in result for v in ([r['value']] if 'value' in r else r['values']))


def test_prometheus_scrapes_three_daemons_and_every_panel_has_data(make_stack, daemon, tmp_path):
    stack = make_stack()
    env = {**stack.env(), 'HEALTHD_STATUS_TOKEN': TOKEN, 'HEALTHD_INTERVAL': '1s',
           'HEALTHD_TIMEOUT': '500ms'}
    daemons = [daemon(env=env) for _ in range(3)]
    for d in daemons:
        d.wait_for(lambda d=d: d.get('/readyz')[0] == 200, timeout=30, what='/readyz 200')

    work = str(tmp_path / 'prom')
    targets_dir, k8s_dir = os.path.join(work, 'targets'), os.path.join(work, 'k8s')
    os.makedirs(targets_dir)
    os.makedirs(k8s_dir)
    token_file = os.path.join(work, 'token')
    with open(token_file, 'w') as f:
        f.write(TOKEN + '\n')
    a, b, c = daemons
    # Compose hosts: a without an instance label (the host part of its
    # address becomes the instance), b with one; both of stack eu.
    with open(os.path.join(targets_dir, 'eu.yml'), 'w') as f:
        yaml.safe_dump([{'targets': [f'127.0.0.1:{a.port}'], 'labels': {'stack': 'eu'}},
                        {'targets': [f'127.0.0.1:{b.port}'],
                         'labels': {'stack': 'eu', 'instance': 'compose-b'}}], f)
    # A pod in namespace hdms-us: its healthd port, and another port of the
    # pod (b's, so a wrong keep rule would show up as a duplicate) that the
    # keep rules must drop.
    with open(os.path.join(k8s_dir, 'pods.yml'), 'w') as f:
        yaml.safe_dump([pod_meta(c.port, 'healthd'), pod_meta(b.port, 'http')], f)
    config = fleet_config(work, targets_dir, k8s_dir, token_file)
    rc, out = promtool('check', 'config', config)
    assert rc == 0, out

    prom = Prometheus(work, 0)  # writes a config of its own: replaced below
    prom.config = config
    prom.start()
    try:
        run_fleet_checks(prom, a, b, c)
    except BaseException:
        print(f'----- {prom.log_path} -----\n{tail(read_text(prom.log_path), 40)}')
        raise
    finally:
        prom.stop()


def run_fleet_checks(prom, a, b, c):
    # Prometheus applies its first target set up to 5 s after it starts.
    wait_for(lambda: prom.value('count(up{job="hdms-healthd"} == 1)') == 3, 40,
             interval=0.5, what='three daemons scraped', check=prom.assert_running)
    t0 = time.monotonic()
    active = prom.api('targets')['activeTargets']
    assert sorted(t['labels']['instance'] for t in active) == \
        sorted(['127.0.0.1', 'compose-b', f'hdms-us/{K8S_POD}']), active
    assert {t['scrapePool'] for t in active} == {'hdms-healthd', 'hdms-healthd-kubernetes'}
    assert all(t['labels']['job'] == 'hdms-healthd' and t['health'] == 'up' for t in active)
    dropped = prom.api('targets', state='dropped')['droppedTargets']
    assert any(t['discoveredLabels'].get('__meta_kubernetes_pod_container_port_name') == 'http'
               for t in dropped), dropped

    # labels on the daemons' own series
    info = prom.query('hdms_healthd_build_info')
    got = sorted((dict(k)['instance'], dict(k)['stack']) for k in info)
    assert got == sorted([('127.0.0.1', 'eu'), ('compose-b', 'eu'),
                          (f'hdms-us/{K8S_POD}', 'hdms-us')]), got

    # about 30 s of scrapes, so that rates and the recording rules have data
    remaining = SCRAPE_SECONDS - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)

    def rules_ok():
        rules = [r for g in prom.api('rules')['groups'] for r in g['rules']]
        return rules and all(r['health'] == 'ok' and r.get('lastEvaluation', '').startswith('2')
                             for r in rules) and rules
    rules = wait_for(rules_ok, 15, interval=0.5, what='every rule evaluated')
    assert rules is not None
    records = [r['name'] for g in prom.api('rules')['groups'] for r in g['rules']
               if r['type'] == 'recording']
    assert len(records) >= 9, records
    for name in records:
        if name.endswith('ratio1h'):
            continue  # no series without a reconnection in the last hour (by design)
        res = prom.api('query', query=name)['result']
        assert res and has_number(res), f'recording rule {name}: {res}'
    up_min = prom.query('stack_target:hdms_healthd_target_up:min')
    stacks = {dict(k)['stack'] for k in up_min}
    assert stacks == {'eu', 'hdms-us'}, up_min
    assert set(up_min.values()) == {1.0}, up_min
    assert prom.value('stack:hdms_healthd_daemons_up:sum{stack="eu"}') == 2

    with open(DASHBOARD, encoding='utf-8') as f:
        dash = json.load(f)
    check_dashboard(prom, dash)


def check_dashboard(prom, dash):
    variables = [v for v in dash['templating']['list'] if v['type'] == 'query']
    assert [v['name'] for v in variables] == ['stack', 'instance', 'target'], variables
    queries = grafana_queries(dash)
    assert len(queries) >= 12, queries
    now = time.time()

    def resolve(chosen):
        """Values of every variable, in order, each query seeing the ones
        before it; `chosen` pins some to a single value."""
        values, options = {}, {}
        for v in variables:
            opts = label_values(prom, v['query']['query'], values)
            assert opts, f'variable {v["name"]}: {v["query"]["query"]} has no values'
            options[v['name']] = opts
            pick = chosen.get(v['name'])
            if pick is None:
                values[v['name']] = v['allValue'] if v.get('includeAll') else regex_of(opts)
            else:
                assert pick in opts, (v['name'], pick, opts)
                values[v['name']] = promql_regex_escape(pick)
        return values, options

    values, options = resolve({})
    assert len(options['instance']) == 3 and len(options['stack']) == 2, options
    assert {'postgres', 'pgbouncer', 'redis-cache', 'redis-channels',
            'redis-celery'} <= set(options['target']), options
    # the multi-value form Grafana sends when several values are ticked
    multi = {**values, 'instance': regex_of(options['instance'])}
    choices = [values, multi] + [resolve({'instance': i})[0] for i in options['instance']]
    empty = []
    for vals in choices:
        for title, ref, expr in queries:
            q = substitute(expr, vals)
            res = prom.api('query_range', query=q, start=now - 60, end=now, step='5')['result']
            if not res or not has_number(res):
                empty.append(f'{title} [{ref}] with {vals}: {q} -> {res}')
    assert not empty, 'panels without data:\n' + '\n'.join(empty)

    # the same substitution leaves nothing for an instance that does not
    # exist: the check above would catch a query that ignores its variables
    ghost = {**values, 'instance': 'no-such-instance'}
    for title, ref, expr in queries:
        if '$instance' in expr:
            q = substitute(expr, ghost)
            assert not prom.api('query', query=q)['result'], (title, ref, q)


def test_dashboard_is_well_formed():
    with open(DASHBOARD, encoding='utf-8') as f:
        dash = json.load(f)
    assert dash['uid'] == 'hdms-healthd' and dash['title']
    ids = []
    titles = set()
    for p in dash['panels']:
        ids.append(p['id'])
        if p['type'] == 'row':
            continue
        titles.add(p['title'])
        assert p['datasource'] == {'type': 'prometheus', 'uid': '${datasource}'}, p['title']
        assert {'x', 'y', 'w', 'h'} <= set(p['gridPos']) and p['gridPos']['x'] + \
            p['gridPos']['w'] <= 24, p['title']
        for t in p['targets']:
            assert t['expr'] and t['refId'], p['title']
            # every per-daemon query is filtered by the dashboard's variables
            if 'hdms_healthd_' in t['expr'] and ':' not in t['expr'].split('{')[0]:
                assert '$instance' in t['expr'], (p['title'], t['expr'])
    assert len(ids) == len(set(ids)), ids
    queries = ' '.join(e for _, _, e in grafana_queries(dash))
    # the views the issue asks for
    for metric in ('hdms_healthd_target_status', 'hdms_healthd_availability_ratio',
                   'hdms_healthd_reconnect_duration_seconds_bucket',
                   'hdms_healthd_redis_op_duration_seconds_bucket',
                   'hdms_healthd_redis_queue_length', 'hdms_healthd_redis_queue_consumers',
                   'hdms_healthd_pgbouncer_clients_waiting', 'hdms_healthd_postgres_connections',
                   'hdms_healthd_postgres_bypass_backends', 'hdms_healthd_loop_lag_seconds_bucket'):
        assert metric in queries, metric
    names = [v['name'] for v in dash['templating']['list']]
    assert {'instance', 'target'} <= set(names), names
