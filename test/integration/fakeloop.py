"""What the fake servers (fakedns, fakeredis, fakeservers) share: sockets on
127.0.0.1 served by one thread with a selector, a pipe that wakes it, a
close() that stops the thread and releases everything, and `with`.

A server sets `port`, registers its sockets on `self._sel` (any data but
'wake'), implements `_on_event(key, events)` and `_release()`, may implement
`_on_wake()`, and calls `start()` at the end of its __init__.
"""

import os
import selectors
import socket
import threading


def tcp_listener(port, backlog):
    """A non-blocking listening TCP socket on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', port))
    s.listen(backlog)
    s.setblocking(False)
    return s


class SelectorServer:
    thread_name = 'fake'

    def __init__(self):
        self.port = None
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, 'wake')
        self._running = False
        self._thread = None

    def start(self):
        self._running = True
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self._thread.start()

    @property
    def address(self):
        """127.0.0.1:port (HEALTHD_NAMESERVERS, a target's host and port)."""
        return f'127.0.0.1:{self.port}'

    def wake(self):
        os.write(self._wake_w, b'x')

    def _serve(self):
        while self._running:
            for key, events in self._sel.select(timeout=0.5):
                if not self._running:
                    break
                if key.data == 'wake':
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self._on_wake()
                    continue
                try:
                    self._on_event(key, events)
                except OSError:
                    pass  # one peer's trouble, not the server's

    def _on_wake(self):
        pass

    def _on_event(self, key, events):
        raise NotImplementedError

    def _release(self):
        """Close the server's own sockets (the thread has stopped)."""
        raise NotImplementedError

    def close(self):
        if not self._running:
            return
        self._running = False
        self.wake()
        self._thread.join(5)
        self._release()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
