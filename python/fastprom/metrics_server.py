"""The server `start_http_server` returns without TLS: fastprom's native HTTP server, with the
surface of the reference's `WSGIServer` that callers use."""
import atexit
import socket
import threading
import weakref
from typing import Any, Optional, Tuple

from . import _native


def _best_family(address: str, port: int) -> Tuple[socket.AddressFamily, str]:
    """The address family and host that `getaddrinfo` gives first for a passive socket."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, sockaddr[0]


class MetricsServer:
    """Answers scrapes on Rust threads. Like `WSGIServer`: `socket`, `fileno()`,
    `server_address`, `server_port`, `serve_forever`, `handle_request` (with `timeout`),
    `shutdown`, `server_close` and use as a context manager."""

    timeout: Optional[float] = None

    def __init__(self, addr: str, port: int, registry: Any) -> None:
        self.address_family, host = _best_family(addr, port)
        self.socket = socket.socket(self.address_family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            # Room for a burst of connections (the kernel caps it at somaxconn).
            self.socket.listen(1024)
            self.server_address = self.socket.getsockname()
            # The native server owns a duplicate of the descriptor; `socket` stays usable.
            self._native = _native.MetricsServer(self.socket.dup().detach(), registry)
        except BaseException:
            self.socket.close()
            raise
        self.server_port = self.server_address[1]
        self._stopped = threading.Event()
        self._stopped.set()
        _live_servers.add(self)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            self._native.serve_forever()
        finally:
            self._stopped.set()

    def handle_request(self) -> None:
        """Serves one request, waiting at most `timeout` seconds for it (None: no limit)."""
        if not self._native.handle_request(self.timeout):
            self.handle_timeout()

    def handle_timeout(self) -> None:
        """Called when `handle_request` waited `timeout` in vain; override to act on it."""

    def shutdown(self) -> None:
        """Stops serve_forever and waits until it has returned."""
        self._native.shutdown()
        self._stopped.wait()

    def server_close(self) -> None:
        self._native.close()
        self.socket.close()

    def fileno(self) -> int:
        return self.socket.fileno()

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server_close()


_live_servers: "weakref.WeakSet[MetricsServer]" = weakref.WeakSet()


@atexit.register
def _stop_servers() -> None:
    # Server threads must not be inside Python while the interpreter finalizes.
    for server in list(_live_servers):
        server._native.shutdown()
    _native.drain_at_exit(2.0)
