"""What callers use of the server `start_http_server` returns (the reference's WSGIServer):
`socket`, `fileno()`, `handle_request`, `timeout`, use as a context manager. Each check runs on
both libraries."""
import socket
import threading
import time
import urllib.request

import pytest

import fastprom
import prometheus_client

LIBS = [prometheus_client, fastprom]


def scrape(port):
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as answer:
        return answer.read().decode()


def started(lib):
    registry = lib.CollectorRegistry()
    lib.Gauge('up_here', 'Whether it serves.', registry=registry).set(1)
    return lib.start_http_server(0, addr='127.0.0.1', registry=registry)


def stopped(lib):
    server, thread = started(lib)
    server.shutdown()
    thread.join(5)
    return server


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_socket_and_fileno(lib):
    server, thread = started(lib)
    assert isinstance(server.socket, socket.socket)
    assert server.socket.getsockname() == server.server_address
    assert server.fileno() == server.socket.fileno() >= 0
    assert 'up_here 1.0' in scrape(server.server_port)
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert server.fileno() == -1


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_context_manager_closes_the_socket(lib):
    server = stopped(lib)
    with server as entered:
        assert entered is server
    assert server.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', server.server_port), timeout=2).close()


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_handle_request_serves_one_request(lib):
    server = stopped(lib)
    serving = threading.Thread(target=server.handle_request)
    serving.start()
    assert 'up_here 1.0' in scrape(server.server_port)
    serving.join(5)
    assert not serving.is_alive()
    server.server_close()


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_handle_request_times_out(lib):
    server = stopped(lib)
    assert server.timeout is None
    timed_out = []
    server.handle_timeout = lambda: timed_out.append(True)
    server.timeout = 0.2
    start = time.monotonic()
    server.handle_request()
    assert timed_out == [True]
    assert 0.15 < time.monotonic() - start < 3
    server.server_close()
