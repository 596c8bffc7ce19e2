"""A TCP forwarder in front of the local S3 server that can be cut and restored: an outage on
demand, for the outage test (tests/scan/test_outage.py) and bench/outage_bench.py.

    fwd = TcpForwarder("127.0.0.1", 5000).start()   # listens on fwd.port
    os.environ["AWS_ENDPOINT_URL"] = fwd.url         # clients go through it
    fwd.cut()       # open connections are reset, new ones refused (nothing listens)
    fwd.restore()   # listens again on the same port
    fwd.stop()

Plain threads, one pair per connection: enough for a scan's few dozen connections.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class TcpForwarder:
    """Forward 127.0.0.1:<port> to ``host:port``; see module docstring."""

    def __init__(self, host: str, port: int, listen_port: int = 0) -> None:
        self.target = (host, int(port))
        self.port = int(listen_port)
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.cuts = 0
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpForwarder:
        """Listen (again, on the same port once it is known) and accept in a thread."""
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(128)
        self.port = lst.getsockname()[1]
        with self._lock:
            self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        """The outage: stop listening (connects are refused) and reset open connections."""
        with self._lock:
            lst, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
            self.cuts += 1
        if lst is not None:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            lst.close()
        for c in conns:
            _reset(c)

    stop = cut

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return  # cut: the listener was closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not lst:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    return
                self._conns.update((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                self._conns.discard(src)
            with contextlib.suppress(OSError):
                src.close()


def _reset(sock: socket.socket) -> None:
    """Drop a connection, as a server that went away mid-request does.

    ``shutdown`` first: a plain ``close`` does not end a socket that a pump thread is
    blocked reading, so the peer would see nothing and wait for its read timeout."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
