"""deploy/kubernetes/ checked offline (issue 14, items 1-3; SPEC 14, 5, 8).

- every object of every manifest, the Prometheus Operator's PodMonitor and
  PrometheusRule included, passes test/k8s/validate.js (kubernetes-models
  and @kubernetes-models/prometheus-operator, installed by
  test/k8s/install.sh), and the validator rejects unknown fields, wrong
  types and unknown kinds;
- the PodMonitor and PrometheusRule are what scripts/gen-k8s-rules.py makes
  of etc/prometheus/, and a change of the source is caught as drift;
- the ports agree: the config file's `listen`, the daemon's containerPort,
  every probe, the Service's targetPort and the NetworkPolicy; a probe on a
  wrong port is caught;
- the probes follow docs/kubernetes.md: liveness /livez everywhere, the
  native sidecar's startup /startupz and no readiness, nothing
  dependency-aware deciding a restart; the security context and resources
  are set; the Secret's keys are the files the *_FILE variables name;
- the real daemon, run with the ConfigMap's file and the Deployment's
  environment (addresses pointed at a real local stack, the Secret's keys
  as files), accepts that configuration and serves every probe path the
  manifests use on their port; with Redis killed, /livez and /startupz
  stay 200 while /readyz turns 503: no probe here would restart the daemon
  or unready it because of the stack.

Needs node (Debian's nodejs) and test/k8s/node_modules (`test/k8s/install.sh`,
run by .ci/run); without them these tests fail, never skip.
"""

import copy
import os
import shutil
import subprocess
import time

import pytest
import yaml

from helpers import ROOT

K8S = os.path.join(ROOT, 'deploy', 'kubernetes')
VALIDATOR = os.path.join(ROOT, 'test', 'k8s', 'validate.js')
NODE_MODULES = os.path.join(ROOT, 'test', 'k8s', 'node_modules')
GEN = os.path.join(ROOT, 'scripts', 'gen-k8s-rules.py')
DAEMON_CONTAINER = 'hdms-healthd'
DAEMON_PORT_NAME = 'healthd'
WORKLOADS = (('deployment.yaml', 'Deployment', 'hdms-healthd'),
             ('examples/sidecar.yaml', 'Deployment', 'hdms-web'))


def manifest_files():
    out = []
    for d, _, files in os.walk(K8S):
        out += [os.path.join(d, f) for f in files if f.endswith(('.yaml', '.yml'))]
    return sorted(out)


def load(rel):
    with open(os.path.join(K8S, rel), encoding='utf-8') as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert len(docs) == 1, f'{rel}: one object per file expected'
    return docs[0]


def node():
    path = shutil.which('node') or shutil.which('nodejs')
    if path is None:
        pytest.fail('node not found: install Debian\'s nodejs (scripts/debian-packages-test)',
                    pytrace=False)
    if not os.path.isdir(NODE_MODULES):
        pytest.fail(f'{NODE_MODULES} missing: run test/k8s/install.sh (npm ci; .ci/run does)',
                    pytrace=False)
    return path


def parse_report(out):
    """validate.js output -> {file basename#doc: (ok|FAIL, [problems])}."""
    report, last = {}, None
    for line in out.splitlines():
        if line.startswith(('ok ', 'FAIL ')):
            verdict, where = line.split()[:2]
            last = os.path.basename(where)
            report[last] = (verdict, [])
        elif line.startswith('  ') and last:
            report[last][1].append(line.strip())
    return report


def validate(*paths):
    return subprocess.run([node(), VALIDATOR, *paths], capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)


# ----- schema validation


def test_every_manifest_object_validates_offline():
    files = manifest_files()
    kinds = set()
    count = 0
    for path in files:
        with open(path, encoding='utf-8') as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    count += 1
                    kinds.add(doc['kind'])
    # the objects SPEC 14 lists, CRDs included
    assert {'Deployment', 'Service', 'ConfigMap', 'Secret', 'NetworkPolicy',
            'PodMonitor', 'PrometheusRule'} <= kinds, kinds
    r = validate(K8S)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = [line for line in r.stdout.splitlines() if line.startswith('ok ')]
    assert len(ok) == count, f'{count} objects, validated:\n{r.stdout}'
    assert f'{count} passed, 0 failed' in r.stdout


def test_validator_rejects_unknown_fields_wrong_types_and_kinds(tmp_path):
    dep = load('deployment.yaml')
    side = load('examples/sidecar.yaml')
    pm = load('monitoring/podmonitor.yaml')
    pr = load('monitoring/prometheusrule.yaml')
    cases = []

    def case(obj, want):
        cases.append((obj, want))

    d = copy.deepcopy(dep)
    c = d['spec']['template']['spec']['containers'][0]
    c['livenessProbes'] = c.pop('livenessProbe')  # a typo: the probe is gone
    case(d, 'unknown field spec.template.spec.containers[0].livenessProbes')
    d = copy.deepcopy(dep)
    d['spec']['template']['spec']['containers'][0]['readinessProbe']['httpGet']['paths'] = '/x'
    case(d, 'unknown field spec.template.spec.containers[0].readinessProbe.httpGet.paths')
    d = copy.deepcopy(side)
    d['spec']['template']['spec']['initContainers'][0]['securityContext']['readOnlyRootFs'] = True
    case(d, 'unknown field spec.template.spec.initContainers[0].securityContext.readOnlyRootFs')
    d = copy.deepcopy(dep)
    d['spec']['replicas'] = 'one'
    case(d, 'schema: data/spec/replicas must be integer')
    d = copy.deepcopy(pm)
    d['spec']['podMetricsEndpoints'][0]['targetPortName'] = 'healthd'
    case(d, 'unknown field spec.podMetricsEndpoints[0].targetPortName')
    d = copy.deepcopy(pr)
    d['spec']['groups'][0]['rules'][0]['expression'] = 'up == 0'
    case(d, 'unknown field spec.groups[0].rules[0].expression')
    d = copy.deepcopy(pm)
    d['apiVersion'] = 'monitoring.coreos.com/v2'
    case(d, 'unknown apiVersion/kind monitoring.coreos.com/v2/PodMonitor')

    paths = []
    for i, (obj, _) in enumerate(cases):
        p = tmp_path / f'bad{i}.yaml'
        p.write_text(yaml.safe_dump(obj))
        paths.append(str(p))
    r = validate(*paths)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    report = parse_report(out)
    for (_, want), p in zip(cases, paths):
        got = report.get(os.path.basename(p) + '#0')
        assert got and got[0] == 'FAIL', f'{p} not reported as failed:\n{out}'
        assert want in got[1], f'{want!r} not reported for {p}:\n{out}'
    assert f'0 passed, {len(cases)} failed' in out
    # and the untouched objects still pass
    good = tmp_path / 'good.yaml'
    good.write_text(yaml.safe_dump_all([dep, side, pm, pr]))
    r = validate(str(good))
    assert r.returncode == 0 and '4 passed, 0 failed' in r.stdout, r.stdout + r.stderr


# ----- generated objects


def test_podmonitor_and_prometheusrule_are_generated_and_drift_is_caught(tmp_path):
    r = subprocess.run(['python3', GEN, '--check'], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # A copy of the sources with one alert changed: the committed files no
    # longer match, and --check says which.
    for sub in ('scripts', os.path.join('etc', 'prometheus'),
                os.path.join('deploy', 'kubernetes', 'monitoring')):
        shutil.copytree(os.path.join(ROOT, sub), tmp_path / sub)
    alerts = tmp_path / 'etc' / 'prometheus' / 'alerts.yml'
    text = alerts.read_text()
    assert 'for: 1m' in text
    alerts.write_text(text.replace('for: 1m', 'for: 3m', 1))
    r = subprocess.run(['python3', str(tmp_path / 'scripts' / 'gen-k8s-rules.py'), '--check'],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'deploy/kubernetes/monitoring/prometheusrule.yaml' in r.stderr
    assert 'podmonitor.yaml' not in r.stderr
    # every rule of the sources is in the PrometheusRule, unchanged
    rule = load('monitoring/prometheusrule.yaml')
    groups = []
    for name in ('alerts.yml', 'recording.yml', 'fleet-alerts.yml'):
        with open(os.path.join(ROOT, 'etc', 'prometheus', name), encoding='utf-8') as f:
            groups += yaml.safe_load(f)['groups']
    assert rule['spec']['groups'] == groups


# ----- ports and probes


def config_text():
    return load('configmap.yaml')['data']['hdms-healthd.conf']


def listen_port():
    """The port the daemon listens on in the pod: HEALTHD_LISTEN when the
    Deployment sets it non-empty (the environment wins), else `listen` of
    the ConfigMap's file."""
    env = {e['name']: e.get('value', '') for e in daemon_container(load('deployment.yaml'))['env']}
    if env.get('HEALTHD_LISTEN'):
        return int(env['HEALTHD_LISTEN'].rsplit(':', 1)[1])
    section = None
    for line in config_text().splitlines():
        line = line.split(';', 1)[0].strip()
        if line.startswith('['):
            section = line.strip('[]').strip()
        elif section == 'daemon' and line.startswith('listen'):
            return int(line.split('=', 1)[1].strip().rsplit(':', 1)[1])
    raise AssertionError('configmap.yaml: no [daemon] listen')


def daemon_container(workload):
    spec = workload['spec']['template']['spec']
    found = [c for c in spec.get('containers', []) + spec.get('initContainers', [])
             if c['name'] == DAEMON_CONTAINER]
    assert len(found) == 1, f'{workload["metadata"]["name"]}: no {DAEMON_CONTAINER} container'
    return found[0]


def probes(container):
    return {kind: container[kind] for kind in ('startupProbe', 'livenessProbe', 'readinessProbe')
            if kind in container}


def port_problems(workload, service, netpol, port):
    """What disagrees with the daemon listening on `port`; [] when all agree."""
    problems = []
    c = daemon_container(workload)
    ports = {p.get('name'): p['containerPort'] for p in c.get('ports', [])}
    if ports.get(DAEMON_PORT_NAME) != port:
        problems.append(f'containerPort {DAEMON_PORT_NAME} is {ports.get(DAEMON_PORT_NAME)}, '
                        f'the daemon listens on {port}')
    for kind, probe in probes(c).items():
        p = probe['httpGet']['port']
        got = ports.get(p) if isinstance(p, str) else p
        if got != port:
            problems.append(f'{kind} port {p!r} is {got}, not {port}')
    if service is not None:
        sp = [p for p in service['spec']['ports'] if p['name'] == 'http']
        if len(sp) != 1 or sp[0]['port'] != 8080:
            problems.append(f'Service port http is not 8080: {service["spec"]["ports"]}')
        else:
            t = sp[0]['targetPort']
            got = ports.get(t) if isinstance(t, str) else t
            if got != port:
                problems.append(f'Service targetPort {t!r} is {got}, not {port}')
        labels = workload['spec']['template']['metadata']['labels']
        if any(labels.get(k) != v for k, v in service['spec']['selector'].items()):
            problems.append('the Service does not select the pods')
    if netpol is not None:
        ingress = [p['port'] for rule in netpol['spec']['ingress'] for p in rule['ports']]
        if ingress != [port]:
            problems.append(f'NetworkPolicy lets in {ingress}, not {port}')
    return problems


def test_ports_agree_with_the_listen_address_and_a_wrong_probe_port_is_caught():
    port = listen_port()
    assert port == 8080
    dep = load('deployment.yaml')
    svc = load('service.yaml')
    netpol = load('networkpolicy.yaml')
    assert port_problems(dep, svc, netpol, port) == []
    assert port_problems(load('examples/sidecar.yaml'), None, None, port) == []
    pm = load('monitoring/podmonitor.yaml')
    for rel, _, _ in WORKLOADS:
        w = load(rel)
        names = [p['name'] for p in daemon_container(w)['ports']]
        assert [e['port'] for e in pm['spec']['podMetricsEndpoints']] == [DAEMON_PORT_NAME]
        assert DAEMON_PORT_NAME in names
        labels = w['spec']['template']['metadata']['labels']
        assert all(labels.get(k) == v for k, v in pm['spec']['selector']['matchLabels'].items()), \
            f'{rel}: the PodMonitor does not select these pods'
        # no other container of the pod may take the port name or number
        spec = w['spec']['template']['spec']
        others = [p for c in spec.get('containers', []) + spec.get('initContainers', [])
                  if c['name'] != DAEMON_CONTAINER for p in c.get('ports', [])]
        assert all(p.get('name') != DAEMON_PORT_NAME and p['containerPort'] != port
                   for p in others), others
    assert netpol['spec']['podSelector']['matchLabels'].items() <= \
        dep['spec']['template']['metadata']['labels'].items()

    # the same check catches a probe on the wrong port, by number or name,
    # and a Service pointing elsewhere
    bad = copy.deepcopy(dep)
    daemon_container(bad)['livenessProbe']['httpGet']['port'] = 8081
    assert port_problems(bad, svc, netpol, port) == ["livenessProbe port 8081 is 8081, not 8080"]
    bad = copy.deepcopy(dep)
    daemon_container(bad)['readinessProbe']['httpGet']['port'] = 'metrics'
    assert port_problems(bad, svc, netpol, port) == ["readinessProbe port 'metrics' is None, not 8080"]
    bad_svc = copy.deepcopy(svc)
    bad_svc['spec']['ports'][0]['targetPort'] = 9090
    assert port_problems(dep, bad_svc, netpol, port) == ['Service targetPort 9090 is 9090, not 8080']
    assert port_problems(dep, svc, netpol, 9090)  # a different listen port disagrees


def test_probes_security_and_secrets_follow_the_docs():
    dep = load('deployment.yaml')
    side = load('examples/sidecar.yaml')
    d, s = daemon_container(dep), daemon_container(side)
    path = {k: p['httpGet']['path'] for k, p in probes(d).items()}
    # liveness and readiness of the daemon's own pod never follow the stack
    assert path == {'livenessProbe': '/livez', 'readinessProbe': '/livez'}, path
    # the sidecar: an init container that keeps running, gated on /startupz,
    # live on /livez, and no readiness (it would gate the whole pod)
    spec = side['spec']['template']['spec']
    assert s in spec['initContainers'] and s['restartPolicy'] == 'Always'
    path = {k: p['httpGet']['path'] for k, p in probes(s).items()}
    assert path == {'startupProbe': '/startupz', 'livenessProbe': '/livez'}, path
    assert all('restartPolicy' not in c for c in spec['containers'])

    cm = load('configmap.yaml')
    secret = load('secret.yaml')
    for w in (dep, side):
        pod = w['spec']['template']['spec']
        c = daemon_container(w)
        assert pod['enableServiceLinks'] is False  # REDIS_PORT=tcp://... otherwise
        psc, csc = pod['securityContext'], c['securityContext']
        assert psc['runAsNonRoot'] is True and psc['runAsUser'] != 0
        assert psc['seccompProfile'] == {'type': 'RuntimeDefault'}
        assert csc['readOnlyRootFilesystem'] is True
        assert csc['allowPrivilegeEscalation'] is False
        assert csc['capabilities'] == {'drop': ['ALL']}
        res = c['resources']
        assert set(res['requests']) == set(res['limits']) == {'cpu', 'memory'}
        # the Secret's keys are exactly the files the *_FILE variables read
        vols = {v['name']: v for v in pod['volumes']}
        mounts = {m['mountPath']: vols[m['name']] for m in c['volumeMounts']}
        files = {e['name']: e['value'] for e in c['env'] if e['name'].endswith('_FILE')}
        assert files, 'no *_FILE variables'
        for var, fpath in files.items():
            mdir, key = os.path.split(fpath)
            assert mounts[mdir]['secret']['secretName'] == secret['metadata']['name'], var
        assert sorted(os.path.basename(p) for p in files.values()) == \
            sorted(secret['stringData']), (files, list(secret['stringData']))
        assert set(files) == {'HEALTHD_PG_PASSWORD_FILE', 'PGBOUNCER_ADMIN_PASSWORD_FILE',
                              'REDIS_PASSWORD_FILE', 'HEALTHD_STATUS_TOKEN_FILE'}
        # no secret in plain environment variables
        assert not [e for e in c['env'] if e['name'].endswith(('PASSWORD', 'TOKEN'))]
        conf = [v for v in vols.values() if 'configMap' in v]
        assert [v['configMap']['name'] for v in conf] == [cm['metadata']['name']]
        assert c['args'] == ['-c', '/etc/hdms-healthd/hdms-healthd.conf']


# ----- the real daemon


def manifest_env(workload, stack, secret_dir):
    """The daemon container's environment, with the addresses and the
    PgBouncer console user of the local stack, the *_FILE variables
    pointing into secret_dir (same file names)."""
    env = {}
    for e in daemon_container(workload)['env']:
        v = e.get('value', '')
        if e['name'].endswith('_FILE'):
            v = os.path.join(secret_dir, os.path.basename(v))
        env[e['name']] = v
    local = stack.env()
    for name in ('POSTGRES_HOST', 'POSTGRES_PORT', 'PGBOUNCER_HOST', 'PGBOUNCER_PORT',
                 'REDIS_HOST', 'REDIS_PORT', 'PGBOUNCER_ADMIN_USER'):
        assert name in env, f'the manifest no longer sets {name}'
        env[name] = local[name]
    return env


def write_secrets(secret_dir, stack, token):
    os.makedirs(secret_dir)
    values = {'healthd_pg_password': stack.passwords['healthd'],
              'pgbouncer_stats_password': stack.env()['PGBOUNCER_ADMIN_PASSWORD'],
              'redis_password': stack.redis_password,
              'status_token': token}
    assert sorted(values) == sorted(load('secret.yaml')['stringData'])
    for k, v in values.items():
        with open(os.path.join(secret_dir, k), 'w') as f:
            f.write(v + '\n')


@pytest.mark.parametrize('rel', [w[0] for w in WORKLOADS])
def test_daemon_serves_every_probe_of_the_manifests(rel, make_stack, daemon, run_healthd, tmp_path):
    workload = load(rel)
    container = daemon_container(workload)
    stack = make_stack(redis_password='k8s-redis-pw')
    secret_dir = str(tmp_path / 'secrets')
    token = 'k8s-status-T0ken'
    write_secrets(secret_dir, stack, token)
    env = manifest_env(workload, stack, secret_dir)
    conf = config_text()

    r = run_healthd(['--check-config'], env=env, config_text=conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert token not in r.stdout + r.stderr and 'k8s-redis-pw' not in r.stdout + r.stderr

    d = daemon(env=env, config_text=conf)
    assert listen_port() == 8080  # the pod's port; here the test's own loopback port
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=30, what='/readyz 200')
    paths = {k: p['httpGet']['path'] for k, p in probes(container).items()}
    for kind, path in paths.items():
        status, headers, body = d.get(path)
        assert status == 200, (kind, path, status, body)
        assert headers['Content-Type'].startswith('application/health+json'), (kind, headers)
        assert headers['Cache-Control'] == 'no-store'
    # a path the daemon does not serve is not 200: the check above can fail
    assert d.get('/healthy')[0] == 404
    # the token from the Secret's file guards /status and /metrics
    assert d.get('/metrics')[0] == 401
    assert d.get('/metrics', headers={'Authorization': f'Bearer {token}'})[0] == 200

    # Redis gone: the stack is not ready, yet no probe of the manifests
    # fails (nothing restarts the daemon or unreadies its pod for it).
    stack.kill_redis()
    try:
        d.wait_for(lambda: d.get('/readyz')[0] == 503, timeout=15, what='/readyz 503')
        for _ in range(3):
            for kind, path in paths.items():
                assert d.get(path)[0] == 200, (kind, path, 'with Redis down')
            time.sleep(0.5)
    finally:
        stack.start_redis()
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=30, what='/readyz 200 again')
