"""The Debian package and its systemd unit (SPEC 14, issue 16).

The package is built with `dpkg-buildpackage -us -uc -b` in a throwaway copy
of the source tree (so no debian/ build files are left in the checkout), then
its contents, lintian's verdict and the unit (`systemd-analyze verify` and
`security`) are checked.  Where root allows, it is installed into a fresh
Debian 12 root made by debootstrap from the mirror this machine's apt uses,
and the packaged daemon runs there.
"""
import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from helpers import ROOT
from localstack import free_port

PKG = 'hdms-healthd'
SUITE = 'bookworm'
TOOLS = ('dpkg-buildpackage', 'dh', 'lintian', 'systemd-analyze', 'fakeroot')
UNIT = 'hdms-healthd.service'


def makefile_version():
    with open(os.path.join(ROOT, 'Makefile')) as f:
        return re.search(r'^VERSION\s*:=\s*(\S+)', f.read(), re.M).group(1)


def run(argv, timeout=120, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    return r


def copy_source_tree(dest):
    """The files git knows (tracked, or new and not ignored); a tree that is
    not a git checkout is copied without build/ and .git/."""
    r = run(['git', '-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'])
    if r.returncode != 0:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns('build', '.git', 'artifacts'))
        return
    for rel in filter(None, r.stdout.split('\0')):
        src = os.path.join(ROOT, rel)
        if not os.path.lexists(src):  # deleted but not yet committed
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)


@pytest.fixture(scope='module')
def package():
    """Builds the package once for this module -> dict of paths."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f'missing {", ".join(missing)}: install the packages listed in '
                    f'scripts/debian-packages-test (debhelper, lintian, fakeroot, systemd)')
    work = tempfile.mkdtemp(prefix='hdms-deb-')
    src = os.path.join(work, f'{PKG}-{makefile_version()}')
    try:
        copy_source_tree(src)
        t0 = time.monotonic()
        r = run(['dpkg-buildpackage', '-us', '-uc', '-b'], timeout=900, cwd=src)
        took = time.monotonic() - t0
        log = r.stdout + r.stderr
        assert r.returncode == 0, f'dpkg-buildpackage failed:\n{log[-4000:]}'
        print(f'dpkg-buildpackage took {took:.1f} s')
        deb = os.path.join(work, f'{PKG}_{makefile_version()}_amd64.deb')
        assert os.path.exists(deb), f'no {os.path.basename(deb)}; built: {os.listdir(work)}'
        tree = os.path.join(work, 'extracted')
        subprocess.run(['dpkg-deb', '-x', deb, tree], check=True)
        yield {'work': work, 'src': src, 'deb': deb, 'tree': tree, 'log': log,
               'changes': glob.glob(os.path.join(work, '*.changes'))[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def deb_field(deb, field):
    return subprocess.run(['dpkg-deb', '-f', deb, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_contents(package):
    deb = package['deb']
    listing = subprocess.run(['dpkg-deb', '-c', deb], capture_output=True, text=True,
                             check=True).stdout
    files = {line.split()[-1].lstrip('.') for line in listing.splitlines()}
    for path in ('/usr/bin/hdms-healthd', '/usr/share/man/man8/hdms-healthd.8.gz',
                 '/etc/hdms-healthd/hdms-healthd.conf', '/lib/systemd/system/hdms-healthd.service',
                 '/usr/share/doc/hdms-healthd/copyright', '/usr/share/doc/hdms-healthd/systemd.md.gz'):
        assert path in files, f'{path} not in the package:\n{listing}'
    assert not [f for f in files if f.startswith('/usr/local')], listing
    assert re.search(r'^-rwxr-xr-x root/root .* \./usr/bin/hdms-healthd$', listing, re.M), listing

    # The version is the Makefile's, and the configuration is a conffile.
    assert deb_field(deb, 'Version') == makefile_version()
    ctrl = os.path.join(package['work'], 'control')
    subprocess.run(['dpkg-deb', '-e', deb, ctrl], check=True)
    assert open(os.path.join(ctrl, 'conffiles')).read().split() == \
        ['/etc/hdms-healthd/hdms-healthd.conf']
    depends = deb_field(deb, 'Depends')
    for lib in ('libpq5', 'libhiredis0.14', 'libevent-2.1-7', 'libmicrohttpd12', 'libjansson4',
                'libinih1', 'procps'):
        assert re.search(rf'(^|, ){re.escape(lib)}( |,|$)', depends), depends

    # Built with the release flags, dpkg-buildflags' (-Werror=format-security
    # is theirs) and without -Werror.
    compile_lines = [line for line in package['log'].splitlines()
                     if ' -c -o build/obj/' in line]
    assert compile_lines, package['log'][-3000:]
    for line in compile_lines:
        assert '-Werror ' not in line + ' ' and '-D_FORTIFY_SOURCE=2' in line, line
        assert '-Werror=format-security' in line and '-fstack-protector-strong' in line, line
    binary = os.path.join(package['tree'], 'usr/bin/hdms-healthd')
    dyn = run(['readelf', '-d', binary]).stdout
    assert re.search(r'\b(BIND_NOW|NOW)\b', dyn), dyn  # hardening=+all: bindnow
    assert 'DYN (Position-Independent Executable' in run(['readelf', '-h', binary]).stdout

    # The packaged binary runs, and its configuration is valid and points at
    # this host's servers rather than the Compose service names.
    r = run([binary, '--version'])
    assert r.returncode == 0 and r.stdout.strip() == f'hdms-healthd {makefile_version()}', r
    conf = os.path.join(package['tree'], 'etc/hdms-healthd/hdms-healthd.conf')
    hosts = re.findall(r'^host = (\S+)$', open(conf).read(), re.M)
    assert hosts and set(hosts) == {'127.0.0.1'}, hosts
    r = run([binary, '--check-config', '-c', conf])
    assert r.returncode == 0, r.stderr


def test_lintian(package):
    r = run(['lintian', '--fail-on', 'error,warning', '--info', '-I', package['changes']],
            timeout=600)
    tags = [line for line in r.stdout.splitlines() if re.match(r'^[EWIPXO]: ', line)]
    print('lintian:\n' + '\n'.join(tags))
    assert r.returncode == 0, f'lintian found errors or warnings:\n{r.stdout}\n{r.stderr}'
    assert not [t for t in tags if t.startswith(('E:', 'W:'))], tags


def unit_root(package):
    """The package's files over the parts of this Debian system the unit
    refers to (its targets, /bin/kill), for an offline verify."""
    root = os.path.join(package['work'], 'verify-root')
    if not os.path.exists(root):
        shutil.copytree(package['tree'], root, symlinks=True)
        os.makedirs(os.path.join(root, 'bin'), exist_ok=True)
        shutil.copy2('/bin/kill', os.path.join(root, 'bin/kill'))
        units = os.path.join(root, 'lib/systemd/system')
        for name in os.listdir('/lib/systemd/system'):
            src = os.path.join('/lib/systemd/system', name)
            if not os.path.lexists(os.path.join(units, name)) and not os.path.isdir(src):
                shutil.copy2(src, units, follow_symlinks=False)
    return root


def test_unit_verifies(package):
    root = unit_root(package)
    unit = open(os.path.join(root, 'lib/systemd/system/hdms-healthd.service')).read()
    for line in ('Type=notify', 'ExecStart=/usr/bin/hdms-healthd -c /etc/hdms-healthd/hdms-healthd.conf',
                 'ExecReload=/bin/kill -HUP $MAINPID', 'StateDirectory=hdms-healthd',
                 'Environment=HEALTHD_STATE_FILE=/var/lib/hdms-healthd/state.json',
                 'Restart=on-failure', 'DynamicUser=yes', 'ProtectSystem=strict',
                 'CapabilityBoundingSet=', 'SystemCallFilter=@system-service',
                 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'):
        assert re.search(rf'^{re.escape(line)}$', unit, re.M), line
    assert re.search(r'^WatchdogSec=\d+s$', unit, re.M)
    # MANPATH: the man page check looks for hdms-healthd(8) in the package.
    r = run(['systemd-analyze', 'verify', f'--root={root}', 'hdms-healthd.service'],
            env={**os.environ, 'MANPATH': os.path.join(root, 'usr/share/man')})
    # Unknown keys and bad values are warnings with exit status 0: any output
    # at all is a finding.
    assert r.returncode == 0 and r.stdout + r.stderr == '', r.stdout + r.stderr

    # The exposure figure docs/systemd.md reports (0 best, 10 worst).
    r = run(['systemd-analyze', 'security', '--offline=yes', f'--root={root}',
             '--no-pager', 'hdms-healthd.service'])
    m = re.search(r'Overall exposure level for hdms-healthd\.service: (\d+\.\d+) (\w+)', r.stdout)
    assert m, r.stdout + r.stderr
    print(f'systemd-analyze security: {m.group(1)} {m.group(2)}')
    assert float(m.group(1)) <= 2.0, r.stdout


def apt_mirror(suite=SUITE):
    """The first Debian mirror this machine's apt sources list for `suite`."""
    paths = ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')) + \
        sorted(glob.glob('/etc/apt/sources.list.d/*.sources'))
    for path in paths:
        if not os.path.exists(path):
            continue
        text = open(path).read()
        if path.endswith('.sources'):
            for stanza in re.split(r'\n\s*\n', text):
                fields = dict(re.findall(r'^([A-Za-z-]+):\s*(.*)$', stanza, re.M))
                if 'deb' in fields.get('Types', '').split() and \
                        suite in fields.get('Suites', '').split() and \
                        fields.get('Enabled', 'yes') != 'no' and fields.get('URIs'):
                    return fields['URIs'].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r'\[[^]]*\]', '', line.split('#')[0]).split()
                if len(words) >= 3 and words[0] == 'deb' and words[2] == suite:
                    return words[1]
    return None


def package_names(depends):
    """'a (>= 1), b | c' -> ['a', 'b']: the first of each alternative."""
    return [d.split('|')[0].split('(')[0].strip() for d in depends.split(',') if d.strip()]


class Container:
    """A Debian root booted by systemd-nspawn with its own systemd 252 as
    PID 1, in a network namespace of its own (loopback only); commands run
    inside with nsenter."""

    def __init__(self, root, log_path):
        self.log_path = log_path
        self.log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            ['systemd-nspawn', '--quiet', '--directory', root, '--boot', '--register=no',
             '--keep-unit', '--private-network', f'--machine=hdms-test-{os.getpid()}'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.leader = None
        end = time.monotonic() + 30
        while self.leader is None and time.monotonic() < end:
            kids = run(['pgrep', '-P', str(self.proc.pid)]).stdout.split()
            self.leader = kids[0] if kids else None
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        assert self.leader, f'systemd-nspawn did not boot the root:\n{self.output()}'

    def output(self):
        self.log.flush()
        return open(self.log_path, errors='replace').read()[-3000:]

    def run(self, *argv, timeout=60):
        return run(['nsenter', '-t', self.leader, '-m', '-u', '-i', '-n', '-p', *argv],
                   timeout=timeout)

    def show(self, prop):
        return self.run('systemctl', 'show', '-p', prop, '--value', UNIT).stdout.strip()

    def journal(self):
        return self.run('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat').stdout

    def wait(self, predicate, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.3)
        raise AssertionError(f'timed out after {timeout} s waiting for {what}; journal:\n'
                             f'{self.journal()[-3000:]}')

    def poweroff(self):
        """SIGTERM asks nspawn for a clean shutdown of the container."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # nspawn 252 outside a systemd host leaves this empty directory.
        try:
            os.rmdir(f'/run/systemd/nspawn/propagate/hdms-test-{os.getpid()}')
        except OSError:
            pass


def check_under_systemd(root, tmp_path):
    """The installed unit under a real systemd 252: ready, status, /livez,
    reload, the state directory, a restart by the watchdog, a clean stop."""
    box = Container(root, str(tmp_path / 'nspawn.log'))
    try:
        # The package enabled the unit, so booting starts it; `active` means
        # systemd received READY=1 (Type=notify).
        box.wait(lambda: box.show('ActiveState') == 'active', 60, f'{UNIT} active')
        box.wait(lambda: re.match(r'^5 targets: ', box.show('StatusText')), 10, 'a STATUS= line')
        r = box.run('hdms-healthd', 'probe', 'http://127.0.0.1:8080/livez')
        assert r.returncode == 0 and r.stdout.startswith('200 '), r
        assert box.show('WatchdogUSec') in ('10s', '10000000'), box.show('WatchdogUSec')

        r = box.run('systemctl', 'reload', UNIT)
        assert r.returncode == 0, r.stdout + r.stderr
        box.wait(lambda: 'configuration reloaded' in box.journal(), 10, 'the reload')
        # StateDirectory= made the dynamic user's directory, where
        # HEALTHD_STATE_FILE points.
        r = box.run('readlink', '/var/lib/hdms-healthd')
        assert r.stdout.strip() == 'private/hdms-healthd', r
        env = box.show('Environment')
        assert 'HEALTHD_STATE_FILE=/var/lib/hdms-healthd/state.json' in env, env

        # A stopped loop sends no WATCHDOG=1: systemd kills it after
        # WatchdogSec (10 s) and Restart=on-failure starts it again.
        pid = box.show('MainPID')
        assert box.run('kill', '-STOP', pid).returncode == 0
        box.wait(lambda: box.show('NRestarts') == '1' and box.show('ActiveState') == 'active'
                 and box.show('MainPID') not in ('0', pid), 40, 'a restart by the watchdog')
        assert 'Watchdog timeout' in box.journal()

        r = box.run('systemctl', 'stop', UNIT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (box.show('Result'), box.show('ExecMainStatus')) == ('success', '0'), \
            box.journal()[-3000:]
    finally:
        box.poweroff()


def test_installs_and_runs_in_a_clean_debian_12_root(package, tmp_path):
    """Where root allows: debootstrap needs root (chroot, device nodes)."""
    if os.geteuid() != 0:
        pytest.skip('CLEAN-ROOT INSTALL NOT RUN: debootstrap and chroot need root; '
                    'run the integration tests as root (as .ci/run does)')
    for tool in ('debootstrap', 'systemd-nspawn'):
        if shutil.which(tool) is None:
            pytest.fail(f'{tool} is missing: install scripts/debian-packages-test')
    mirror = apt_mirror()
    assert mirror, f'no "{SUITE}" mirror in /etc/apt/sources.list or sources.list.d'
    deb = package['deb']
    # The package's own dependencies go into the bootstrap, so dpkg -i below
    # checks that Depends names everything the binary needs; systemd comes
    # along as on any Debian 12 host, to verify the installed unit there.
    include = sorted(set(package_names(deb_field(deb, 'Depends'))) | {'systemd'})
    root = tempfile.mkdtemp(prefix='hdms-bookworm-', dir='/var/tmp')
    os.chmod(root, 0o755)  # it becomes "/": the service's dynamic user must traverse it
    proc = None
    try:
        t0 = time.monotonic()
        r = run(['debootstrap', '--variant=minbase', f'--include={",".join(include)}',
                 SUITE, root, mirror], timeout=1200)
        boot = time.monotonic() - t0
        assert r.returncode == 0, f'debootstrap from {mirror} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
        shutil.copy(deb, os.path.join(root, 'tmp'))
        r = run(['chroot', root, 'dpkg', '-i', f'/tmp/{os.path.basename(deb)}'])
        assert r.returncode == 0, r.stdout + r.stderr
        r = run(['chroot', root, 'dpkg-query', '-W', '-f', '${db:Status-Status}', PKG])
        assert r.stdout == 'installed', r
        # deb-systemd-helper enabled the unit.
        assert os.path.islink(os.path.join(
            root, 'etc/systemd/system/multi-user.target.wants/hdms-healthd.service'))

        r = run(['chroot', root, 'hdms-healthd', '--version'])
        assert r.returncode == 0 and r.stdout.strip() == f'hdms-healthd {makefile_version()}', r
        r = run(['chroot', root, 'hdms-healthd', '--check-config',
                 '-c', '/etc/hdms-healthd/hdms-healthd.conf'])
        assert r.returncode == 0 and '[target postgres]' in r.stdout, r.stdout + r.stderr
        r = run(['chroot', root, 'systemd-analyze', 'verify', '--man=no', 'hdms-healthd.service'])
        assert r.returncode == 0 and r.stdout + r.stderr == '', r.stdout + r.stderr

        # The packaged release binary as its unit runs it: ready over
        # sd_notify (an abstract socket reaches through the chroot), /livez
        # answers, SIGTERM stops it cleanly.
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f'hdms-pkg-{os.getpid()}'
        notify.bind('\0' + name)
        notify.settimeout(15)
        port = free_port()
        proc = subprocess.Popen(
            ['chroot', root, 'hdms-healthd', '-c', '/etc/hdms-healthd/hdms-healthd.conf',
             '-l', f'127.0.0.1:{port}'],
            env={'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'NOTIFY_SOCKET': '@' + name,
                 'WATCHDOG_USEC': '2000000',
                 'HEALTHD_STATE_FILE': '/var/lib/hdms-healthd/state.json',
                 'HEALTHD_NAMESERVERS': f'127.0.0.1:{free_port(udp=True)}'},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            first = notify.recv(4096).decode()
            assert first.startswith('READY=1\n') and 'STATUS=5 targets' in first, first
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
            conn.request('GET', '/livez')
            assert conn.getresponse().status == 200
            conn.close()
            assert notify.recv(4096).decode().startswith(('WATCHDOG=1', 'STATUS='))
        finally:
            notify.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out

        t1 = time.monotonic()
        check_under_systemd(root, tmp_path)
        booted = time.monotonic() - t1
        total = time.monotonic() - t0
        print(f'clean-root install: debootstrap {boot:.0f} s, under systemd {booted:.0f} s, '
              f'all {total:.0f} s')
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        # Nothing is mounted in the root, so removing it touches nothing else.
        shutil.rmtree(root, ignore_errors=True)
