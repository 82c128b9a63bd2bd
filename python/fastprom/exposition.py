"""Exposition: text rendering, content negotiation, HTTP serving, pushgateway.

Rendering is done by the native writer (``fastprom._native``); everything
else mirrors ``prometheus_client.exposition`` 0.26.0 behaviour.
"""

import atexit
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
import weakref
from typing import (
    Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union,
)
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote_plus, urlparse
from urllib.request import (
    BaseHandler, build_opener, HTTPHandler, HTTPRedirectHandler, HTTPSHandler,
    Request,
)
from wsgiref.simple_server import make_server, WSGIRequestHandler, WSGIServer

from . import _native
from .openmetrics import exposition as openmetrics
from .registry import Collector, REGISTRY
from .utils import floatToGoString, parse_version  # noqa: F401

try:
    import snappy  # type: ignore
    SNAPPY_AVAILABLE = True
except ImportError:
    snappy = None  # type: ignore
    SNAPPY_AVAILABLE = False

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
CompressionType = Optional[Literal['gzip', 'snappy']]

_ALLOW_HEADER = ('Allow', 'OPTIONS,GET')


class _PrometheusRedirectHandler(HTTPRedirectHandler):
    """
    Allow additional methods (e.g. PUT) and data forwarding in redirects.

    Only use this class if you control or otherwise trust the redirect
    behaviour involved: the original request (method and body) is repeated
    verbatim against the redirect target. The standard HTTPRedirectHandler
    neither forwards request data nor allows redirected PUT requests, which
    ``push_to_gateway`` uses.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """Return the request to send to ``newurl``, or raise HTTPError if the
        redirect is not allowed for this method and status code."""
        # Requests built by the push handlers carry their method through a
        # patched get_method rather than the ``method`` attribute.
        method = getattr(req, "method", req.get_method())
        allowed = (
            (code in (301, 302, 303, 307) and method in ("GET", "HEAD"))
            or (code in (301, 302, 303) and method in ("POST", "PUT"))
        )
        if not allowed:
            raise HTTPError(req.full_url, code, msg, headers, fp)
        new_request = Request(
            newurl.replace(' ', '%20'),
            headers=req.headers,
            origin_req_host=req.origin_req_host,
            unverifiable=True,
            data=req.data,
        )
        new_request.method = method
        return new_request


def _bake_output(registry, accept_header, accept_encoding_header, params, disable_compression):
    """Bake output for metrics output."""
    encoder, content_type = choose_encoder(accept_header)
    if 'name[]' in params:
        registry = registry.restricted_registry(params['name[]'])
    output = encoder(registry)
    headers = [('Content-Type', content_type)]
    if not disable_compression and gzip_accepted(accept_encoding_header):
        output = gzip.compress(output)
        headers.append(('Content-Encoding', 'gzip'))
    return '200 OK', headers, output


def make_wsgi_app(registry: Collector = REGISTRY, disable_compression: bool = False) -> Callable:
    """Create a WSGI app which serves the metrics from a registry."""

    def prometheus_app(environ, start_response):
        accept_header = environ.get('HTTP_ACCEPT')
        accept_encoding_header = environ.get('HTTP_ACCEPT_ENCODING')
        params = parse_qs(environ.get('QUERY_STRING', ''))
        method = environ['REQUEST_METHOD']

        if method == 'OPTIONS':
            status, headers, output = '200 OK', [_ALLOW_HEADER], b''
        elif method != 'GET':
            status = '405 Method Not Allowed'
            headers = [_ALLOW_HEADER]
            output = f'# HTTP {status}: {method}; use OPTIONS or GET\n'.encode()
        elif environ['PATH_INFO'] == '/favicon.ico':
            # Serve an empty response for browsers.
            status, headers, output = '200 OK', [], b''
        else:
            # Any other path serves the metrics (backwards compatibility).
            # _bake_output is looked up at call time so it can be patched.
            status, headers, output = _bake_output(
                registry, accept_header, accept_encoding_header, params, disable_compression)
        start_response(status, headers)
        return [output]

    return prometheus_app


class _SilentHandler(WSGIRequestHandler):
    """WSGI handler that does not log requests."""

    def log_message(self, format, *args):
        """Log nothing."""


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """Thread per request HTTP server."""
    # "Fire and forget" worker threads: ThreadingMixIn does not keep daemon
    # threads around to join them at server close.
    daemon_threads = True


def _get_best_family(address, port):
    """Automatically select address family depending on address"""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = next(iter(infos))
    return family, sockaddr[0]


def _reraise_io_error(exc: OSError, message: str):
    raise type(exc)(f"{message}: {exc}")


def _get_ssl_ctx(
        certfile: str,
        keyfile: str,
        protocol: int,
        cafile: Optional[str] = None,
        capath: Optional[str] = None,
        client_auth_required: bool = False,
        tls_min_version: Optional[ssl.TLSVersion] = None,
        tls_max_version: Optional[ssl.TLSVersion] = None
) -> ssl.SSLContext:
    """Load context supports SSL."""
    ssl_cxt = ssl.SSLContext(protocol=protocol)

    if cafile is not None or capath is not None:
        try:
            ssl_cxt.load_verify_locations(cafile, capath)
        except IOError as exc:
            _reraise_io_error(
                exc, f"Cannot load CA certificate chain from file {cafile!r} or directory {capath!r}")
    else:
        try:
            ssl_cxt.load_default_certs(purpose=ssl.Purpose.CLIENT_AUTH)
        except IOError as exc:
            _reraise_io_error(exc, "Cannot load default CA certificate chain")

    if client_auth_required:
        ssl_cxt.verify_mode = ssl.CERT_REQUIRED

    try:
        ssl_cxt.load_cert_chain(certfile=certfile, keyfile=keyfile)
    except IOError as exc:
        _reraise_io_error(
            exc, f"Cannot load server certificate file {certfile!r} or its private key file {keyfile!r}")

    if tls_min_version is not None:
        ssl_cxt.minimum_version = tls_min_version
    if tls_max_version is not None:
        ssl_cxt.maximum_version = tls_max_version

    return ssl_cxt


class MetricsServer:
    """The native server `start_http_server` returns, with the parts of `WSGIServer` users
    touch: `server_address`, `server_port`, `serve_forever`, `shutdown`, `server_close`."""

    def __init__(self, addr: str, port: int, registry: Collector = REGISTRY):
        self.address_family, addr = _get_best_family(addr, port)
        sock = socket.socket(self.address_family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
            sock.listen(128)
            self.server_address = sock.getsockname()
        except BaseException:
            sock.close()
            raise
        self.server_port = self.server_address[1]
        self._native = _native.MetricsServer(sock.detach(), registry)
        self._stopped = threading.Event()
        self._stopped.set()
        _live_servers.add(self)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            self._native.serve_forever()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stops serve_forever and waits until it has returned."""
        self._native.shutdown()
        self._stopped.wait()

    def server_close(self) -> None:
        self._native.close()

    def fileno(self) -> int:
        return self._native.fileno()


_live_servers: "weakref.WeakSet[MetricsServer]" = weakref.WeakSet()


@atexit.register
def _stop_servers() -> None:
    # Server threads must not be inside Python while the interpreter finalizes.
    for server in list(_live_servers):
        server._native.shutdown()
    _native.drain_at_exit(2.0)


def start_wsgi_server(
        port: int,
        addr: str = '0.0.0.0',
        registry: Collector = REGISTRY,
        certfile: Optional[str] = None,
        keyfile: Optional[str] = None,
        client_cafile: Optional[str] = None,
        client_capath: Optional[str] = None,
        protocol: int = ssl.PROTOCOL_TLS_SERVER,
        client_auth_required: bool = False,
        tls_min_version: Optional[ssl.TLSVersion] = None,
        tls_max_version: Optional[ssl.TLSVersion] = None
) -> Tuple[WSGIServer, threading.Thread]:
    """Starts a WSGI server for prometheus metrics as a daemon thread.

    Without TLS, the server is fastprom's native one: scrapes are answered on Rust threads,
    without the GIL for fastprom's own metrics. With TLS, it is the WSGI server of the
    reference."""
    if not (certfile and keyfile):
        httpd = MetricsServer(addr, port, registry)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        return httpd, t

    class TmpServer(ThreadingWSGIServer):
        """Copy of ThreadingWSGIServer to update address_family locally"""

    TmpServer.address_family, addr = _get_best_family(addr, port)
    app = make_wsgi_app(registry)
    httpd = make_server(addr, port, app, TmpServer, handler_class=_SilentHandler)
    if certfile and keyfile:
        context = _get_ssl_ctx(
            certfile,
            keyfile,
            protocol,
            client_cafile,
            client_capath,
            client_auth_required,
            tls_min_version,
            tls_max_version,
        )
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever)
    t.daemon = True
    t.start()

    return httpd, t


start_http_server = start_wsgi_server


def generate_latest(registry: Collector = REGISTRY, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """
    Generates the exposition format using the basic Prometheus text format.

    Params:
        registry: Collector to export data from.
        escaping: Escaping scheme used for metric and label names.

    Returns: UTF-8 encoded string containing the metrics in text format.
    """
    return _native.generate_text(registry, escaping)


def _media_type(accepted: str) -> str:
    return accepted.split(';')[0].strip()


def _negotiate(accept_header: str) -> Tuple[str, str, Optional[str], str]:
    """What an Accept header asks for: format ('text' or 'openmetrics'), escaping, OpenMetrics
    version (None for text) and the Content-Type of the answer."""
    # Python client library accepts a narrower range of content-types than
    # Prometheus does. Entries are tried in order; q-values are ignored.
    for accepted in (accept_header or '').split(','):
        media_type = _media_type(accepted)
        if media_type == 'application/openmetrics-text':
            toks = accepted.split(';')
            version = _get_version(toks)
            escaping = _get_escaping(toks)
            if not version:
                # No escaping parameter in the content type without a version.
                return 'openmetrics', openmetrics.UNDERSCORES, "1.0.0", openmetrics.CONTENT_TYPE_LATEST
            if parse_version(version) >= (1, 0, 0):
                content_type = f'application/openmetrics-text; version={version}; charset=utf-8; escaping=' + str(escaping)
                return 'openmetrics', escaping, version, content_type
        elif media_type == 'text/plain':
            toks = accepted.split(';')
            version = _get_version(toks)
            escaping = _get_escaping(toks)
            if version and parse_version(version) >= (1, 0, 0):
                return 'text', escaping, None, CONTENT_TYPE_LATEST + '; escaping=' + str(escaping)
    return 'text', openmetrics.UNDERSCORES, None, CONTENT_TYPE_PLAIN_0_0_4


def choose_encoder(accept_header: str) -> Tuple[Callable[[Collector], bytes], str]:
    fmt, escaping, version, content_type = _negotiate(accept_header)
    if fmt == 'openmetrics':
        return partial(openmetrics.generate_latest, escaping=escaping, version=version), content_type
    if content_type == CONTENT_TYPE_PLAIN_0_0_4:
        return generate_latest, content_type
    return partial(generate_latest, escaping=escaping), content_type


def _negotiate_native(accept_header: str) -> Tuple[str, str, Optional[bool], str]:
    """`_negotiate` for the native server: the version becomes whether native histograms are
    emitted, None when it cannot be compared (such requests are answered by Python)."""
    fmt, escaping, version, content_type = _negotiate(accept_header)
    native_histograms = None
    if version is not None:
        try:
            native_histograms = parse_version(version) >= (2, 0, 0)
        except Exception:
            pass
    return fmt, escaping, native_histograms, content_type


def _get_param(accept_header: List[str], name: str) -> Optional[str]:
    """Value of the first ``name=value`` token, or None."""
    for tok in accept_header:
        if '=' not in tok:
            continue
        key, value = tok.strip().split('=', 1)
        if key == name:
            return value
    return None


def _get_version(accept_header: List[str]) -> str:
    """Return the version tag from the Accept header.

    If no version is specified, returns empty string."""
    version = _get_param(accept_header, 'version')
    return "" if version is None else version


_ESCAPING_SCHEMES = (openmetrics.ALLOWUTF8, openmetrics.UNDERSCORES, openmetrics.DOTS, openmetrics.VALUES)


def _get_escaping(accept_header: List[str]) -> str:
    """Return the escaping scheme from the Accept header.

    If no escaping scheme is specified or the scheme is not one of the allowed
    strings, defaults to UNDERSCORES."""
    escaping = _get_param(accept_header, 'escaping')
    if escaping in _ESCAPING_SCHEMES:
        return escaping
    return openmetrics.UNDERSCORES


def gzip_accepted(accept_encoding_header: str) -> bool:
    for accepted in (accept_encoding_header or '').split(','):
        if accepted.split(';')[0].strip().lower() == 'gzip':
            return True
    return False


class MetricsHandler(BaseHTTPRequestHandler):
    """HTTP handler that gives metrics from ``REGISTRY``."""
    registry: Collector = REGISTRY

    def do_GET(self) -> None:
        registry = self.registry
        accept_header = self.headers.get('Accept')
        accept_encoding_header = self.headers.get('Accept-Encoding')
        params = parse_qs(urlparse(self.path).query)
        status, headers, output = _bake_output(registry, accept_header, accept_encoding_header, params, False)
        self.send_response(int(status.split(' ')[0]))
        for header in headers:
            self.send_header(*header)
        self.end_headers()
        self.wfile.write(output)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""

    @classmethod
    def factory(cls, registry: Collector) -> type:
        """Returns a dynamic MetricsHandler class tied
           to the passed registry.
        """
        return type(str(cls.__name__), (cls, object), {"registry": registry})


def write_to_textfile(path: str, registry: Collector, escaping: str = openmetrics.ALLOWUTF8, tmpdir: Optional[str] = None) -> None:
    """Write metrics to the given path.

    This is intended for use with the Node exporter textfile collector.
    The path must end in .prom for the textfile collector to process it.

    An optional tmpdir parameter can be set to determine where the
    metrics will be temporarily written to. If not set, it will be in
    the same directory as the .prom file. If provided, the path MUST be
    on the same filesystem."""
    base = path if tmpdir is None else os.path.join(tmpdir, os.path.basename(path))
    tmppath = f'{base}.{os.getpid()}.{threading.current_thread().ident}'
    try:
        with open(tmppath, 'wb') as f:
            f.write(generate_latest(registry, escaping))
        # rename(2) is atomic but fails on Windows if the destination exists.
        if os.name == 'nt':
            os.replace(tmppath, path)
        else:
            os.rename(tmppath, path)
    except Exception:
        if os.path.exists(tmppath):
            os.remove(tmppath)
        raise


def _make_handler(
        url: str,
        method: str,
        timeout: Optional[float],
        headers: Sequence[Tuple[str, str]],
        data: bytes,
        base_handler: Union[BaseHandler, type],
) -> Callable[[], None]:
    def handle() -> None:
        request = Request(url, data=data)
        request.get_method = lambda: method  # type: ignore
        for k, v in headers:
            request.add_header(k, v)
        resp = build_opener(base_handler).open(request, timeout=timeout)
        if resp.code >= 400:
            raise OSError(f"error talking to pushgateway: {resp.code} {resp.msg}")

    return handle


def default_handler(
        url: str,
        method: str,
        timeout: Optional[float],
        headers: List[Tuple[str, str]],
        data: bytes,
) -> Callable[[], None]:
    """Default handler that implements HTTP/HTTPS connections.

    Used by the push_to_gateway functions. Can be re-used by other handlers."""

    return _make_handler(url, method, timeout, headers, data, HTTPHandler)


def passthrough_redirect_handler(
        url: str,
        method: str,
        timeout: Optional[float],
        headers: List[Tuple[str, str]],
        data: bytes,
) -> Callable[[], None]:
    """
    Handler that automatically trusts redirect responses for all HTTP methods.

    Augments standard HTTPRedirectHandler capability by permitting PUT requests,
    preserving the method upon redirect, and passing through all headers and
    data from the original request. Only use this handler if you control or
    trust the source of redirect responses you encounter when making requests
    via the Prometheus client. This handler will simply repeat the identical
    request, including same method and data, to the new redirect URL."""

    return _make_handler(url, method, timeout, headers, data, _PrometheusRedirectHandler)


def basic_auth_handler(
        url: str,
        method: str,
        timeout: Optional[float],
        headers: List[Tuple[str, str]],
        data: bytes,
        username: Optional[str] = None,
        password: Optional[str] = None,
) -> Callable[[], None]:
    """Handler that implements HTTP/HTTPS connections with Basic Auth.

    Sets auth headers using supplied 'username' and 'password', if set.
    Used by the push_to_gateway functions. Can be re-used by other handlers."""

    def handle():
        """Handler that implements HTTP Basic Auth.
        """
        if username is not None and password is not None:
            token = base64.b64encode(f'{username}:{password}'.encode())
            headers.append(('Authorization', b'Basic ' + token))
        default_handler(url, method, timeout, headers, data)()

    return handle


def tls_auth_handler(
        url: str,
        method: str,
        timeout: Optional[float],
        headers: List[Tuple[str, str]],
        data: bytes,
        certfile: str,
        keyfile: str,
        cafile: Optional[str] = None,
        protocol: int = ssl.PROTOCOL_TLS_CLIENT,
        insecure_skip_verify: bool = False,
) -> Callable[[], None]:
    """Handler that implements an HTTPS connection with TLS Auth.

    The default protocol (ssl.PROTOCOL_TLS_CLIENT) will also enable
    ssl.CERT_REQUIRED and SSLContext.check_hostname by default. This can be
    disabled by setting insecure_skip_verify to True.

    Both this handler and the TLS feature on pushgateay are experimental."""
    context = ssl.SSLContext(protocol=protocol)
    if cafile is not None:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()

    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    handler = HTTPSHandler(context=context)
    return _make_handler(url, method, timeout, headers, data, handler)


def push_to_gateway(
        gateway: str,
        job: str,
        registry: Collector,
        grouping_key: Optional[Dict[str, Any]] = None,
        timeout: Optional[float] = 30,
        handler: Callable = default_handler,
        compression: CompressionType = None,
) -> None:
    """Push metrics to the given pushgateway.

    `gateway` the url for your push gateway. Either of the form
              'http://pushgateway.local', or 'pushgateway.local'.
              Scheme defaults to 'http' if none is provided
    `job` is the job label to be attached to all pushed metrics
    `registry` is a Collector, normally an instance of CollectorRegistry
    `grouping_key` please see the pushgateway documentation for details.
                   Defaults to None
    `timeout` is how long push will attempt to connect before giving up.
              Defaults to 30s, can be set to None for no timeout.
    `handler` is an optional function which can be provided to perform
              requests to the 'gateway'. It is called with the keyword
              arguments url, method, timeout, headers (a list of
              (name, value) tuples) and data (the request body), and must
              return a zero-argument callable that performs the request and
              raises an exception (e.g. IOError) on failure.
    `compression` selects the payload compression. Supported values are 'gzip'
                  and 'snappy'. Defaults to None (no compression).

    This overwrites all metrics with the same job and grouping_key.
    This uses the PUT HTTP method."""
    _use_gateway('PUT', gateway, job, registry, grouping_key, timeout, handler, compression)


def pushadd_to_gateway(
        gateway: str,
        job: str,
        registry: Optional[Collector],
        grouping_key: Optional[Dict[str, Any]] = None,
        timeout: Optional[float] = 30,
        handler: Callable = default_handler,
        compression: CompressionType = None,
) -> None:
    """PushAdd metrics to the given pushgateway.

    Arguments are as for push_to_gateway.

    This replaces metrics with the same name, job and grouping_key.
    This uses the POST HTTP method."""
    _use_gateway('POST', gateway, job, registry, grouping_key, timeout, handler, compression)


def delete_from_gateway(
        gateway: str,
        job: str,
        grouping_key: Optional[Dict[str, Any]] = None,
        timeout: Optional[float] = 30,
        handler: Callable = default_handler,
) -> None:
    """Delete metrics from the given pushgateway.

    Arguments are as for push_to_gateway.

    This deletes metrics with the given job and grouping_key.
    This uses the DELETE HTTP method."""
    _use_gateway('DELETE', gateway, job, None, grouping_key, timeout, handler)


def _use_gateway(
        method: str,
        gateway: str,
        job: str,
        registry: Optional[Collector],
        grouping_key: Optional[Dict[str, Any]],
        timeout: Optional[float],
        handler: Callable,
        compression: CompressionType = None,
) -> None:
    # Default to http:// (see https://bugs.python.org/issue27657 for urlparse quirks).
    if urlparse(gateway).scheme not in ('http', 'https'):
        gateway = f'http://{gateway}'

    url = '{}/metrics/{}/{}'.format(gateway.rstrip('/'), *_escape_grouping_key("job", job))
    if grouping_key is None:
        grouping_key = {}
    url += ''.join(
        '/{}/{}'.format(*_escape_grouping_key(str(k), str(v)))
        for k, v in sorted(grouping_key.items()))

    if method == 'DELETE':
        headers: List[Tuple[str, str]] = [('Content-Type', CONTENT_TYPE_PLAIN_0_0_4)]
        if compression is not None:
            raise ValueError('Compression is not supported for DELETE requests.')
        data = b''
    else:
        if registry is None:
            registry = REGISTRY
        data, headers = _compress_payload(generate_latest(registry), compression)

    handler(
        url=url, method=method, timeout=timeout,
        headers=headers, data=data,
    )()


def _compress_payload(data: bytes, compression: CompressionType) -> Tuple[bytes, List[Tuple[str, str]]]:
    headers = [('Content-Type', CONTENT_TYPE_PLAIN_0_0_4)]
    if compression is None:
        return data, headers

    encoding = compression.lower()
    if encoding == 'gzip':
        headers.append(('Content-Encoding', 'gzip'))
        return gzip.compress(data), headers
    if encoding == 'snappy':
        if not SNAPPY_AVAILABLE:
            raise RuntimeError('Snappy compression requires the python-snappy package to be installed.')
        headers.append(('Content-Encoding', 'snappy'))
        compressor = snappy.StreamCompressor()
        compressed = compressor.compress(data)
        flush = getattr(compressor, 'flush', None)
        if callable(flush):
            compressed += flush()
        return compressed, headers
    raise ValueError(f"Unsupported compression type: {compression}")


def _escape_grouping_key(k, v):
    if v == "":
        # Per https://github.com/prometheus/pushgateway/pull/346.
        return k + "@base64", "="
    if '/' in v or ' ' in v:
        # Pushgateway >= 0.9.0 accepts base64 for values with '/' or ' '.
        return k + "@base64", base64.urlsafe_b64encode(v.encode("utf-8")).decode("utf-8")
    return k, quote_plus(v)


def instance_ip_grouping_key() -> Dict[str, Any]:
    """Grouping key with instance set to the IP Address of this host."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as s:
        if sys.platform == 'darwin':
            # Connecting to localhost does not reveal the address on macOS.
            s.connect(('10.255.255.255', 1))
        else:
            s.connect(('localhost', 0))

        return {'instance': s.getsockname()[0]}


from .asgi import make_asgi_app  # noqa: E402,F401
