"""The native server answers odd requests byte for byte as prometheus_client's server does
(its WSGIServer on Python's http.server), less the Date and Server headers fastprom does not send."""
import re
import socket

import pytest

import fastprom
import prometheus_client

REQUESTS = [
    b'HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    b'HEAD /metrics HTTP/1.0\r\n\r\n',
    b'HEAD / HTTP/1.0\r\nAccept: application/openmetrics-text\r\n\r\n',
    b'garbage\r\n\r\n',
    b'GET /metrics HTTP/1.0 extra\r\n\r\n',
    b'GET /metrics HTTP/9.9\r\n\r\n',
    b'GET /metrics HTTP/2.0\r\n\r\n',
    b'GET /metrics HTTPS/1.0\r\n\r\n',
    b'GET /metrics HTTP/1\r\n\r\n',
    b'GET /metrics HTTP/1.x\r\n\r\n',
    b'GET /metrics HTTP/1.1.1\r\n\r\n',
    b"GET /metrics HTTP/'1\\\r\n\r\n",
    b'GET /metrics\r\n\r\n',
    b'GET /favicon.ico\r\n\r\n',
    b'POST /metrics\r\n\r\n',
    b'\r\n',
    b'GET /metrics HTTP/1.1\r\nbad header line\r\nConnection: close\r\n\r\n',
    b'OPTIONS / HTTP/1.0\r\n\r\n',
    b'DELETE /metrics HTTP/1.0\r\n\r\n',
    b'GET /favicon.ico HTTP/1.0\r\n\r\n',
]


def exchange(port, request):
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        s.sendall(request)
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def without_server_headers(answer):
    return re.sub(rb'(Date|Server): [^\r]*\r\n', b'', answer)


@pytest.fixture(scope='module')
def ports():
    servers = []
    for lib in (prometheus_client, fastprom):
        registry = lib.CollectorRegistry()
        lib.Gauge('in_flight', 'Requests in flight.', registry=registry).set(3)
        servers.append(lib.start_http_server(0, addr='127.0.0.1', registry=registry))
    yield [server.server_port for server, _ in servers]
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize('request_bytes', REQUESTS, ids=repr)
def test_answer_is_the_references(ports, request_bytes):
    reference, ours = (exchange(port, request_bytes) for port in ports)
    assert without_server_headers(ours) == without_server_headers(reference)
