"""Exposition: text rendering, content negotiation, HTTP serving, pushgateway.

The bytes come from the native writer (``fastprom._native``). Around it this module answers
what ``prometheus_client.exposition`` 0.26.0 answers: which format an Accept header gets,
the WSGI app and ``MetricsHandler``, the HTTP(S) server, textfiles and the Pushgateway.
"""

import base64
from contextlib import closing
from functools import partial
import gzip
from http.server import BaseHTTPRequestHandler
import os
import socket
from socketserver import ThreadingMixIn
import ssl
import sys
import threading
from typing import Any, Callable, Dict, List, Literal, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote_plus, urlparse
from urllib.request import BaseHandler, build_opener, HTTPHandler, HTTPRedirectHandler, HTTPSHandler, Request
from wsgiref.simple_server import make_server, WSGIRequestHandler, WSGIServer

from . import _native
from .metrics_server import MetricsServer, _best_family as _get_best_family
from .openmetrics import exposition as openmetrics
from .registry import Collector, REGISTRY
from .utils import floatToGoString, parse_version  # noqa: F401

try:  # optional: Pushgateway payloads compressed with snappy
    import snappy  # type: ignore
except ImportError:
    snappy = None  # type: ignore
SNAPPY_AVAILABLE = snappy is not None

__all__ = (
    'CONTENT_TYPE_LATEST',
    'CONTENT_TYPE_PLAIN_0_0_4',
    'CONTENT_TYPE_PLAIN_1_0_0',
    'delete_from_gateway',
    'generate_latest',
    'instance_ip_grouping_key',
    'make_asgi_app',
    'make_wsgi_app',
    'MetricsHandler',
    'push_to_gateway',
    'pushadd_to_gateway',
    'start_http_server',
    'start_wsgi_server',
    'write_to_textfile',
)

CONTENT_TYPE_PLAIN_0_0_4 = 'text/plain; version=0.0.4; charset=utf-8'
"""Content type of the compatibility format"""

CONTENT_TYPE_PLAIN_1_0_0 = 'text/plain; version=1.0.0; charset=utf-8'
"""Content type of the latest format"""

CONTENT_TYPE_LATEST = CONTENT_TYPE_PLAIN_1_0_0

CONTENT_TYPE_PROTOBUF = ('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; '
                         'encoding=delimited')
"""Content type of Prometheus' delimited protobuf format (fastprom's own; native histograms)"""
CompressionType = Optional[Literal['gzip', 'snappy']]


# --------------------------------------------------------------------------------------------
# Content negotiation: the core's (src/core/negotiate.rs), shared with the native server.
#
# Each comma-separated entry of the Accept header is tried in turn (q-values play no part) and
# the first one fastprom can serve wins; nothing served gives the 0.0.4 text format.

_ESCAPING_SCHEMES = frozenset((openmetrics.ALLOWUTF8, openmetrics.UNDERSCORES, openmetrics.DOTS, openmetrics.VALUES))


def _get_param(accept_header: List[str], name: str) -> Optional[str]:
    """The value of the first ``name=value`` among the ``;``-separated parts, or None."""
    prefix = name + '='
    for part in accept_header:
        part = part.strip()
        if part.startswith(prefix):
            return part[len(prefix):]
    return None


def _get_version(accept_header: List[str]) -> str:
    """The ``version`` parameter of one Accept entry's parts; '' when there is none."""
    return _get_param(accept_header, 'version') or ''


def _get_escaping(accept_header: List[str]) -> str:
    """The ``escaping`` parameter of one Accept entry's parts when it names a known scheme,
    otherwise ``underscores``."""
    asked = _get_param(accept_header, 'escaping')
    return asked if asked in _ESCAPING_SCHEMES else openmetrics.UNDERSCORES


def choose_encoder(accept_header: str) -> Tuple[Callable[[Collector], bytes], str]:
    kind, escaping, version, content_type = _native.negotiate(accept_header)
    if kind == 'protobuf':
        encoder = partial(generate_protobuf, escaping=escaping)
    elif kind == 'openmetrics':
        encoder = partial(openmetrics.generate_latest, escaping=escaping, version=version)
    elif content_type == CONTENT_TYPE_PLAIN_0_0_4:
        encoder = generate_latest
    else:
        encoder = partial(generate_latest, escaping=escaping)
    return encoder, content_type


def gzip_accepted(accept_encoding_header: str) -> bool:
    return _native.gzip_accepted(accept_encoding_header)


def generate_latest(registry: Collector = REGISTRY, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """The metrics of ``registry`` in the Prometheus text format (0.0.4 / 1.0.0), UTF-8 bytes,
    with metric and label names escaped by ``escaping``."""
    return _native.generate_text(registry, escaping)


def generate_protobuf(registry: Collector = REGISTRY, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """The metrics of ``registry`` in Prometheus' delimited protobuf format (one length-prefixed
    ``io.prometheus.client.MetricFamily`` per family), the only format Prometheus ingests native
    histograms from. Scrapes get it when they ask for it first (``CONTENT_TYPE_PROTOBUF``)."""
    return _native.generate_protobuf(registry, escaping)


# --------------------------------------------------------------------------------------------
# Serving scrapes: WSGI app, MetricsHandler, servers

_ALLOW_HEADER = ('Allow', 'OPTIONS,GET')


def _bake_output(registry, accept_header, accept_encoding_header, params, disable_compression):
    """The (status, headers, body) of a metrics page: the native server's answer."""
    return _native.bake_output(registry, accept_header, accept_encoding_header,
                               params.get('name[]'), disable_compression)


def _refuse_method(method):
    status = '405 Method Not Allowed'
    return status, [_ALLOW_HEADER], f'# HTTP {status}: {method}; use OPTIONS or GET\n'.encode()


def make_wsgi_app(registry: Collector = REGISTRY, disable_compression: bool = False) -> Callable:
    """A WSGI app serving the metrics of ``registry`` on every path but /favicon.ico."""

    def answer(environ):
        method = environ['REQUEST_METHOD']
        if method == 'OPTIONS':
            return '200 OK', [_ALLOW_HEADER], b''
        if method != 'GET':
            return _refuse_method(method)
        if environ['PATH_INFO'] == '/favicon.ico':
            return '200 OK', [], b''   # browsers ask for it; they get an empty page
        params = parse_qs(environ.get('QUERY_STRING', ''))
        # A module global looked up per request, so that patching it takes effect.
        return _bake_output(registry, environ.get('HTTP_ACCEPT'), environ.get('HTTP_ACCEPT_ENCODING'),
                            params, disable_compression)

    def prometheus_app(environ, start_response):
        status, headers, body = answer(environ)
        start_response(status, headers)
        return [body]

    return prometheus_app


class _SilentHandler(WSGIRequestHandler):
    """A WSGI request handler that writes no access log."""

    def log_message(self, format, *args):
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A WSGI server answering each request on its own daemon thread (not joined at close)."""

    daemon_threads = True


class MetricsHandler(BaseHTTPRequestHandler):
    """An ``http.server`` handler serving the metrics of its ``registry`` (``REGISTRY``)."""

    registry: Collector = REGISTRY

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        status, headers, body = _bake_output(
            self.registry, self.headers.get('Accept'), self.headers.get('Accept-Encoding'), query, False)
        self.send_response(int(status.partition(' ')[0]))
        for header in headers:
            self.send_header(*header)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @classmethod
    def factory(cls, registry: Collector) -> type:
        """A subclass of this handler, of the same name, that serves ``registry``."""
        return type(cls.__name__, (cls, object), {'registry': registry})


def _tls_step(failure: str, step: Callable, *args, **kwargs) -> None:
    """Run one loading step of an SSL context; an OSError is raised again, of the same type,
    with ``failure`` in front of its message."""
    try:
        step(*args, **kwargs)
    except OSError as exc:
        raise type(exc)(f"{failure}: {exc}")


def _get_ssl_ctx(certfile: str, keyfile: str, protocol: int, cafile: Optional[str] = None,
                 capath: Optional[str] = None, client_auth_required: bool = False,
                 tls_min_version: Optional[ssl.TLSVersion] = None,
                 tls_max_version: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
    """The server-side SSL context of ``start_wsgi_server``."""
    context = ssl.SSLContext(protocol=protocol)
    if cafile is None and capath is None:
        _tls_step("Cannot load default CA certificate chain",
                  context.load_default_certs, purpose=ssl.Purpose.CLIENT_AUTH)
    else:
        _tls_step(f"Cannot load CA certificate chain from file {cafile!r} or directory {capath!r}",
                  context.load_verify_locations, cafile, capath)
    if client_auth_required:
        context.verify_mode = ssl.CERT_REQUIRED
    _tls_step(f"Cannot load server certificate file {certfile!r} or its private key file {keyfile!r}",
              context.load_cert_chain, certfile=certfile, keyfile=keyfile)
    for attribute, version in (('minimum_version', tls_min_version), ('maximum_version', tls_max_version)):
        if version is not None:
            setattr(context, attribute, version)
    return context


def _tls_wsgi_server(addr, port, registry, context_args) -> WSGIServer:
    """The reference's threading WSGI server, its socket wrapped in TLS."""
    family, addr = _get_best_family(addr, port)
    # A subclass per server, so that the address family stays local to it.
    server_class = type('TmpServer', (ThreadingWSGIServer,), {'address_family': family})
    httpd = make_server(addr, port, make_wsgi_app(registry), server_class, handler_class=_SilentHandler)
    httpd.socket = _get_ssl_ctx(*context_args).wrap_socket(httpd.socket, server_side=True)
    return httpd


def start_wsgi_server(port: int, addr: str = '0.0.0.0', registry: Collector = REGISTRY,
                      certfile: Optional[str] = None, keyfile: Optional[str] = None,
                      client_cafile: Optional[str] = None, client_capath: Optional[str] = None,
                      protocol: int = ssl.PROTOCOL_TLS_SERVER, client_auth_required: bool = False,
                      tls_min_version: Optional[ssl.TLSVersion] = None,
                      tls_max_version: Optional[ssl.TLSVersion] = None
                      ) -> Tuple[Union[MetricsServer, WSGIServer], threading.Thread]:
    """Serve the metrics of ``registry`` on ``addr``:``port`` from a daemon thread; returns the
    server and the thread.

    Without TLS, the server is fastprom's native one: scrapes are answered on Rust threads,
    without the GIL for fastprom's own metrics. With TLS (``certfile`` and ``keyfile``), it is
    the WSGI server of the reference."""
    httpd: Union[MetricsServer, WSGIServer]
    if certfile and keyfile:
        httpd = _tls_wsgi_server(addr, port, registry, (
            certfile, keyfile, protocol, client_cafile, client_capath, client_auth_required,
            tls_min_version, tls_max_version))
    else:
        httpd = MetricsServer(addr, port, registry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


start_http_server = start_wsgi_server


# --------------------------------------------------------------------------------------------
# Textfiles (node exporter's textfile collector)

def write_to_textfile(path: str, registry: Collector, escaping: str = openmetrics.ALLOWUTF8,
                      tmpdir: Optional[str] = None) -> None:
    """Write the metrics of ``registry`` to ``path`` atomically, for the node exporter's textfile
    collector (which reads files ending in .prom).

    The text is written to a temporary file first, next to ``path`` or in ``tmpdir`` (which must
    then be on the same filesystem), and renamed over ``path``."""
    # <path or tmpdir/basename>.<pid>.<thread>: no two writers share a temporary file.
    staged = path if tmpdir is None else os.path.join(tmpdir, os.path.basename(path))
    staged += f'.{os.getpid()}.{threading.current_thread().ident}'
    # os.rename is atomic on POSIX; on Windows only os.replace overwrites an existing file.
    move = os.replace if os.name == 'nt' else os.rename
    try:
        with open(staged, 'wb') as out:
            out.write(generate_latest(registry, escaping))
        move(staged, path)
    except Exception:
        if os.path.exists(staged):
            os.remove(staged)
        raise


# --------------------------------------------------------------------------------------------
# Pushgateway: request handlers

# The methods _PrometheusRedirectHandler repeats at the new URL, by redirect status.
_REDIRECTED_METHODS = {
    301: ('GET', 'HEAD', 'POST', 'PUT'),
    302: ('GET', 'HEAD', 'POST', 'PUT'),
    303: ('GET', 'HEAD', 'POST', 'PUT'),
    307: ('GET', 'HEAD'),
}


class _PrometheusRedirectHandler(HTTPRedirectHandler):
    """Follows redirects for PUT and POST too, repeating the method and the body.

    The standard handler neither forwards the body nor follows a redirected PUT, which
    ``push_to_gateway`` sends. Use it only where the redirects can be trusted."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """The request to send to ``newurl``; HTTPError when ``code`` may not be followed for
        the request's method."""
        # The push handlers set the method through a patched get_method, not ``method``.
        method = getattr(req, "method", req.get_method())
        if method not in _REDIRECTED_METHODS.get(code, ()):
            raise HTTPError(req.full_url, code, msg, headers, fp)
        repeated = Request(newurl.replace(' ', '%20'), headers=req.headers,
                           origin_req_host=req.origin_req_host, unverifiable=True, data=req.data)
        repeated.method = method
        return repeated


def _make_handler(url: str, method: str, timeout: Optional[float], headers: Sequence[Tuple[str, str]],
                  data: bytes, base_handler: Union[BaseHandler, type]) -> Callable[[], None]:
    """A callable sending one request through an opener built with ``base_handler``; a response
    of 400 or more raises OSError."""

    def send() -> None:
        request = Request(url, data=data)
        request.get_method = lambda: method  # type: ignore
        for name, value in headers:
            request.add_header(name, value)
        response = build_opener(base_handler).open(request, timeout=timeout)
        if response.code >= 400:
            raise OSError(f"error talking to pushgateway: {response.code} {response.msg}")

    return send


def default_handler(url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, str]],
                    data: bytes) -> Callable[[], None]:
    """The plain HTTP/HTTPS request of the push functions; other handlers build on it."""
    return _make_handler(url, method, timeout, headers, data, HTTPHandler)


def passthrough_redirect_handler(url: str, method: str, timeout: Optional[float],
                                 headers: List[Tuple[str, str]], data: bytes) -> Callable[[], None]:
    """Like ``default_handler``, but follows every redirect for every method, repeating the same
    method, headers and body at the new URL (PUT included). Only for redirects you trust."""
    return _make_handler(url, method, timeout, headers, data, _PrometheusRedirectHandler)


def basic_auth_handler(url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, str]],
                       data: bytes, username: Optional[str] = None,
                       password: Optional[str] = None) -> Callable[[], None]:
    """``default_handler`` with an HTTP Basic ``Authorization`` header when both ``username``
    and ``password`` are given."""

    def send():
        if username is not None and password is not None:
            credentials = base64.b64encode(f'{username}:{password}'.encode())
            headers.append(('Authorization', b'Basic ' + credentials))
        default_handler(url, method, timeout, headers, data)()

    return send


def tls_auth_handler(url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, str]],
                     data: bytes, certfile: str, keyfile: str, cafile: Optional[str] = None,
                     protocol: int = ssl.PROTOCOL_TLS_CLIENT,
                     insecure_skip_verify: bool = False) -> Callable[[], None]:
    """An HTTPS request authenticated with the client certificate ``certfile``/``keyfile``.

    The server is verified against ``cafile`` (or the default CAs), hostname included with the
    default protocol, unless ``insecure_skip_verify``. Experimental, like TLS on the pushgateway."""
    context = ssl.SSLContext(protocol=protocol)
    if cafile is None:
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile)
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return _make_handler(url, method, timeout, headers, data, HTTPSHandler(context=context))


# --------------------------------------------------------------------------------------------
# Pushgateway: push, pushadd, delete

def push_to_gateway(gateway: str, job: str, registry: Collector, grouping_key: Optional[Dict[str, Any]] = None,
                    timeout: Optional[float] = 30, handler: Callable = default_handler,
                    compression: CompressionType = None) -> None:
    """Replace (PUT) the metrics of ``job`` and ``grouping_key`` on a Pushgateway with those of
    ``registry``.

    ``gateway`` is the gateway's URL, 'http://' when it has no scheme. ``grouping_key`` holds
    further labels of the group (see the Pushgateway's documentation). ``timeout`` bounds the
    connection in seconds (None: no bound). ``handler`` performs the request: it is called with
    the keywords url, method, timeout, headers (a list of (name, value)) and data (the body)
    and returns a callable of no arguments that sends it, raising (e.g. OSError) on failure.
    ``compression`` is None, 'gzip' or 'snappy'."""
    _use_gateway('PUT', gateway, job, registry, grouping_key, timeout, handler, compression)


def pushadd_to_gateway(gateway: str, job: str, registry: Optional[Collector],
                       grouping_key: Optional[Dict[str, Any]] = None, timeout: Optional[float] = 30,
                       handler: Callable = default_handler, compression: CompressionType = None) -> None:
    """Like ``push_to_gateway``, but POST: only the metrics of the same names are replaced."""
    _use_gateway('POST', gateway, job, registry, grouping_key, timeout, handler, compression)


def delete_from_gateway(gateway: str, job: str, grouping_key: Optional[Dict[str, Any]] = None,
                        timeout: Optional[float] = 30, handler: Callable = default_handler) -> None:
    """Delete (DELETE) the metrics of ``job`` and ``grouping_key``; arguments as for
    ``push_to_gateway``."""
    _use_gateway('DELETE', gateway, job, None, grouping_key, timeout, handler)


def _escape_grouping_key(k, v):
    """A grouping-key label as two URL path segments: base64 (``k@base64``) for an empty value
    (https://github.com/prometheus/pushgateway/pull/346) or one with '/' or ' ' (Pushgateway
    >= 0.9.0), otherwise the value quoted."""
    if v == "":
        return k + '@base64', '='
    if '/' not in v and ' ' not in v:
        return k, quote_plus(v)
    return k + '@base64', base64.urlsafe_b64encode(v.encode('utf-8')).decode('utf-8')


def _gateway_url(gateway: str, job: str, grouping_key: Optional[Dict[str, Any]]) -> str:
    """``<gateway>/metrics/job/<job>/<label>/<value>...``, the grouping key sorted by label."""
    # urlparse reads 'host:port' as a scheme (https://bugs.python.org/issue27657).
    if urlparse(gateway).scheme not in ('http', 'https'):
        gateway = 'http://' + gateway
    segments = [gateway.rstrip('/'), 'metrics', *_escape_grouping_key('job', job)]
    for name, value in sorted(({} if grouping_key is None else grouping_key).items()):
        segments.extend(_escape_grouping_key(str(name), str(value)))
    return '/'.join(segments)


def _use_gateway(method: str, gateway: str, job: str, registry: Optional[Collector],
                 grouping_key: Optional[Dict[str, Any]], timeout: Optional[float], handler: Callable,
                 compression: CompressionType = None) -> None:
    url = _gateway_url(gateway, job, grouping_key)
    if method != 'DELETE':
        body = generate_latest(REGISTRY if registry is None else registry)
        data, headers = _compress_payload(body, compression)
    elif compression is not None:
        raise ValueError('Compression is not supported for DELETE requests.')
    else:
        data, headers = b'', [('Content-Type', CONTENT_TYPE_PLAIN_0_0_4)]
    handler(url=url, method=method, timeout=timeout, headers=headers, data=data)()


def _snappy_compress(data: bytes) -> bytes:
    if not SNAPPY_AVAILABLE:
        raise RuntimeError('Snappy compression requires the python-snappy package to be installed.')
    stream = snappy.StreamCompressor()
    out = stream.compress(data)
    flush = getattr(stream, 'flush', None)  # older python-snappy streams have no flush
    return out + flush() if callable(flush) else out


def _gzip_compress(data: bytes) -> bytes:
    return gzip.compress(data)


_COMPRESSORS = {'gzip': _gzip_compress, 'snappy': _snappy_compress}


def _compress_payload(data: bytes, compression: CompressionType) -> Tuple[bytes, List[Tuple[str, str]]]:
    """The body and headers of a push: ``data`` as is, or compressed with its Content-Encoding."""
    headers = [('Content-Type', CONTENT_TYPE_PLAIN_0_0_4)]
    if compression is None:
        return data, headers
    encoding = compression.lower()
    compress = _COMPRESSORS.get(encoding)
    if compress is None:
        raise ValueError(f"Unsupported compression type: {compression}")
    compressed = compress(data)
    return compressed, headers + [('Content-Encoding', encoding)]


def instance_ip_grouping_key() -> Dict[str, Any]:
    """``{'instance': <this host's IP address>}``, the address a UDP socket would send from."""
    # On macOS a socket "connected" to localhost does not reveal the outgoing address.
    target = ('10.255.255.255', 1) if sys.platform == 'darwin' else ('localhost', 0)
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as probe:
        probe.connect(target)
        return {'instance': probe.getsockname()[0]}


from .asgi import make_asgi_app  # noqa: E402,F401
