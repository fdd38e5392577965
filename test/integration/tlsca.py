"""A throwaway certificate authority for the TLS tests, made with the
openssl command at test time (SPEC 13): `openssl ca` because it can give a
certificate any validity window, past ones included, which `openssl x509
-req` (OpenSSL 3.0) cannot."""

import datetime
import os
import socket
import struct
import subprocess
import time

CA_CNF = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/issued
certificate = {d}/ca.pem
private_key = {d}/ca.key
serial = {d}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
email_in_dn = no

[anything]
commonName = supplied
"""


def _openssl(*args, cwd=None):
    r = subprocess.run(['openssl', *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, f'openssl {args[0]} failed: {r.stderr}'
    return r.stdout


class CertAuthority:
    """A CA in `directory`: ca.pem (its certificate) and, per issue(),
    NAME.pem and NAME.key (mode 0600)."""

    def __init__(self, directory, name='hdms-healthd test CA'):
        self.dir = os.path.abspath(str(directory))
        os.makedirs(os.path.join(self.dir, 'issued'), exist_ok=True)
        with open(os.path.join(self.dir, 'index.txt'), 'w'):
            pass
        with open(os.path.join(self.dir, 'serial'), 'w') as f:
            f.write('1000\n')
        self.cnf = os.path.join(self.dir, 'ca.cnf')
        with open(self.cnf, 'w') as f:
            f.write(CA_CNF.format(d=self.dir))
        _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                 '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30',
                 '-subj', f'/CN={name}', cwd=self.dir)
        os.chmod(os.path.join(self.dir, 'ca.key'), 0o600)
        self.cert = os.path.join(self.dir, 'ca.pem')

    def issue(self, name, san, days=30, startdate=None, enddate=None, cn=None):
        """A certificate for `san` (e.g. 'IP:127.0.0.1,DNS:localhost'),
        valid from now for `days`, or from `startdate` to `enddate`
        (YYYYMMDDHHMMSSZ); returns (cert path, key path)."""
        key = os.path.join(self.dir, f'{name}.key')
        csr = os.path.join(self.dir, f'{name}.csr')
        pem = os.path.join(self.dir, f'{name}.pem')
        _openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                 '-nodes', '-keyout', key, '-out', csr, '-subj', f'/CN={cn or name}',
                 '-addext', f'subjectAltName={san}')
        os.chmod(key, 0o600)
        window = (['-startdate', startdate, '-enddate', enddate] if startdate
                  else ['-days', str(days)])
        _openssl('ca', '-batch', '-notext', '-config', self.cnf, '-in', csr, '-out', pem,
                 *window)
        return pem, key

    @staticmethod
    def not_after(pem):
        """The certificate's notAfter as Unix seconds (openssl's own reading)."""
        out = _openssl('x509', '-in', pem, '-noout', '-enddate', '-dateopt', 'iso_8601')
        # notAfter=2026-12-08 10:00:00Z
        text = out.strip().split('=', 1)[1].replace('Z', '+00:00')
        return int(datetime.datetime.fromisoformat(text).timestamp())


def pg_speaks_tls(port):
    """True when the server answers an SSLRequest with 'S'."""
    with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
        s.sendall(struct.pack('!II', 8, 80877103))
        return s.recv(1) == b'S'


def enable_pg_tls(st, cert, key):
    """Turn TLS on in the stack's PostgreSQL without a restart (libraries.md
    section 10): files in PGDATA owned by the server's user, mode 0600."""
    for src, name in ((cert, 'server.pem'), (key, 'server.key')):
        with open(src) as f:
            st._write(os.path.join(st.pgdata, name), f.read(), mode=0o600)
    for sql in ("ALTER SYSTEM SET ssl_cert_file = 'server.pem'",
                "ALTER SYSTEM SET ssl_key_file = 'server.key'",
                "ALTER SYSTEM SET ssl = on",
                "SELECT pg_reload_conf()"):
        st.psql(sql, db='postgres')
    deadline = time.monotonic() + 10
    while not pg_speaks_tls(st.pg_port):
        assert time.monotonic() < deadline, 'PostgreSQL did not turn TLS on'
        time.sleep(0.05)
