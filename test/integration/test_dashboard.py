"""The /status HTML dashboard in a real browser (issue: service levels,
/metrics and the dashboard, items 4 and 5; SPEC 5 and 8).

Headless Chromium from Debian's packages loads /status from the daemon on
loopback; the tests read the DOM it built (--dump-dom) and keep a
screenshot in test/artifacts/:

- a row per target (tr.target[data-target=NAME]) with its status badge,
  reason, latency, service-level figures, a 24 h availability strip with a
  tooltip per cell and the check-latency history with its scale, and a row
  of what its checks measured (tr.measured), for the five default targets
  of a real stack;
- issue 11: after a real Redis outage the events timeline shows the
  transition, the celery row shows the queue length the test pushed, and
  the page updates itself in place (the DOM read after the script ran);
  its one inline script runs under a Content-Security-Policy nonce;
- a server error carrying `<script>alert(1)</script>` (from a fake Redis,
  test/integration/fakeredis.py) is text in the page, never an element;
- the page is self-contained (nothing from another host; Chromium cannot
  resolve any other host here) and refreshes itself (in place with scripts,
  by <noscript><meta refresh> without);
- content negotiation: a browser gets HTML, curl and tools get JSON;
- with HTTP Basic (the token as password) a browser opens the dashboard,
  which never embeds the token.

Chromium is a hard requirement (Debian package `chromium`, listed in
scripts/debian-packages): without it these tests fail, never skip.
"""

import base64
import html
import html.parser
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest

from fakeredis import XSS, FakeRedis
from helpers import TEST_DIR
from test_redis_core import redis_config

ARTIFACTS = os.path.join(TEST_DIR, 'artifacts')
TOKEN = 'dash-T0ken-93b1f0'
DEFAULT_TARGETS = ('postgres', 'pgbouncer', 'redis-cache', 'redis-channels', 'redis-celery')
BROWSER_ACCEPT = ('text/html,application/xhtml+xml,application/xml;q=0.9,'
                  'image/avif,image/webp,*/*;q=0.8')

# The flags, plus: no QUIC, no proxy from the environment, and no
# name resolves except loopback (so nothing could load from elsewhere).
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update',
                  '--disable-sync', '--disable-quic', '--no-proxy-server',
                  '--disable-default-apps', '--disable-extensions',
                  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']
CHROMIUM_TIMEOUT = 60


def chromium_bin():
    path = shutil.which('chromium')
    if path is None:
        pytest.fail('chromium not found: install Debian\'s `chromium` package '
                    '(listed in scripts/debian-packages)', pytrace=False)
    return path


def chromium(workdir, url, *args):
    """Run headless Chromium once with a fresh profile; -> stdout (text).
    The whole process group is killed when it outlives CHROMIUM_TIMEOUT."""
    profile = tempfile.mkdtemp(prefix='chromium-', dir=workdir)
    argv = [chromium_bin(), *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args, url]
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': profile,
           'LANG': 'C.UTF-8', 'DBUS_SESSION_BUS_ADDRESS': 'disabled:'}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=profile,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f'chromium did not finish within {CHROMIUM_TIMEOUT} s: {argv}')
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stray helpers of this run only
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, \
        f'chromium exited {proc.returncode}:\n{err.decode("utf-8", "replace")[-3000:]}'
    return out.decode('utf-8', 'replace')


def dump_dom(workdir, url):
    dom = chromium(workdir, url, '--dump-dom')
    assert '<html' in dom, f'chromium dumped no document for {url}:\n{dom[:500]}'
    return dom


def screenshot(workdir, url, name, size=(1280, 900)):
    """PNG of the page, kept as test/artifacts/NAME; -> its path."""
    shot = os.path.join(str(workdir), name)
    chromium(workdir, url, f'--screenshot={shot}', f'--window-size={size[0]},{size[1]}',
             '--hide-scrollbars')
    assert os.path.exists(shot), f'chromium wrote no screenshot for {url}'
    with open(shot, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n', f'{shot}: not a PNG'
    width, height = struct.unpack('>II', head[16:24])
    assert (width, height) == size, f'{shot}: {width}x{height}'
    assert os.path.getsize(shot) > 5000, f'{shot}: suspiciously small'
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    tmp = f'{path}.{os.getpid()}.tmp'
    shutil.copyfile(shot, tmp)
    os.replace(tmp, path)
    return path


# ----- a small DOM from the serialised document


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return (self.attrs.get('class') or '').split()

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace('_', '-')) == v for k, v in attrs.items())]

    def text(self):
        return ''.join(c if isinstance(c, str) else c.text() for c in self.children)


class DOM(html.parser.HTMLParser):
    VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link',
            'meta', 'source', 'track', 'wbr'}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node('#document', {})
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def target_rows(dom):
    rows = {}
    for tr in dom.root.find_all('tr', cls='target'):
        name = tr.attrs.get('data-target')
        assert name not in rows, f'two rows for {name}'
        rows[name] = tr
    return rows


def check_row(tr, name, status):
    """A row's status badge, figures and sparkline. `status`: the status,
    or the set of those the target had around the page load."""
    allowed = {status} if isinstance(status, str) else set(status)
    badges = [n for n in tr.find_all(cls='status') if 'badge' in n.classes]
    assert len(badges) == 1, f'{name}: {len(badges)} status badges'
    shown = badges[0].text().strip()
    assert shown in allowed, f'{name}: badge {shown!r}, status was {sorted(allowed)}'
    assert shown in badges[0].classes, f'{name}: badge colour class {badges[0].classes}'
    assert name in tr.text()
    cells = tr.find_all('td')
    assert len(cells) >= 7, f'{name}: {len(cells)} cells'
    text = ' '.join(' '.join(c.text().split()) for c in cells)
    assert re.search(r'\d+(\.\d+)? (ms|s)\b', text), f'{name}: no latency in {text!r}'
    assert re.search(r'\d+\.\d+ ?%', text), f'{name}: no availability in {text!r}'
    sparks = tr.find_all('svg', cls='spark')
    assert len(sparks) == 1, f'{name}: {len(sparks)} sparklines'
    assert sparks[0].find_all('polyline') and sparks[0].find_all('rect'), \
        f'{name}: sparkline without latency line or up/down bars'
    scale = [t.text() for t in sparks[0].find_all('text')]
    assert any(re.match(r'^\d+(\.\d+)? (ms|s)$', t) for t in scale) and '0' in scale, \
        f'{name}: sparkline without its scale: {scale}'
    strips = tr.find_all('svg', cls='strip')
    assert len(strips) == 1, f'{name}: {len(strips)} availability strips'
    cells = strips[0].find_all('rect')
    assert len(cells) == 48, f'{name}: {len(cells)} strip cells'
    tips = [c.find_all('title')[0].text() for c in cells]
    assert all(re.match(r'^\d\d:\d\d\u2013\d\d:\d\d UTC: ', t) for t in tips), tips[:3]
    assert re.search(r'% up of .* watched, \d+ outages?', tips[-1]), tips[-1]
    return text


def measured(dom, name):
    """{data-m: text} of the target's measured-values row."""
    rows = [tr for tr in dom.root.find_all('tr', cls='measured')
            if tr.attrs.get('data-target') == name]
    assert len(rows) == 1, f'{name}: {len(rows)} measured rows'
    return {n.attrs['data-m']: n.text().strip() for n in rows[0].find_all(cls='m')}


def page_script(dom, text):
    """The page's one script: inline, with a nonce, no src."""
    scripts = dom.root.find_all('script')
    assert len(scripts) == 1, f'{len(scripts)} scripts'
    assert 'src' not in scripts[0].attrs
    assert text.lower().count('<script') == 1
    return scripts[0]


def external_refs(dom, text, port):
    """URLs in the document that point anywhere but this daemon."""
    found = []
    for n in dom.root.iter():
        for k, v in n.attrs.items():
            if k in ('src', 'href', 'xlink:href', 'action', 'formaction', 'srcset',
                     'poster', 'data', 'background', 'ping') and v is not None:
                found.append(v)
            if k == 'style' and v:
                found += re.findall(r'url\(\s*[\'"]?([^\'")]+)', v)
        if n.tag == 'style':
            css = n.text()
            found += re.findall(r'url\(\s*[\'"]?([^\'")]+)', css)
            found += re.findall(r'@import\s+[\'"]?([^\'";\s]+)', css)
    found += re.findall(r'url\(\s*[\'"]?([^\'")]+)', text)
    local = (f'http://127.0.0.1:{port}/', f'//127.0.0.1:{port}/')
    bad = []
    for url in found:
        u = url.strip()
        if u.startswith('data:'):
            continue
        if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', u) or u.startswith('//'):
            if not u.startswith(local):
                bad.append(u)
    return bad


def statuses(d, headers=None):
    return {n: t['status'] for n, t in d.json('/status', headers=headers)['targets'].items()}


def dump_with_statuses(d, workdir, url):
    """The DOM of url, and each target's statuses just before and after
    the load (a slow op under load can turn a target warn meanwhile)."""
    before = statuses(d)
    text = dump_dom(workdir, url)
    after = statuses(d)
    return text, {n: {before[n], after[n]} for n in before}


def wait_history(d, checks=3, timeout=15):
    """Every target is up and has run `checks` checks: each sparkline has points."""
    def enough():
        body = d.json('/status')
        return all(t['status'] in ('pass', 'warn') for t in body['targets'].values()) and \
            all(v >= checks for v in _checks_total(d).values())
    d.wait_for(enough, timeout=timeout, interval=0.1, what=f"{checks} checks each, all up")


def _checks_total(d, headers=None):
    text = d.get('/metrics', headers=headers)[2].decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^hdms_healthd_checks_total\{target="([^"]+)"[^}]*\} (\S+)$', text, re.M)}


# ----- tests


def test_dashboard_rows_for_default_targets(stack, daemon, tmp_path):
    d = daemon(env={**stack.env(), 'HEALTHD_INTERVAL': '500ms', 'HEALTHD_TIMEOUT': '250ms'})
    wait_history(d, checks=4)
    url = d.url('/status?format=html')
    text, seen = dump_with_statuses(d, tmp_path, url)
    dom = DOM(text)
    rows = target_rows(dom)
    assert set(rows) == set(DEFAULT_TARGETS), sorted(rows)
    for name in DEFAULT_TARGETS:
        check_row(rows[name], name, seen[name])
    # table order is the configuration's
    assert list(rows) == list(d.json('/status')['targets']), list(rows)
    overall = dom.root.find_all(id='overall')
    assert len(overall) == 1 and overall[0].text().strip() in ('pass', 'warn'), overall
    # what each check measured (SPEC 11)
    pg = measured(dom, 'postgres')
    assert re.match(r'^\d+$', pg['connections']) and pg['role'] == 'primary', pg
    assert pg['bypass'] == '0', pg
    pgb = measured(dom, 'pgbouncer')
    assert re.match(r'^\d+$', pgb['pool-clients']) and pgb['waiting'] == '0', pgb
    cache = measured(dom, 'redis-cache')
    assert {'op-ping', 'op-set', 'op-get', 'op-del', 'memory', 'clients'} <= set(cache), cache
    celery = measured(dom, 'redis-celery')
    assert 'queue-length' in celery and 'consumers' in celery, celery
    # it refreshes itself: in place with scripts, by <meta refresh> without
    served = d.get('/status?format=html')[2].decode()
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', served)
    assert 'hdms-healthd' in dom.root.find_all('title')[0].text()
    # self-contained: one inline script, nothing from another host
    page_script(dom, text)
    assert not dom.root.find_all('link') and not dom.root.find_all('iframe')
    assert external_refs(dom, text, d.port) == []
    assert external_refs(DOM(served), served, d.port) == []
    path = screenshot(tmp_path, url, 'dashboard.png')
    print(f'screenshot: {path}')


def test_server_error_with_markup_renders_as_text(redis_server, daemon, tmp_path):
    with FakeRedis() as fake:
        config = redis_config(redis_server.redis_port, interval='500ms', timeout='250ms')
        config += (f'[target evil-redis]\nkind = redis\nhost = 127.0.0.1\n'
                   f'port = {fake.port}\ndb = 0\nfall = 1\ncritical = no\n')
        d = daemon(config_text=config)
        def settled():
            now = statuses(d)
            return now.pop('evil-redis') == 'fail' and set(now.values()) <= {'pass', 'warn'}
        d.wait_for(settled, timeout=10, what='three up, evil-redis fails')
        evil = d.json('/status')['targets']['evil-redis']
        assert XSS in evil['output'], evil  # the JSON carries it as a string
        assert evil['reason'] == 'server_error', evil
        assert fake.commands, 'the daemon never talked to the fake server'

        served = d.get('/status?format=html')[2].decode()
        assert served.lower().count('<script') == 1, 'markup from the server reached the page'
        assert XSS not in served
        assert html.escape(XSS, quote=True) in served or \
            '&lt;script&gt;alert(1)&lt;/script&gt;' in served, served

        url = d.url('/status?format=html')
        text, seen = dump_with_statuses(d, tmp_path, url)
        dom = DOM(text)
        # no script element was created (the page's own is the only one);
        # the text is in the DOM as text
        page_script(dom, text)
        assert '&lt;script&gt;alert(1)&lt;/script&gt;' in text
        rows = target_rows(dom)
        assert set(rows) == {'redis-cache', 'redis-channels', 'redis-celery', 'evil-redis'}
        check_row(rows['evil-redis'], 'evil-redis', 'fail')
        row_text = rows['evil-redis'].text()
        assert XSS in row_text, row_text
        assert 'server_error' in row_text, row_text
        assert 'not critical' in row_text, row_text
        for name in ('redis-cache', 'redis-channels', 'redis-celery'):
            check_row(rows[name], name, seen[name])
        # the aggregate ignores a non-critical failure
        assert dom.root.find_all(id='overall')[0].text().strip() in ('pass', 'warn')
        path = screenshot(tmp_path, url, 'dashboard-xss.png')
        print(f'screenshot: {path}')


def test_accept_header_chooses_html_or_json(redis_server, daemon, tmp_path):
    d = daemon(config_text=redis_config(redis_server.redis_port))
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=10, what='/readyz 200')
    cases = [
        ('/status', {}, 'application/health+json'),
        ('/status', {'Accept': '*/*'}, 'application/health+json'),
        ('/status', {'Accept': 'application/json'}, 'application/health+json'),
        ('/status', {'Accept': 'application/health+json, text/html;q=0.5'},
         'application/health+json'),
        ('/status', {'Accept': 'text/html'}, 'text/html'),
        ('/status', {'Accept': BROWSER_ACCEPT}, 'text/html'),
        ('/status?format=html', {}, 'text/html'),
        ('/status?format=html', {'Accept': 'application/json'}, 'text/html'),
        ('/status?format=json', {'Accept': BROWSER_ACCEPT}, 'application/health+json'),
    ]
    for path, headers, want in cases:
        status, hdrs, body = d.get(path, headers=headers)
        assert status == 200, (path, headers, status)
        ctype = hdrs.get('Content-Type', '')
        assert ctype.split(';')[0].strip() == want, (path, headers, ctype)
        assert hdrs.get('Cache-Control') == 'no-store', (path, hdrs.items())
        if want == 'text/html':
            assert 'charset=utf-8' in ctype.lower().replace(' ', ''), ctype
            assert body.lstrip().lower().startswith(b'<!doctype html'), body[:80]
        else:
            assert body.lstrip().startswith(b'{'), body[:80]
    # a browser asking for /status itself gets the page
    dom = DOM(dump_dom(tmp_path, d.url('/status')))
    assert set(target_rows(dom)) == {'redis-cache', 'redis-channels', 'redis-celery'}


def test_token_basic_auth_for_browsers(redis_server, daemon, tmp_path):
    d = daemon(config_text=redis_config(redis_server.redis_port),
               env={'HEALTHD_STATUS_TOKEN': TOKEN})
    d.wait_for(lambda: d.get('/readyz')[0] == 200, timeout=10, what='/readyz 200')
    status, hdrs, _ = d.get('/status?format=html', headers={'Accept': BROWSER_ACCEPT})
    assert status == 401
    assert hdrs.get('WWW-Authenticate', '').startswith('Basic'), hdrs.items()
    basic = base64.b64encode(f'anyone:{TOKEN}'.encode()).decode()
    status, hdrs, body = d.get('/status?format=html',
                               headers={'Authorization': f'Basic {basic}'})
    assert status == 200 and hdrs['Content-Type'].startswith('text/html'), status
    assert TOKEN.encode() not in body, 'the page embeds the token'
    assert b'data-target="redis-cache"' in body
    status, _, body = d.get('/status', headers={'Authorization': f'Bearer {TOKEN}'})
    assert status == 200 and TOKEN.encode() not in body
    # in the browser: no credentials, no page; credentials in the URL, the page
    # (headless Chromium answers the Basic challenge by dumping nothing)
    assert 'data-target' not in chromium(tmp_path, d.url('/status?format=html'), '--dump-dom')
    url = f'http://anyone:{TOKEN}@127.0.0.1:{d.port}/status?format=html'
    dom = DOM(chromium(tmp_path, url, '--virtual-time-budget=11000', '--dump-dom'))
    assert set(target_rows(dom)) == {'redis-cache', 'redis-channels', 'redis-celery'}
    # and its in-place updates authenticate too (no credentials in the fetch URL)
    html_el = dom.root.find_all('html')[0]
    assert int(html_el.attrs.get('data-updates', '0')) >= 1, \
        (html_el.attrs, dom.root.find_all(id='note')[0].text())


def test_dashboard_updates_in_place_and_shows_the_record(redis_server, daemon, tmp_path):
    """Issue 11: the timeline shows a real outage, the celery row the queue
    length the test pushed, and the page updates itself without a reload."""
    state = str(tmp_path / 'state.json')
    d = daemon(config_text=redis_config(redis_server.redis_port, interval='500ms',
                                        timeout='250ms', extra=f'state_file = {state}\n'))
    d.wait_for(lambda: set(statuses(d).values()) <= {'pass', 'warn'}, timeout=10,
               what='all up')
    redis_server.kill_redis()
    d.wait_for(lambda: statuses(d)['redis-cache'] == 'fail', timeout=10, what='cache down')
    redis_server.start_redis()  # without persistence: an empty queue
    redis_server.redis_cli('-n', '2', 'RPUSH', 'celery', *[f'job{i}' for i in range(7)])
    d.wait_for(lambda: set(statuses(d).values()) <= {'pass', 'warn'}, timeout=10,
               what='all up again')
    d.wait_for(lambda: d.json('/status')['targets']['redis-celery'].get('lastResult', {})
               .get('status') in ('pass', 'warn') and
               'data-queue="celery">7<' in d.get('/status?format=html')[2].decode(), timeout=10,
               what='the queue length in the page')

    # the CSP: nothing but this page's own nonce'd script and style
    status, hdrs, body = d.get('/status?format=html')
    csp = hdrs['Content-Security-Policy']
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9+/=]{16,})'", csp).group(1)
    assert "default-src 'none'" in csp and 'unsafe-inline' not in csp and \
        'http' not in csp, csp
    served = DOM(body.decode())
    assert page_script(served, body.decode()).attrs.get('nonce') == nonce
    assert served.root.find_all('style')[0].attrs.get('nonce') == nonce
    assert nonce not in d.get('/status?format=html')[1]['Content-Security-Policy']

    # 11 s of the page's time: the script fetches the page twice and swaps
    # the parts that change (html[data-updates] counts the swaps, data-first
    # keeps the time of the page first loaded: a reload would reset both)
    url = d.url('/status?format=html')
    text = chromium(tmp_path, url, '--virtual-time-budget=11000', '--dump-dom')
    dom = DOM(text)
    html_el = dom.root.find_all('html')[0]
    assert int(html_el.attrs.get('data-updates', '0')) >= 1, html_el.attrs
    first = int(html_el.attrs['data-first'])
    generated = dom.root.find_all(id='generated')
    assert len(generated) == 1 and int(generated[0].attrs['data-t']) > first, \
        (first, generated[0].attrs)
    rows = target_rows(dom)
    assert set(rows) == {'redis-cache', 'redis-channels', 'redis-celery'}
    for name in rows:
        check_row(rows[name], name, {'pass', 'warn'})
    assert measured(dom, 'redis-celery')['queue-length'] == '7'
    # the timeline: the transition to fail and the end of the outage
    evs = dom.root.find_all('li', cls='ev')
    trans = [e for e in evs if e.attrs.get('data-type') == 'transition'
             and 'redis-cache' in e.text() and 'fail' in e.text()]
    assert trans, [e.text() for e in evs]
    assert any(e.attrs.get('data-type') == 'outage_end' and 'redis-cache' in e.text()
               for e in evs), [e.text() for e in evs]
    ids = [int(e.attrs['data-id']) for e in evs]
    assert ids == sorted(ids, reverse=True)
    # the strip's last cell tells of the outage
    tip = rows['redis-cache'].find_all('svg', cls='strip')[0].find_all('rect')[-1].text()
    assert re.search(r'[1-9]\d* outages?', tip), tip
    path = screenshot(tmp_path, url, 'dashboard-record.png', size=(1280, 900))
    print(f'screenshot: {path}')
