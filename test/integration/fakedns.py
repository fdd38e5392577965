"""A tiny authoritative DNS server on 127.0.0.1 for the daemon's resolver.

UDP and TCP on the same free port, served by one thread. Answers A/AAAA
from `records` (name -> address or list of addresses), NXDOMAIN for unknown
names, NODATA (no answer, NOERROR) for a known name without an address of
the asked family, SERVFAIL for names in `servfail`. `blackhole = True` (or a
name in `blackhole_names`) drops queries unanswered; `delay` seconds delays
every answer. Every query is recorded in `queries` as (name, qtype, proto).

The question is echoed byte for byte: libevent's evdns randomises the case
of query names (0x20 bits) and rejects answers that differ.
"""

import ipaddress
import os
import selectors
import socket
import struct
import sys
import threading

from fakeloop import SelectorServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from localstack import free_port  # noqa: E402  (test/localstack.py)

QTYPES = {1: 'A', 28: 'AAAA'}


class FakeDNS(SelectorServer):
    thread_name = 'fakedns'

    def __init__(self, records=None, ttl=0):
        super().__init__()
        self.records = {self._key(k): v for k, v in (records or {}).items()}
        self.ttl = ttl
        self.blackhole = False
        self.blackhole_names = set()
        self.servfail = set()
        self.delay = 0.0
        self.queries = []
        self.port = free_port(udp=True)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(('127.0.0.1', self.port))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(('127.0.0.1', self.port))
        self._tcp.listen(16)
        self._sel.register(self._udp, selectors.EVENT_READ, 'udp')
        self._sel.register(self._tcp, selectors.EVENT_READ, 'accept')
        self._tcp_bufs = {}
        self._timers = []
        self.start()

    @staticmethod
    def _key(name):
        return name.rstrip('.').lower()

    def set(self, name, addrs):
        """Map name to an address or list of addresses (None removes it)."""
        with self._lock:
            if addrs is None:
                self.records.pop(self._key(name), None)
            else:
                self.records[self._key(name)] = addrs

    def names_queried(self):
        with self._lock:
            return [q[0] for q in self.queries]

    def _release(self):
        for t in self._timers:
            t.cancel()
        for s in list(self._tcp_bufs) + [self._udp, self._tcp]:
            s.close()

    # ----- serving

    def _on_event(self, key, events):
        kind = key.data
        if kind == 'udp':
            data, peer = self._udp.recvfrom(4096)
            self._answer(data, 'udp', lambda r: self._udp.sendto(r, peer))
        elif kind == 'accept':
            conn, _ = self._tcp.accept()
            self._tcp_bufs[conn] = b''
            self._sel.register(conn, selectors.EVENT_READ, 'tcp')
        elif kind == 'tcp':
            conn = key.fileobj
            chunk = conn.recv(4096)
            if not chunk:
                self._sel.unregister(conn)
                del self._tcp_bufs[conn]
                conn.close()
                return
            buf = self._tcp_bufs[conn] + chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack('!H', buf[:2])[0]:
                n = struct.unpack('!H', buf[:2])[0]
                msg, buf = buf[2:2 + n], buf[2 + n:]
                self._answer(msg, 'tcp', lambda r, c=conn: c.sendall(
                    struct.pack('!H', len(r)) + r))
            self._tcp_bufs[conn] = buf

    def _answer(self, msg, proto, send):
        if len(msg) < 12:
            return
        qid, flags, qdcount = struct.unpack('!HHH', msg[:6])
        if flags & 0x8000 or qdcount != 1:
            return
        labels, i = [], 12
        while i < len(msg) and msg[i]:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode('ascii', 'replace'))
            i += 1 + n
        if i + 5 > len(msg):
            return
        question = msg[12:i + 5]
        qtype = struct.unpack('!H', msg[i + 1:i + 3])[0]
        name = self._key('.'.join(labels))
        with self._lock:
            self.queries.append((name, QTYPES.get(qtype, qtype), proto))
            if self.blackhole or name in self.blackhole_names:
                return
            addrs = self.records.get(name)
            rcode = 2 if name in self.servfail else (3 if addrs is None else 0)
            delay = self.delay
        answers = []
        if rcode == 0:
            for a in [addrs] if isinstance(addrs, str) else addrs:
                ip = ipaddress.ip_address(a)
                if (ip.version, qtype) in ((4, 1), (6, 28)):
                    answers.append(b'\xc0\x0c' + struct.pack(
                        '!HHIH', qtype, 1, self.ttl, len(ip.packed)) + ip.packed)
        # QR, opcode 0, AA, RD copied from the query, RA.
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        reply = struct.pack('!HHHHHH', qid, rflags, 1, len(answers), 0, 0) + \
            question + b''.join(answers)
        if delay > 0:
            t = threading.Timer(delay, self._send_quietly, (send, reply))
            t.daemon = True
            self._timers.append(t)
            t.start()
        else:
            send(reply)

    def _send_quietly(self, send, reply):
        if self._running:
            try:
                send(reply)
            except OSError:
                pass


def resolve(port, name, qtype=1, timeout=1.0):
    """Minimal UDP client for the harness's self-test: (rcode, [addresses])."""
    q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join(
        bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0' + \
        struct.pack('!HH', qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ('127.0.0.1', port))
        data = s.recv(4096)
    rcode, ancount = struct.unpack('!H', data[2:4])[0] & 0xF, \
        struct.unpack('!H', data[6:8])[0]
    i, out = len(q), []
    for _ in range(ancount):
        rtype, _, _, rdlen = struct.unpack('!HHIH', data[i + 2:i + 12])
        out.append(str(ipaddress.ip_address(data[i + 12:i + 12 + rdlen])))
        i += 12 + rdlen
    return rcode, out


if __name__ == '__main__':
    with FakeDNS({'db.test': '127.0.0.1'}) as dns:
        print(dns.address, resolve(dns.port, 'db.test'), resolve(dns.port, 'x.test'))
