#!/usr/bin/python3
"""A throwaway PostgreSQL + PgBouncer + Redis stack on 127.0.0.1.

Starts the servers from Debian's packages on free high ports inside one
directory, without systemd, for the integration tests and `make demo`.
Standard library only. As a module: `Stack(dir).start()`. As a CLI:

    test/localstack.py up --dir DIR [--redis-password P]   # foreground
    test/localstack.py down --dir DIR

Layout of DIR: pgdata/ (PGDATA), sock/ (PostgreSQL's unix socket),
pgbouncer/ and redis/ (configs, pid files; each server's working directory),
postgresql.log, pgbouncer.log, redis.log (each server's stderr, appended
across restarts), stack.env and stack.json (CLI only).

Every server process of a stack is found by its working directory
(/proc/PID/cwd): PostgreSQL's postmaster and every backend run in PGDATA,
PgBouncer and Redis in their own directories. That finds children, orphans
and stopped processes alike, works across processes (`down`), and never
touches another stack's servers.

PostgreSQL and PgBouncer refuse to run as root: when euid is 0 every server
runs as the `postgres` system user and DIR is chowned to it.
"""

import argparse
import atexit
import csv
import ctypes
import glob
import io
import ipaddress
import itertools
import json
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PASSWORDS = {
    'hdms': 'hdms-app-pw',            # the services' role, owner of db hdms
    'healthd': 'healthd-pw',          # the daemon's least-privilege role
    'pgbouncer': 'pgbouncer-admin-pw',  # PgBouncer admin console only
}
PG_SUPERUSER = 'postgres'
PGB_ADMIN = 'pgbouncer'
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RUN_AS = 'postgres'                   # system user for the servers under root

SETUP_SQL = [
    "CREATE ROLE hdms LOGIN PASSWORD 'hdms-app-pw'",
    "CREATE DATABASE hdms OWNER hdms",
    "CREATE DATABASE hdms_small OWNER hdms",
    "CREATE ROLE healthd LOGIN PASSWORD 'healthd-pw' IN ROLE pg_monitor",
    "GRANT CONNECT ON DATABASE hdms TO healthd",
    "GRANT CONNECT ON DATABASE hdms_small TO healthd",
]

PG_HBA = """\
# localstack: trust on the unix socket (harness setup), SCRAM over TCP.
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
host  all all ::1/128        scram-sha-256
"""


def pg_bindir():
    """Directory of initdb/postgres/psql: `pg_config --bindir`, else the
    newest /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which('pg_config')
    if pg_config:
        out = subprocess.run([pg_config, '--bindir'], capture_output=True,
                             text=True, check=False).stdout.strip()
        if out and os.access(os.path.join(out, 'initdb'), os.X_OK):
            return out
    dirs = [d for d in glob.glob('/usr/lib/postgresql/*/bin')
            if os.access(os.path.join(d, 'initdb'), os.X_OK)]
    if not dirs:
        raise RuntimeError('PostgreSQL server binaries not found '
                           '(install postgresql-15)')
    return max(dirs, key=lambda d: int(d.split('/')[-2].split('.')[0]))


def _tool(name):
    path = shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin')
    if not path:
        raise RuntimeError(f'{name} not found in PATH')
    return path


_handed_out = set()


def free_port(udp=False):
    """A free 127.0.0.1 port below the ephemeral range, so no outgoing
    connection can take it while a server is down between restarts. With
    udp=True the port is free for both TCP and UDP."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            eph_lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        eph_lo = 32768
    lo, hi = (max(1024, eph_lo - 12000), eph_lo) if eph_lo > 3000 else (40000, 60000)
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for _ in range(500):
        port = random.randrange(lo, hi)
        if port in _handed_out:
            continue
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(('127.0.0.1', port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f'no free port in {lo}-{hi}')


def fast_tmpdir():
    """Where to put stacks: $HDMS_TEST_TMPDIR, else /dev/shm when it is a
    writable tmpfs with room (a stack starts in about 0.2 s there, against
    1.2 s on this machine's disk), else the system temp dir."""
    override = os.environ.get('HDMS_TEST_TMPDIR')
    if override:
        return override
    try:
        st = os.statvfs('/dev/shm')
        if os.access('/dev/shm', os.W_OK | os.X_OK) and \
                st.f_bavail * st.f_frsize > 2 << 30:
            return '/dev/shm'
    except OSError:
        pass
    return tempfile.gettempdir()


def tcp_accepts(port, host='127.0.0.1', timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pids_with_cwd(path):
    """Live processes whose working directory is `path` (zombies have none)."""
    real, out = os.path.realpath(path), []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if os.readlink(f'/proc/{name}/cwd') == real:
                    out.append(int(name))
            except OSError:
                pass
    return out


def proc_state(pid):
    """State letter of a process (R, S, D, T, Z ...), None when gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _wait_state(pids, stopped, timeout=5.0):
    """Wait until every process is stopped (or running again); gone counts."""
    def settled(pid):
        state = proc_state(pid)
        return state in (None, 'Z') or (state in 'Tt') == stopped
    deadline = time.monotonic() + timeout
    while not all(settled(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.005)


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _tail(path, lines=40):
    try:
        with open(path, 'rb') as f:
            data = f.read()[-16384:].decode('utf-8', 'replace')
    except OSError as e:
        return f'({path}: {e})'
    return '\n'.join(data.splitlines()[-lines:])


def _tool_env(**extra):
    """The caller's environment without libpq/redis-cli variables that could
    redirect the harness's own psql/redis-cli calls."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PG', 'REDISCLI_'))}
    env.update(PGCONNECT_TIMEOUT='5', **extra)
    return env


def _run(cmd, env=None, timeout=30, **kw):
    """Run a tool; return stdout; raise RuntimeError with its stderr."""
    r = subprocess.run(cmd, env=env or _tool_env(), timeout=timeout,
                       capture_output=True, text=True, check=False, **kw)
    if r.returncode != 0:
        raise RuntimeError(f'{shlex.join(cmd)} exited {r.returncode}:\n'
                           f'{r.stderr.strip() or r.stdout.strip()}')
    return r.stdout


_STACKS = []
_TEMPLATE = {}


@atexit.register
def _cleanup():
    for st in reversed(_STACKS):
        try:
            st.stop()
        except Exception as e:  # noqa: BLE001 (best effort at exit)
            print(f'localstack: cleanup of {st.dir}: {e}', file=sys.stderr)
    if _TEMPLATE:
        shutil.rmtree(_TEMPLATE.pop('dir'), ignore_errors=True)
        _TEMPLATE.clear()


class Stack:
    """PostgreSQL, PgBouncer and Redis on free 127.0.0.1 ports under `tmpdir`.

    Ports are chosen once, so restarts keep them (and the data). With
    pg_template (default) PGDATA is a copy of a cluster initialised and set
    up once per process, instead of an initdb and the setup SQL per stack.
    """

    SERVERS = ('pg', 'pgbouncer', 'redis')

    def __init__(self, tmpdir, redis_password=None, pg_max_connections=100,
                 pg_template=True):
        self.dir = os.path.abspath(tmpdir)
        self.redis_password = redis_password
        self.pg_max_connections = pg_max_connections
        self.pg_template = pg_template
        self.passwords = dict(PASSWORDS)  # per stack: set_password() changes them
        # Lines added to pgbouncer.ini's [pgbouncer] section at its next
        # start (client_tls_* for the TLS tests, say).
        self.pgb_extra = ''
        self.pgdata = os.path.join(self.dir, 'pgdata')
        self.sockdir = os.path.join(self.dir, 'sock')
        self.pgb_dir = os.path.join(self.dir, 'pgbouncer')
        self.redis_dir = os.path.join(self.dir, 'redis')
        self.workdirs = {'pg': self.pgdata, 'pgbouncer': self.pgb_dir,
                         'redis': self.redis_dir}
        self.logs = {'pg': os.path.join(self.dir, 'postgresql.log'),
                     'pgbouncer': os.path.join(self.dir, 'pgbouncer.log'),
                     'redis': os.path.join(self.dir, 'redis.log')}
        self.pg_port = free_port()
        self.pgb_port = free_port()
        self.redis_port = free_port()
        if len(self.sockdir) + len('/.s.PGSQL.65535') > 107:
            raise ValueError(f'{self.dir}: too long for a unix socket path')
        self.bindir = pg_bindir()
        self._user = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None
        self._procs = {}
        self._log_offset = {}
        _STACKS.append(self)

    # ----- whole stack

    def start(self, servers=SERVERS):
        """Start the servers (all three by default) in parallel and wait
        until each accepts; returns self."""
        spawn = {'pg': self._spawn_pg, 'pgbouncer': self._spawn_pgbouncer,
                 'redis': self._spawn_redis}
        for name in servers:
            spawn[name]()
        for name in servers:
            self._wait_ready(name)
        return self

    def stop(self):
        """Stop everything; idempotent, also after SIGSTOP or SIGKILL."""
        self.stop_pgbouncer()
        self.stop_redis()
        self.stop_pg()

    def destroy(self):
        """stop(), delete the directory and forget the stack."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self in _STACKS:
                _STACKS.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def env(self):
        """The daemon's environment for its default targets (SPEC 6)."""
        env = {
            'POSTGRES_HOST': '127.0.0.1', 'POSTGRES_PORT': str(self.pg_port),
            'POSTGRES_DB': 'hdms', 'POSTGRES_USER': 'hdms',
            'POSTGRES_PASSWORD': self.passwords['hdms'],
            'HEALTHD_PG_USER': 'healthd',
            'HEALTHD_PG_PASSWORD': self.passwords['healthd'],
            'HEALTHD_APP_USER': 'hdms',
            'PGBOUNCER_HOST': '127.0.0.1', 'PGBOUNCER_PORT': str(self.pgb_port),
            'PGBOUNCER_ADMIN_USER': PGB_ADMIN,
            'PGBOUNCER_ADMIN_PASSWORD': self.passwords[PGB_ADMIN],
            'REDIS_HOST': '127.0.0.1', 'REDIS_PORT': str(self.redis_port),
        }
        if self.redis_password is not None:
            env['REDIS_PASSWORD'] = self.redis_password
        return env

    def describe(self):
        """Everything a script needs, as written to stack.json."""
        return {'dir': self.dir, 'env': self.env(), 'logs': self.logs,
                'ports': {'postgres': self.pg_port, 'pgbouncer': self.pgb_port,
                          'redis': self.redis_port},
                'pgdata': self.pgdata, 'socket_dir': self.sockdir,
                'passwords': dict(self.passwords)}

    # ----- processes

    def pids(self, server):
        return pids_with_cwd(self.workdirs[server])

    def pg_pids(self):
        """Every PostgreSQL process of this stack, postmaster first."""
        pids = self.pids('pg')
        pm = self._postmaster_pid()
        return ([pm] if pm in pids else []) + sorted(p for p in pids if p != pm)

    def alive(self, server):
        return bool(self.pids(server))

    def _postmaster_pid(self):
        p = self._procs.get('pg')
        if p is not None and p.poll() is None:
            return p.pid
        try:
            with open(os.path.join(self.pgdata, 'postmaster.pid')) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def _popen(self, server, argv):
        """Start a server in its own session (a Ctrl-C aimed at the harness
        does not reach it), as `postgres` under root, output to its log."""
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C',
               'HOME': self.dir}
        with open(self.logs[server], 'ab') as log:
            self._log_offset[server] = log.tell()
            self._procs[server] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.workdirs[server], env=env,
                start_new_session=True, **self._as_user())

    def _as_user(self):
        """subprocess arguments that drop root to RUN_AS (none otherwise)."""
        if not self._user:
            return {}
        return dict(user=self._user.pw_uid, group=self._user.pw_gid,
                    extra_groups=[])

    def _wait_ready(self, server, timeout=START_TIMEOUT):
        ready = {'pg': self._pg_ready, 'pgbouncer': self._pgb_ready,
                 'redis': self._redis_ready}[server]
        proc = self._procs.get(server)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f'{server} exited with {proc.returncode} during start; '
                    f'{self.logs[server]}:\n{_tail(self.logs[server])}')
            if ready():
                return time.monotonic() - t0
            time.sleep(0.03)
        raise RuntimeError(f'{server} not ready after {timeout:.0f} s; '
                           f'{self.logs[server]}:\n{_tail(self.logs[server])}')

    def _logged(self, server, needle):
        """Has the server logged `needle` since its last spawn?"""
        try:
            with open(self.logs[server], 'rb') as f:
                f.seek(self._log_offset.get(server, 0))
                return needle in f.read()
        except OSError:
            return False

    def _wait_gone(self, server, timeout):
        t0 = time.monotonic()
        while self.pids(server):
            if time.monotonic() - t0 > timeout:
                return False
            time.sleep(0.02)
        p = self._procs.pop(server, None)
        if p is not None:
            try:
                p.wait(timeout=max(0.1, timeout - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                pass
        return True

    def _kill(self, server, sig):
        """Signal every process of `server`. SIGSTOP and SIGCONT return once
        each process is stopped / running again, SIGKILL once all are gone.

        The first process (PostgreSQL's postmaster) is signalled before the
        rest, and for SIGSTOP seen stopped, so it cannot fork new children
        meanwhile; rescans catch any forked just before."""
        pids_of = self.pg_pids if server == 'pg' else lambda: self.pids(server)
        done = set()
        for _ in range(20):
            pids = [p for p in pids_of() if p not in done]
            if not pids:
                break
            for group in (pids[:1], pids[1:]):
                _signal(group, sig)
                done.update(group)
                if sig == signal.SIGSTOP:
                    _wait_state(group, stopped=True)
        if sig == signal.SIGCONT:
            _wait_state(done, stopped=False)
        if sig == signal.SIGKILL:
            if not self._wait_gone(server, 10):
                raise RuntimeError(f'{server} survived SIGKILL: {pids_of()}')
            if server == 'pg':
                self._remove_stale_shm()

    def _stop(self, server, sig):
        pids = self.pids(server)
        if pids:
            _signal(pids, signal.SIGCONT)
            _signal(pids, sig)
            if not self._wait_gone(server, STOP_TIMEOUT):
                self._kill(server, signal.SIGKILL)
        self._wait_gone(server, 1)

    def _chown(self, *paths):
        for path in paths:
            if self._user:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _mkdirs(self):
        os.makedirs(self.dir, exist_ok=True)
        for d in (self.sockdir, self.pgb_dir, self.redis_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self._chown(self.dir, self.sockdir, self.pgb_dir, self.redis_dir)
        if self._user:
            probe = subprocess.run(['test', '-w', self.dir], check=False,
                                   **self._as_user())
            if probe.returncode != 0:
                raise RuntimeError(
                    f'{self.dir} is not reachable by the {RUN_AS} user (the '
                    'servers run as it under root): use a directory under '
                    f'{fast_tmpdir()} whose parents are traversable')

    def _write(self, path, text, mode=0o600):
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, mode)
        self._chown(path)

    # ----- PostgreSQL

    def start_pg(self):
        self._spawn_pg()
        self._wait_ready('pg')

    def _spawn_pg(self):
        if self.alive('pg'):
            return
        self._mkdirs()
        fresh = self._ensure_pgdata()
        self._write(os.path.join(self.pgdata, 'localstack.conf'), f"""\
listen_addresses = '127.0.0.1'
port = {self.pg_port}
unix_socket_directories = '{self.sockdir}'
max_connections = {self.pg_max_connections}
superuser_reserved_connections = 3
password_encryption = 'scram-sha-256'
fsync = off
full_page_writes = off
dynamic_shared_memory_type = mmap  # in PGDATA: a killed server leaks none in /dev/shm
logging_collector = off
log_destination = 'stderr'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d '
""")
        self._popen('pg', [os.path.join(self.bindir, 'postgres'), '-D', self.pgdata])
        if fresh:
            self._wait_ready('pg')
            for sql in SETUP_SQL:
                self.psql(sql, db='postgres')

    def _ensure_pgdata(self):
        """Create PGDATA if missing; True when it still needs SETUP_SQL."""
        if os.path.exists(os.path.join(self.pgdata, 'PG_VERSION')):
            return False
        if self.pg_template:
            _run(['cp', '-a', _template_pgdata(), self.pgdata])
            return False
        cmd = [os.path.join(self.bindir, 'initdb'), '-D', self.pgdata,
               '-U', PG_SUPERUSER, '-E', 'UTF8', '--no-locale', '-N',
               '--no-instructions', '--auth-local=trust',
               '--auth-host=scram-sha-256']
        _run(cmd, timeout=120, cwd=self.dir, **self._as_user())
        with open(os.path.join(self.pgdata, 'postgresql.conf'), 'a') as f:
            f.write("\ninclude_if_exists = 'localstack.conf'\n")
        self._write(os.path.join(self.pgdata, 'pg_hba.conf'), PG_HBA)
        return True

    def _pg_ready(self):
        # The log line, not a probe connection: a probe would add lines of
        # its own to the log that tests count (log_connections).
        return self._logged('pg', b'database system is ready to accept connections')

    def kill_pg(self, sig=signal.SIGKILL):
        """Signal every PostgreSQL process: postmaster and all children
        (SIGSTOP of them all is a hung server; see _kill)."""
        self._kill('pg', sig)

    def stop_pg(self, mode='fast'):
        """Shut PostgreSQL down: smart (SIGTERM), fast (SIGINT) or immediate
        (SIGQUIT); SIGKILL everything still there after STOP_TIMEOUT."""
        sig = {'smart': signal.SIGTERM, 'fast': signal.SIGINT,
               'immediate': signal.SIGQUIT}[mode]
        if self.pg_pids():
            self.kill_pg(signal.SIGCONT)
            pm = self._postmaster_pid()
            if pm in self.pg_pids():
                _signal([pm], sig)
            if not self._wait_gone('pg', STOP_TIMEOUT):
                self.kill_pg(signal.SIGKILL)
        self._wait_gone('pg', 1)
        self._remove_stale_shm()

    def _remove_stale_shm(self):
        """After a crash (postmaster.pid left behind) remove the small SysV
        segment PostgreSQL keeps as an interlock; otherwise every killed
        stack leaks one until the next start of the same PGDATA."""
        if self.pg_pids():
            return
        try:
            with open(os.path.join(self.pgdata, 'postmaster.pid')) as f:
                shmid = int(f.read().splitlines()[6].split()[1])
        except (OSError, ValueError, IndexError):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmctl(shmid, 0, None)  # IPC_RMID; fails harmlessly if gone

    def psql(self, sql, db='hdms', user=PG_SUPERUSER):
        """Run SQL over the unix socket (trust) as `user`; stdout (-At)."""
        return _run([os.path.join(self.bindir, 'psql'), '-X', '-q', '-At',
                     '-v', 'ON_ERROR_STOP=1', '-h', self.sockdir,
                     '-p', str(self.pg_port), '-U', user, '-d', db, '-c', sql])

    def psql_tcp(self, sql, user='hdms', db='hdms', port=None, password=None,
                 csv_rows=False):
        """Run SQL over TCP with SCRAM (PGPASSWORD), by default through
        PgBouncer. Returns stdout (-At), or a list of dicts with csv_rows."""
        port = port or self.pgb_port
        password = self.passwords.get(user, '') if password is None else password
        fmt = ['--csv'] if csv_rows else ['-At']
        out = _run([os.path.join(self.bindir, 'psql'), '-X', '-q', *fmt,
                    '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', str(port),
                    '-U', user, '-d', db, '-c', sql],
                   env=_tool_env(PGPASSWORD=password))
        return list(csv.DictReader(io.StringIO(out))) if csv_rows else out

    def psql_tcp_bg(self, *sqls, user='hdms', db='hdms', port=None,
                    password=None, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL):
        """Start psql over TCP in the background, by default through
        PgBouncer; each of `sqls` is its own -c (its own transaction).
        Returns the Popen (stdout discarded unless `stdout` says otherwise,
        stderr piped, both text; stdin=subprocess.PIPE for a session fed
        commands and ended by closing it); the caller ends it and waits
        for it."""
        port = port or self.pgb_port
        password = self.passwords.get(user, '') if password is None else password
        argv = [os.path.join(self.bindir, 'psql'), '-X', '-q', '-At',
                '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', str(port),
                '-U', user, '-d', db]
        for sql in sqls:
            argv += ['-c', sql]
        return subprocess.Popen(argv, env=_tool_env(PGPASSWORD=password),
                                stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, text=True)

    # ----- PgBouncer

    def start_pgbouncer(self):
        self._spawn_pgbouncer()
        self._wait_ready('pgbouncer')

    def _spawn_pgbouncer(self):
        if self.alive('pgbouncer'):
            return
        self._mkdirs()
        users = os.path.join(self.pgb_dir, 'userlist.txt')
        self._write(users, self._userlist())
        ini = os.path.join(self.pgb_dir, 'pgbouncer.ini')
        db = f'host=127.0.0.1 port={self.pg_port}'
        self._write(ini, f"""\
[databases]
hdms = {db} dbname=hdms
hdms_small = {db} dbname=hdms_small pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.pgb_port}
unix_socket_dir =
pidfile = {os.path.join(self.pgb_dir, 'pgbouncer.pid')}
pool_mode = transaction
default_pool_size = 25
max_db_connections = 50
max_client_conn = 200
server_login_retry = 1
auth_type = scram-sha-256
auth_file = {users}
admin_users = {PGB_ADMIN}
stats_users = healthd
ignore_startup_parameters = extra_float_digits
; no periodic "stats:" lines: tests count this log's lines (log noise)
log_stats = 0
{self.pgb_extra}
""")
        # No `logfile`: PgBouncer logs to stderr, which _popen appends to
        # pgbouncer.log (a logfile would duplicate every line there).
        self._popen('pgbouncer', [_tool('pgbouncer'), ini])

    def _userlist(self):
        return ''.join(f'"{u}" "{p}"\n' for u, p in self.passwords.items())

    def _pgb_ready(self):
        return self._logged('pgbouncer', b'process up:')

    def kill_pgbouncer(self, sig=signal.SIGKILL):
        self._kill('pgbouncer', sig)

    def stop_pgbouncer(self):
        self._stop('pgbouncer', signal.SIGTERM)  # SIGTERM: immediate shutdown

    def pgb_admin(self, cmd):
        """One command on the PgBouncer console as the admin user; -At text."""
        return self.psql_tcp(cmd, user=PGB_ADMIN, db='pgbouncer')

    def pgb_show(self, what):
        """`SHOW what` on the console as a list of dicts (column -> text)."""
        return self.psql_tcp(f'SHOW {what}', user=PGB_ADMIN, db='pgbouncer',
                             csv_rows=True)

    def set_password(self, user, password):
        """Give a PostgreSQL role a new password (ALTER ROLE over the unix
        socket) and PgBouncer's auth_file the same one (RELOADed when
        PgBouncer runs), so that both accept it from now on; sessions
        already logged in stay. Later psql_tcp()/pgb_admin() calls of this
        stack use the new password. The role must exist (PASSWORDS)."""
        if "'" in password or '"' in password:
            raise ValueError('no quotes in test passwords')
        if user != PGB_ADMIN and self.alive('pg'):
            self.psql(f"ALTER ROLE \"{user}\" PASSWORD '{password}'", db='postgres')
        admin_pw = self.passwords[PGB_ADMIN]  # what PgBouncer knows until RELOAD
        self.passwords[user] = password
        users = os.path.join(self.pgb_dir, 'userlist.txt')
        if os.path.exists(users):
            self._write(users, self._userlist())
            if self.alive('pgbouncer'):
                self.psql_tcp('RELOAD', user=PGB_ADMIN, db='pgbouncer', password=admin_pw)

    # ----- Redis

    def start_redis(self):
        self._spawn_redis()
        self._wait_ready('redis')

    def _spawn_redis(self):
        if self.alive('redis'):
            return
        self._mkdirs()
        conf = os.path.join(self.redis_dir, 'redis.conf')
        auth = ''
        if self.redis_password is not None:
            quoted = self.redis_password.replace('\\', '\\\\').replace('"', '\\"')
            auth = f'requirepass "{quoted}"\n'
        self._write(conf, f"""\
bind 127.0.0.1
port {self.redis_port}
daemonize no
save ""
appendonly no
dir {self.redis_dir}
pidfile {os.path.join(self.redis_dir, 'redis.pid')}
logfile ""
{auth}""")
        self._popen('redis', [_tool('redis-server'), conf])

    def _redis_ready(self):
        try:
            return self.redis_raw('PING') == b'+PONG\r\n'
        except OSError:
            return False

    def redis_raw(self, *args, timeout=1.0):
        """Send one command (after AUTH when a password is set) over a raw
        socket; return the raw RESP reply bytes of that command."""
        def enc(cmd):
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in cmd]
            return b'*%d\r\n' % len(parts) + b''.join(
                b'$%d\r\n%s\r\n' % (len(p), p) for p in parts)
        with socket.create_connection(('127.0.0.1', self.redis_port),
                                      timeout=timeout) as s:
            if self.redis_password is not None:
                s.sendall(enc(['AUTH', self.redis_password]))
                if not s.recv(512).startswith(b'+OK'):
                    raise OSError('redis AUTH failed')
            s.sendall(enc(args))
            return s.recv(65536)

    def redis_cli(self, *args):
        """redis-cli against this stack's Redis; stdout without the final
        newline. Raises on a failed command (redis-cli exit status)."""
        env = _tool_env()
        if self.redis_password is not None:
            env['REDISCLI_AUTH'] = self.redis_password
        return _run([_tool('redis-cli'), '-h', '127.0.0.1', '-p',
                     str(self.redis_port), *map(str, args)], env=env).rstrip('\n')

    def kill_redis(self, sig=signal.SIGKILL):
        self._kill('redis', sig)

    def stop_redis(self):
        self._stop('redis', signal.SIGTERM)

    def set_redis_password(self, password):
        """CONFIG SET requirepass on the running Redis (None: no password);
        redis_raw()/redis_cli() and later restarts use the new one."""
        self.redis_raw('CONFIG', 'SET', 'requirepass', password or '')
        self.redis_password = password

    # ----- network faults

    def drop_packets(self, server):
        """A PacketDrop (not yet started) for `server`'s port on 127.0.0.1."""
        port = {'pg': self.pg_port, 'pgbouncer': self.pgb_port,
                'redis': self.redis_port}[server]
        return PacketDrop(port)


_DROPS = []
_drop_ids = itertools.count(1)


class PacketDrop:
    """Silently drop every TCP packet to and from a loopback address and
    port, in both directions, for new and established connections alike: a
    black-holed address, built with iptables (nf_tables or legacy) on this
    machine only. Needs root (CAP_NET_ADMIN); `PacketDrop.unavailable()`
    says why not otherwise.

    The rules live in a chain of their own (HDMS-DROP-<pid>-<n>), jumped to
    from the top of INPUT for the loopback interface only, so they touch
    nothing but that address and port and go away completely with stop()
    (idempotent; also run at exit). Use as a context manager, or call
    start() and stop(). Dropping on the way in (INPUT) is enough on
    loopback: every packet between two local sockets passes it once.
    """

    def __init__(self, port, host='127.0.0.1'):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f'{host}: PacketDrop only drops loopback addresses')
        self.host, self.port = host, int(port)
        self.chain = f'HDMS-DROP-{os.getpid()}-{next(_drop_ids)}'
        self.active = False

    @staticmethod
    def _ipt(*args, check=True):
        return subprocess.run([_tool('iptables'), '-w', '10', *args], check=check,
                              capture_output=True, text=True, timeout=30)

    @staticmethod
    def unavailable():
        """None when PacketDrop works here, else why not (for pytest.skip)."""
        if os.geteuid() != 0:
            return 'dropping packets needs root (iptables)'
        try:
            _tool('iptables')
        except RuntimeError as e:
            return str(e)
        r = PacketDrop._ipt('-S', 'INPUT', check=False)
        if r.returncode != 0:
            return f'iptables does not work here: {r.stderr.strip()}'
        return None

    def start(self):
        if self.active:
            return self
        dport = ['-p', 'tcp', '-d', self.host, '--dport', str(self.port)]
        sport = ['-p', 'tcp', '-s', self.host, '--sport', str(self.port)]
        self._ipt('-N', self.chain)
        self.active = True
        _DROPS.append(self)
        try:
            self._ipt('-A', self.chain, *dport, '-j', 'DROP')
            self._ipt('-A', self.chain, *sport, '-j', 'DROP')
            self._ipt('-I', 'INPUT', '1', '-i', 'lo', '-j', self.chain)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if not self.active:
            return
        while self._ipt('-D', 'INPUT', '-i', 'lo', '-j', self.chain,
                        check=False).returncode == 0:
            pass
        self._ipt('-F', self.chain, check=False)
        self._ipt('-X', self.chain, check=False)
        self.active = False
        if self in _DROPS:
            _DROPS.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _cleanup_drops():
    for drop in list(_DROPS):
        drop.stop()


def _template_pgdata():
    """PGDATA initialised and set up once per process, for copying."""
    if _TEMPLATE.get('pgdata') and os.path.isdir(_TEMPLATE['pgdata']):
        return _TEMPLATE['pgdata']
    tdir = tempfile.mkdtemp(prefix='hdms-pgtmpl-', dir=fast_tmpdir())
    os.chmod(tdir, 0o755)
    st = Stack(tdir, pg_template=False)
    try:
        try:
            st.start_pg()
        finally:
            st.stop_pg()
            _STACKS.remove(st)
        os.remove(os.path.join(st.pgdata, 'localstack.conf'))
    except BaseException:
        shutil.rmtree(tdir, ignore_errors=True)
        raise
    _TEMPLATE.update(dir=tdir, pgdata=st.pgdata)  # the dir goes at exit
    return st.pgdata


# ----- CLI

def _write_atomic(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _pid_alive(pid):
    """Running (a zombie, still unreaped by its parent, counts as gone)."""
    return proc_state(pid) not in (None, 'Z')


def cmd_up(args):
    os.makedirs(args.dir, exist_ok=True)
    pidfile = os.path.join(args.dir, 'localstack.pid')
    try:
        with open(pidfile) as f:
            old = int(f.read())
        if old != os.getpid() and _pid_alive(old):
            sys.exit(f'localstack: a stack is already up in {args.dir} (pid {old})')
    except (OSError, ValueError):
        pass

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    stack = Stack(args.dir, redis_password=args.redis_password,
                  pg_max_connections=args.pg_max_connections)
    _write_atomic(pidfile, f'{os.getpid()}\n')
    try:
        t0 = time.monotonic()
        stack.start()
        info = stack.describe()
        info['pid'] = os.getpid()
        _write_atomic(os.path.join(args.dir, 'stack.json'),
                      json.dumps(info, indent=2) + '\n')
        env_text = ''.join(f'export {k}={shlex.quote(v)}\n'
                           for k, v in stack.env().items())
        _write_atomic(os.path.join(args.dir, 'stack.env'), env_text)
        print(f'# localstack up in {time.monotonic() - t0:.1f} s, dir {stack.dir}')
        for name, path in stack.logs.items():
            print(f'# {name} log: {path}')
        print(env_text, end='', flush=True)
        while True:
            time.sleep(3600)
    finally:
        # A second signal (Ctrl-C reaches the whole process group, then a
        # script's trap sends SIGTERM) must not cut the shutdown short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        for name in ('stack.env', 'stack.json', 'localstack.pid'):
            try:
                os.remove(os.path.join(args.dir, name))
            except OSError:
                pass


def cmd_down(args):
    pidfile = os.path.join(args.dir, 'localstack.pid')
    try:
        with open(pidfile) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        pid = None
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3 * STOP_TIMEOUT
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    Stack(args.dir).stop()  # whatever is left, found by working directory
    print(f'localstack: down ({args.dir})')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    up = sub.add_parser('up', help='start a stack and stay in the foreground')
    up.add_argument('--dir', required=True)
    up.add_argument('--redis-password')
    up.add_argument('--pg-max-connections', type=int, default=100)
    down = sub.add_parser('down', help='stop a stack started by `up`')
    down.add_argument('--dir', required=True)
    args = ap.parse_args(argv)
    args.dir = os.path.abspath(args.dir)
    {'up': cmd_up, 'down': cmd_down}[args.cmd](args)


if __name__ == '__main__':
    main()
