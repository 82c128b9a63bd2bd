"""The native server answers odd requests byte for byte as prometheus_client's server does
(its WSGIServer on Python's http.server), less the Date and Server headers fastprom does not send;
where it deliberately differs (keep-alive, limits on the head), both answers are pinned."""
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
    # Python's parser ends the headers at a line that is not one: the Accept after it is not seen
    b'GET /metrics HTTP/1.1\r\nConnection: close\r\nbad header line\r\nAccept: application/openmetrics-text\r\n\r\n',
    b'OPTIONS / HTTP/1.0\r\n\r\n',
    b'DELETE /metrics HTTP/1.0\r\n\r\n',
    b'GET /favicon.ico HTTP/1.0\r\n\r\n',
    # HTTP/1.0, pipelined requests where the connection closes after the first answer
    b'GET /metrics HTTP/1.0\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n',
    b'GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n',
    b'GET /metrics?x=1 HTTP/1.0\r\n\r\nDELETE / HTTP/1.1\r\n\r\n',
    b'POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc',
    b'GET /metrics HTTP/1.2\r\nConnection: close\r\n\r\n',
    # heads httparse refuses or reads otherwise than Python
    b'GET /metrics HTTP/1.1\nHost: x\nConnection: close\n\n',
    b'GET  /metrics   HTTP/1.0\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;\r\n version=1.0.0\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\nAccept : text/plain\r\n\r\n',
    b'GET /metrics HTTP/1.0\r\nX-Bin: \xff\x01\r\n\r\n',
    # header counts about Python's limit (100 lines, the empty one included)
    b'GET /metrics HTTP/1.1\r\nConnection: close\r\n' + b'X: y\r\n' * 98 + b'\r\n',
    b'GET /metrics HTTP/1.1\r\nConnection: close\r\n' + b'X: y\r\n' * 99 + b'\r\n',
    b'HEAD /metrics HTTP/1.1\r\n' + b'X: y\r\n' * 150 + b'\r\n',
    # a request line over 64 KiB
    b'GET /' + b'a' * 70_000 + b' HTTP/1.1\r\n\r\n',
]


def exchange(port, request):
    """All the server sends until it closes (a reset after an oversized request ends it too)."""
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        out = b''
        try:
            s.sendall(request)
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return out


def answers(port, request, count):
    """The first `count` answers (status line, headers, body by Content-Length) on one
    connection, for servers that keep it open."""
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        s.sendall(request)
        received, found = b'', []
        while len(found) < count:
            head, separator, rest = received.partition(b'\r\n\r\n')
            length = re.search(rb'Content-Length: (\d+)', head)
            if separator and length and len(rest) >= int(length[1]):
                found.append(head + separator + rest[:int(length[1])])
                received = rest[int(length[1]):]
                continue
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        return found


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


@pytest.mark.parametrize('request_bytes', [
    b'GET /metrics HTTP/1.0\r\n',
    b'GET /metrics HTTP/1.0',
    b'GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text',
    b'GET /metrics HTTP/1.1\r\nbad line',
    b'GET /metrics',
    b'GARBAGE',
    b'',
], ids=repr)
def test_head_cut_by_the_clients_close_is_answered_as_the_reference(ports, request_bytes):
    """The client closes its side before the head ends: what it sent is the whole head."""
    def half_closed_exchange(port):
        with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
            s.sendall(request_bytes)
            s.shutdown(socket.SHUT_WR)
            out = b''
            while chunk := s.recv(65536):
                out += chunk
            return out

    reference, ours = (half_closed_exchange(port) for port in ports)
    assert without_server_headers(ours) == without_server_headers(reference)


def status_and_body(answer):
    head, _, body = answer.partition(b'\r\n\r\n')
    return head.split(b'\r\n')[0], body


def test_http11_keeps_the_connection_alive_where_the_reference_closes(ports):
    """Pipelined HTTP/1.1 requests: the reference answers the first in HTTP/1.0 and closes;
    fastprom answers each on the same connection, the same bodies."""
    request = b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' * 2 + b'HEAD / HTTP/1.1\r\n\r\n'
    reference = exchange(ports[0], request)
    ours = answers(ports[1], request, 3)
    assert [status_and_body(a)[0] for a in ours] == [
        b'HTTP/1.1 200 OK', b'HTTP/1.1 200 OK', b'HTTP/1.1 405 Method Not Allowed']
    assert status_and_body(reference)[0] == b'HTTP/1.0 200 OK'
    assert status_and_body(ours[0])[1] == status_and_body(ours[1])[1] == status_and_body(reference)[1]
    assert ours[0].replace(b'HTTP/1.1', b'HTTP/1.0', 1) == without_server_headers(reference)


@pytest.mark.parametrize('request_bytes,reference_status,our_status', [
    # A head over 16 KiB: the reference reads lines of up to 64 KiB (and any number of them).
    (b'GET /metrics HTTP/1.1\r\nX: ' + b'a' * 20_000 + b'\r\nConnection: close\r\n\r\n',
     b'HTTP/1.0 200 OK', b'HTTP/1.0 431 Request Header Fields Too Large'),
    (b'GET /metrics HTTP/1.1\r\nX: ' + b'a' * 70_000 + b'\r\n\r\n',
     b'HTTP/1.0 431 Line too long', b'HTTP/1.0 431 Request Header Fields Too Large'),
    (b'GET /' + b'a' * 20_000 + b' HTTP/1.0\r\n\r\n',
     b'HTTP/1.0 200 OK', b'HTTP/1.0 414 Request-URI Too Long'),
], ids=['header-20k', 'header-70k', 'request-line-20k'])
def test_oversized_heads_are_refused_sooner(ports, request_bytes, reference_status, our_status):
    reference, ours = (exchange(port, request_bytes) for port in ports)
    assert status_and_body(reference)[0] == reference_status
    assert status_and_body(ours)[0] == our_status


def test_unfinished_head_gets_408_where_the_reference_waits(ports):
    """A head never finished: the reference waits as long as the client; fastprom answers 408
    once its head timeout (10 s) has passed. Only the start is checked here: neither answers
    at once (the 408 itself is checked by the core tests with a short timeout)."""
    for port in ports:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5) as s:
            s.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n')
            with pytest.raises(socket.timeout):
                s.recv(1)
