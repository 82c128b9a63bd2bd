"""Differential tests of fastprom's exposition/serving glue against prometheus_client.

Every test builds the same metrics in a fresh registry of each library, drives the
same entry point of both libraries and expects the same observable result
(status lines, headers, bodies, exceptions).
"""

import asyncio
import base64
import gzip
import http.client
from http.server import BaseHTTPRequestHandler, HTTPServer
import inspect
import os
import socket
import ssl
import threading
import time
from unittest import mock
import urllib.error
import urllib.request
from wsgiref.util import setup_testing_defaults

import pytest

import prometheus_client as pc
import prometheus_client.exposition as pc_expo
import prometheus_client.metrics_core as pc_metrics_core
import prometheus_client.openmetrics.exposition as pc_om
import prometheus_client.samples as pc_samples
from prometheus_client.bridge.graphite import GraphiteBridge as PcGraphiteBridge

import fastprom
import fastprom.asgi as fp_asgi
import fastprom.exposition as fp_expo
import fastprom.metrics_core as fp_metrics_core
import fastprom.openmetrics.exposition as fp_om
import fastprom.samples as fp_samples
from fastprom.bridge.graphite import GraphiteBridge as FpGraphiteBridge
from libs import family_blocks

LIBS = {
    'ref': (pc, pc_expo, pc_om),
    'fp': (fastprom, fp_expo, fp_om),
}

HELP_TEXT = 'A counter\nwith "quotes" and \\ backslash'


# --------------------------------------------------------------------------------------------
# helpers


def _populate(lib, registry):
    """Create the same metrics in ``registry`` using the metric classes of ``lib``."""
    with mock.patch('time.time', return_value=123.456):
        c = lib.Counter('cc', HELP_TEXT, ['l'], registry=registry)
        c.labels('v"a\\l\nue').inc(2)
        c.labels('plain').inc()
        g = lib.Gauge('gg', 'A gauge', registry=registry)
        g.set(1234567.0)
        u = lib.Gauge('my.utf8_gauge', 'Dotted name', ['label.with.dots'], registry=registry)
        u.labels('ü').set(-1e20)
        h = lib.Histogram('hh', 'A histogram', ['method'], buckets=(0.5, 1, 2.5, 1234567), registry=registry)
        h.labels('GET').observe(0.3)
        h.labels('GET').observe(2000000)
        h.labels('POST').observe(1, exemplar={'trace_id': 'abc"\\'})
        s = lib.Summary('ss', 'A summary', registry=registry)
        s.observe(3)
        lib.Info('ii', 'An info', registry=registry).info({'version': '1.0'})
        lib.Enum('ee', 'An enum', states=['a', 'b'], registry=registry).state('b')
    return registry


def _registries():
    return {name: _populate(mods[0], mods[0].CollectorRegistry()) for name, mods in LIBS.items()}


@pytest.fixture
def regs():
    return _registries()


def _outcome(fn, *args, **kwargs):
    """('ok', result) or ('raise', exception type, message)."""
    try:
        return ('ok', fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - compared between libraries
        return ('raise', type(exc), str(exc.args[0]) if exc.args else '')


def _ungzip(body, headers):
    if ('Content-Encoding', 'gzip') in headers:
        return gzip.decompress(body)
    return body


def _families(body):
    """Sorted metric-family blocks: a restricted registry (``name[]``) yields its collectors in
    set order, which differs between two registries even in the reference."""
    return family_blocks(body)


# --------------------------------------------------------------------------------------------
# module surface


def test_constants_and_all():
    for name in ('CONTENT_TYPE_PLAIN_0_0_4', 'CONTENT_TYPE_PLAIN_1_0_0', 'CONTENT_TYPE_LATEST', '__all__',
                 'SNAPPY_AVAILABLE'):
        assert getattr(fp_expo, name) == getattr(pc_expo, name), name
    for name in ('CONTENT_TYPE_LATEST', 'CONTENT_TYPE_LATEST_2_0', 'ESCAPING_HEADER_TAG', 'ALLOWUTF8',
                 'UNDERSCORES', 'DOTS', 'VALUES'):
        assert getattr(fp_om, name) == getattr(pc_om, name), name
    assert fp_expo.start_http_server is fp_expo.start_wsgi_server
    assert fp_expo.make_asgi_app is fp_asgi.make_asgi_app
    assert issubclass(fp_expo.ThreadingWSGIServer, fp_expo.WSGIServer)
    assert fp_expo.ThreadingWSGIServer.daemon_threads is True
    assert issubclass(fp_expo._PrometheusRedirectHandler, urllib.request.HTTPRedirectHandler)


def _describe_default(value, lib_module):
    if value is inspect.Parameter.empty or value is None or isinstance(value, (str, int, float, bool)):
        return value
    if value is lib_module.REGISTRY:
        return 'REGISTRY'
    if callable(value):
        return value.__name__
    return repr(value)


@pytest.mark.parametrize('name', [
    'generate_latest', 'choose_encoder', 'gzip_accepted', '_bake_output', 'make_wsgi_app', '_get_ssl_ctx',
    'start_wsgi_server', 'write_to_textfile', 'push_to_gateway', 'pushadd_to_gateway', 'delete_from_gateway',
    '_use_gateway', '_escape_grouping_key', 'default_handler', 'passthrough_redirect_handler',
    'basic_auth_handler', 'tls_auth_handler', 'instance_ip_grouping_key', 'make_asgi_app',
    '_get_best_family', '_get_version', '_get_escaping',
])
def test_signatures(name):
    def shape(fn, lib):
        return [(p.name, p.kind, _describe_default(p.default, lib))
                for p in inspect.signature(fn).parameters.values()]
    assert shape(getattr(fp_expo, name), fastprom) == shape(getattr(pc_expo, name), pc)


def test_openmetrics_signatures():
    for name in ('generate_latest', 'escape_metric_name', 'escape_label_name', '_escape'):
        fp_sig = inspect.signature(getattr(fp_om, name))
        pc_sig = inspect.signature(getattr(pc_om, name))
        assert [(p.name, p.default) for p in fp_sig.parameters.values()] == \
            [(p.name, p.default) for p in pc_sig.parameters.values()]


# --------------------------------------------------------------------------------------------
# rendering entry points


@pytest.mark.parametrize('escaping', ['underscores', 'allow-utf-8', 'dots', 'values'])
def test_generate_latest_text(regs, escaping):
    assert fp_expo.generate_latest(regs['fp'], escaping) == pc_expo.generate_latest(regs['ref'], escaping)
    assert fp_expo.generate_latest(regs['fp']) == pc_expo.generate_latest(regs['ref'])


@pytest.mark.parametrize('escaping', ['underscores', 'allow-utf-8', 'dots', 'values'])
@pytest.mark.parametrize('version', ['1.0.0', '2.0.0', '1.5', '2', '2.x', 'abc'])
def test_generate_latest_openmetrics(regs, escaping, version):
    assert fp_om.generate_latest(regs['fp'], escaping, version) == \
        pc_om.generate_latest(regs['ref'], escaping, version)
    assert fp_om.generate_latest(regs['fp']) == pc_om.generate_latest(regs['ref'])


class _NativeHistogramCollector:
    def __init__(self, metrics_core, samples):
        self._metrics_core = metrics_core
        self._samples = samples

    def collect(self):
        m = self._metrics_core.Metric('plain', 'Plain gauge', 'gauge')
        m.add_sample('plain', {}, 1.5)
        yield m
        nh = self._samples.NativeHistogram(
            24, 100, 0, 0.001, 4,
            pos_spans=(self._samples.BucketSpan(0, 2), self._samples.BucketSpan(1, 2)),
            pos_deltas=(2, 1, -3, 3),
        )
        m = self._metrics_core.Metric('nhist', 'A native histogram', 'histogram')
        m.add_sample('nhist', {}, None, None, None, nh)
        yield m


def _nh_registries():
    out = {}
    for name, core, samples in (('ref', pc_metrics_core, pc_samples), ('fp', fp_metrics_core, fp_samples)):
        reg = LIBS[name][0].CollectorRegistry()
        reg.register(_NativeHistogramCollector(core, samples))
        out[name] = reg
    return out


@pytest.mark.parametrize('version', ['1.0.0', '2.0.0', '3', '2.x', 'abc', None, 2])
def test_openmetrics_native_histogram_versions(version):
    regs = _nh_registries()
    results = {}
    for name, (_, _, om) in LIBS.items():
        try:
            results[name] = ('ok', om.generate_latest(regs[name], version=version))
        except Exception as exc:  # noqa: BLE001
            # Rendering errors carry the failing metric as their last argument.
            results[name] = ('raise', type(exc), exc.args[:-1], exc.args[-1].name)
    assert results['fp'] == results['ref']


# --------------------------------------------------------------------------------------------
# name escaping helpers

NAMES = ['', 'abc', 'my.metric', 'my_metric_total', '1abc', 'a:b', 'a1', 'ünï', 'a\nb"c\\', 'label.with.dots',
         'U__x', '\ud800x', '\U0001F600', '__reserved', 'with space']
SCHEMES = ['allow-utf-8', 'underscores', 'dots', 'values', 'unknown']


@pytest.mark.parametrize('scheme', SCHEMES)
@pytest.mark.parametrize('name', NAMES)
def test_escape_helpers(name, scheme):
    assert fp_om.escape_metric_name(name, scheme) == pc_om.escape_metric_name(name, scheme)
    assert fp_om.escape_label_name(name, scheme) == pc_om.escape_label_name(name, scheme)
    assert fp_om._escape(name, scheme, fp_om._is_legacy_metric_rune) == \
        pc_om._escape(name, scheme, pc_om._is_legacy_metric_rune)
    assert fp_om._escape(name, scheme, fp_om._is_legacy_labelname_rune) == \
        pc_om._escape(name, scheme, pc_om._is_legacy_labelname_rune)


def test_escape_helper_defaults_and_runes():
    for name in NAMES:
        assert fp_om.escape_metric_name(name) == pc_om.escape_metric_name(name)
        assert fp_om.escape_label_name(name) == pc_om.escape_label_name(name)
        for i, ch in enumerate(name):
            for fn in ('_is_legacy_metric_rune', '_is_legacy_labelname_rune'):
                assert getattr(fp_om, fn)(ch, i) == getattr(pc_om, fn)(ch, i)
            assert fp_om._is_valid_utf8(ch) == pc_om._is_valid_utf8(ch)
    for bad in ('', 'ab'):
        assert _outcome(fp_om._is_legacy_labelname_rune, bad, 0) == \
            _outcome(pc_om._is_legacy_labelname_rune, bad, 0)
        assert _outcome(fp_om._is_legacy_metric_rune, bad, 0) == _outcome(pc_om._is_legacy_metric_rune, bad, 0)


@pytest.mark.parametrize('mtype,sample_name', [
    ('counter', 'c_total'), ('counter', 'c_created'), ('gaugehistogram', 'c_bucket'), ('gaugehistogram', 'c_gsum'),
    ('histogram', 'c_bucket'), ('histogram', 'c'), ('histogram', 'c_sum'), ('gauge', 'c'), ('summary', 'c_count'),
])
@pytest.mark.parametrize('timestamp', [None, 1.5, pc_samples.Timestamp(12, 345)])
def test_compose_exemplar_string(mtype, sample_name, timestamp):
    metric = pc_metrics_core.Metric('c', 'help', mtype)
    sample = pc_samples.Sample(sample_name, {}, 1.0)
    exemplar = pc_samples.Exemplar({'b': 'x"y\\z\n', 'a': 'ü'}, 1234567.0, timestamp)
    assert fp_om._is_valid_exemplar_metric(metric, sample) == pc_om._is_valid_exemplar_metric(metric, sample)
    assert _outcome(fp_om._compose_exemplar_string, metric, sample, exemplar) == \
        _outcome(pc_om._compose_exemplar_string, metric, sample, exemplar)


# --------------------------------------------------------------------------------------------
# content negotiation

ACCEPT_HEADERS = [
    None, '', '*/*', 'text/plain', 'text/plain; version=0.0.4', 'text/plain; version=1.0.0',
    'text/plain;version=1.0.0;escaping=allow-utf-8', 'text/plain; version=1.0.0; escaping=dots',
    'text/plain; version=1.0.0; escaping=values', 'text/plain; version=1.0.0; escaping=bogus',
    'text/plain; version=1.0.0; escaping=underscores; escaping=dots', 'text/plain; version=2',
    'text/plain; version=', 'text/plain; escaping=allow-utf-8',
    'application/openmetrics-text', 'application/openmetrics-text; version=0.0.1',
    'application/openmetrics-text; version=0.0.1, text/plain; version=1.0.0; escaping=underscores',
    'application/openmetrics-text; version=1.0.0', 'application/openmetrics-text; version=1.0.0; escaping=allow-utf-8',
    'application/openmetrics-text; version=2.0.0', 'application/openmetrics-text; version=2.0.0; escaping=values',
    'application/openmetrics-text; escaping=allow-utf-8', 'application/openmetrics-text; version=',
    'application/openmetrics-text; version=2', 'application/openmetrics-text; version=10.0.0',
    'application/openmetrics-text; version=2.x', 'application/openmetrics-text; version=1.0.0; version=2.0.0',
    'application/openmetrics-text;version=1.0.0;q=0.5, text/plain;q=0.9',
    'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;'
    'version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1',
    'APPLICATION/openmetrics-text; version=1.0.0', '  application/openmetrics-text  ; version=1.0.0',
    # These raise TypeError in the reference (str compared with int).
    'application/openmetrics-text; version=1.x', 'text/plain; version=abc', 'text/plain; version=1.0.0-rc1',
]


@pytest.mark.parametrize('accept', ACCEPT_HEADERS)
def test_choose_encoder(regs, accept):
    ref = _outcome(pc_expo.choose_encoder, accept)
    fp = _outcome(fp_expo.choose_encoder, accept)
    if ref[0] == 'raise':
        assert fp == ref
        return
    assert fp[0] == 'ok'
    ref_encoder, ref_content_type = ref[1]
    fp_encoder, fp_content_type = fp[1]
    assert fp_content_type == ref_content_type
    assert _outcome(fp_encoder, regs['fp']) == _outcome(ref_encoder, regs['ref'])


@pytest.mark.parametrize('header', [
    None, '', 'gzip', 'GZIP', 'deflate, gzip;q=1.0, *;q=0.5', 'gzip;q=0', 'x-gzip', 'br', ' gzip ', 'identity,gzip',
    'deflate', '*',
])
def test_gzip_accepted(header):
    assert fp_expo.gzip_accepted(header) == pc_expo.gzip_accepted(header)


@pytest.mark.parametrize('toks', [
    [], ['text/plain'], ['text/plain', ' version=1.0.0'], ['x', 'version=a=b'], ['x', 'escaping=dots', 'version=2'],
    ['x', 'escaping=values'], ['x', 'escaping=allow-utf-8'], ['x', 'escaping=nope', 'escaping=dots'], ['x', 'q=1'],
])
def test_accept_param_helpers(toks):
    assert fp_expo._get_version(toks) == pc_expo._get_version(toks)
    assert fp_expo._get_escaping(toks) == pc_expo._get_escaping(toks)


# --------------------------------------------------------------------------------------------
# WSGI


def _call_wsgi(app, method='GET', path='/metrics', query='', **extra):
    environ = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query)
    environ.update(extra)
    captured = {}

    def start_response(status, headers):
        captured['status'] = status
        captured['headers'] = headers

    body = app(environ, start_response)
    assert isinstance(body, list) and len(body) == 1
    return captured['status'], captured['headers'], _ungzip(body[0], captured['headers'])


WSGI_REQUESTS = [
    dict(),
    dict(path='/'),
    dict(path='/anything/else'),
    dict(method='OPTIONS'),
    dict(method='POST'),
    dict(method='HEAD'),
    dict(method='PUT', path='/favicon.ico'),
    dict(path='/favicon.ico'),
    dict(HTTP_ACCEPT_ENCODING='gzip'),
    dict(HTTP_ACCEPT_ENCODING='deflate, GZIP;q=0.5'),
    dict(HTTP_ACCEPT='application/openmetrics-text; version=1.0.0'),
    dict(HTTP_ACCEPT='text/plain; version=1.0.0; escaping=allow-utf-8', HTTP_ACCEPT_ENCODING='gzip'),
    dict(query='name[]=gg&name[]=cc_total&name[]=hh_bucket'),
    dict(query='name[]=my.utf8_gauge', HTTP_ACCEPT='application/openmetrics-text; version=1.0.0; escaping=dots'),
    dict(query='name[]=does_not_exist'),
    dict(query='other=1'),
]


@pytest.mark.parametrize('disable_compression', [False, True])
@pytest.mark.parametrize('request_kwargs', WSGI_REQUESTS)
def test_wsgi_app(regs, request_kwargs, disable_compression):
    ref = _call_wsgi(pc_expo.make_wsgi_app(regs['ref'], disable_compression), **request_kwargs)
    fp = _call_wsgi(fp_expo.make_wsgi_app(regs['fp'], disable_compression), **request_kwargs)
    assert fp[:2] == ref[:2]
    assert _families(fp[2]) == _families(ref[2])


def test_wsgi_method_not_allowed_body(regs):
    status, headers, body = _call_wsgi(fp_expo.make_wsgi_app(regs['fp']), method='POST')
    assert status == '405 Method Not Allowed'
    assert headers == [('Allow', 'OPTIONS,GET')]
    assert body == b'# HTTP 405 Method Not Allowed: POST; use OPTIONS or GET\n'


def test_wsgi_gzip_header(regs):
    status, headers, _ = _call_wsgi(fp_expo.make_wsgi_app(regs['fp']), HTTP_ACCEPT_ENCODING='gzip')
    assert status == '200 OK'
    assert headers == [('Content-Type', fp_expo.CONTENT_TYPE_PLAIN_0_0_4), ('Content-Encoding', 'gzip')]


def test_wsgi_default_registry():
    app = fp_expo.make_wsgi_app()
    status, headers, body = _call_wsgi(app)
    assert status == '200 OK'
    assert headers == [('Content-Type', fp_expo.CONTENT_TYPE_PLAIN_0_0_4)]
    assert isinstance(body, bytes)


def test_wsgi_bake_output_is_looked_up_at_call_time(regs):
    app = fp_expo.make_wsgi_app(regs['fp'])
    with mock.patch('fastprom.exposition._bake_output', side_effect=fp_expo._bake_output) as patched:
        assert _call_wsgi(app, path='/favicon.ico') == ('200 OK', [], b'')
        assert patched.call_count == 0
        _call_wsgi(app)
        assert patched.call_count == 1
    with mock.patch('fastprom.exposition._bake_output', return_value=('200 OK', [('X', 'y')], b'patched')):
        assert _call_wsgi(app) == ('200 OK', [('X', 'y')], b'patched')


def test_bake_output(regs):
    for args in [(None, None, {}, False), ('text/plain; version=1.0.0', 'gzip', {'name[]': ['gg']}, False),
                 ('application/openmetrics-text', 'gzip', {}, True)]:
        ref = pc_expo._bake_output(regs['ref'], *args)
        fp = fp_expo._bake_output(regs['fp'], *args)
        assert fp[:2] == ref[:2]
        assert _ungzip(fp[2], fp[1]) == _ungzip(ref[2], ref[1])


# --------------------------------------------------------------------------------------------
# ASGI

asgiref_testing = pytest.importorskip('asgiref.testing')


def _call_asgi(app, query_string=b'', headers=(), request_type='http.request'):
    scope = {
        'client': ('127.0.0.1', 32767), 'headers': list(headers), 'http_version': '1.0', 'method': 'GET',
        'path': '/', 'query_string': query_string, 'scheme': 'http', 'server': ('127.0.0.1', 80), 'type': 'http',
    }

    async def run():
        communicator = asgiref_testing.ApplicationCommunicator(app, scope)
        await communicator.send_input({'type': request_type, 'body': b''})
        outputs = []
        while True:
            try:
                outputs.append(await communicator.receive_output(0.2))
            except asyncio.TimeoutError:
                break
        await communicator.wait()
        return outputs

    outputs = asyncio.run(run())
    if len(outputs) == 2 and (b'Content-Encoding', b'gzip') in outputs[0]['headers']:
        outputs[1] = dict(outputs[1], body=gzip.decompress(outputs[1]['body']))
    return outputs


ASGI_REQUESTS = [
    dict(),
    dict(headers=[(b'Accept-Encoding', b'gzip')]),
    dict(headers=[(b'accept-encoding', b'deflate'), (b'ACCEPT-ENCODING', b'gzip')]),
    dict(headers=[(b'accept', b'application/openmetrics-text; version=0.0.1'),
                  (b'Accept', b'text/plain; version=1.0.0; escaping=values')]),
    dict(headers=[(b'accept', b'application/openmetrics-text; version=1.0.0; escaping=allow-utf-8')]),
    dict(query_string=b'name[]=gg&name[]=ss_count&name[]=ss_sum'),
    dict(query_string=b'name[]=ii_info', headers=[(b'accept', b'application/openmetrics-text')]),
    dict(request_type='http.disconnect'),
]


@pytest.mark.parametrize('disable_compression', [False, True])
@pytest.mark.parametrize('request_kwargs', ASGI_REQUESTS)
def test_asgi_app(regs, request_kwargs, disable_compression):
    ref = _call_asgi(pc_expo.make_asgi_app(regs['ref'], disable_compression), **request_kwargs)
    fp = _call_asgi(fp_expo.make_asgi_app(regs['fp'], disable_compression), **request_kwargs)
    for outputs in (ref, fp):
        if len(outputs) == 2:
            outputs[1]['body'] = _families(outputs[1]['body'])
    assert fp == ref


def test_asgi_response_shape(regs):
    outputs = _call_asgi(fp_asgi.make_asgi_app(regs['fp']), headers=[(b'accept-encoding', b'gzip')])
    assert [o['type'] for o in outputs] == ['http.response.start', 'http.response.body']
    assert outputs[0]['status'] == 200
    assert outputs[0]['headers'] == [(b'Content-Type', fp_expo.CONTENT_TYPE_PLAIN_0_0_4.encode()),
                                     (b'Content-Encoding', b'gzip')]
    assert _call_asgi(fp_asgi.make_asgi_app(regs['fp']), request_type='http.disconnect') == []


def test_asgi_rejects_non_http_scope(regs):
    app = fp_asgi.make_asgi_app(regs['fp'])

    async def run():
        await app({'type': 'websocket', 'headers': []}, None, None)

    with pytest.raises(AssertionError):
        asyncio.run(run())


# --------------------------------------------------------------------------------------------
# MetricsHandler and start_http_server


def _serve(handler_class):
    server = HTTPServer(('127.0.0.1', 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    return server


def _http_request(port, method='GET', path='/metrics', headers=None):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        keep = [(k, v) for k, v in resp.getheaders() if k.lower() not in ('date', 'server', 'content-length')]
        if ('Content-Encoding', 'gzip') in keep:
            body = gzip.decompress(body)
        return resp.status, resp.reason, keep, _families(body)
    finally:
        conn.close()


HTTP_REQUESTS = [
    dict(),
    dict(path='/metrics?name[]=gg&name[]=cc_created'),
    dict(headers={'Accept-Encoding': 'gzip'}),
    dict(headers={'Accept': 'application/openmetrics-text; version=1.0.0', 'Accept-Encoding': 'gzip'}),
    dict(headers={'Accept': 'text/plain; version=1.0.0; escaping=dots'}),
    dict(method='POST'),
]


@pytest.fixture(scope='module')
def handler_servers():
    """One MetricsHandler server per library, serving identical registries."""
    regs = _registries()
    servers = {name: _serve(expo.MetricsHandler.factory(regs[name])) for name, (_, expo, _) in LIBS.items()}
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize('request_kwargs', HTTP_REQUESTS)
def test_metrics_handler(handler_servers, request_kwargs):
    ref = _http_request(handler_servers['ref'].server_port, **request_kwargs)
    fp = _http_request(handler_servers['fp'].server_port, **request_kwargs)
    assert fp == ref


def test_metrics_handler_factory(regs):
    handler = fp_expo.MetricsHandler.factory(regs['fp'])
    assert handler.__name__ == 'MetricsHandler'
    assert issubclass(handler, fp_expo.MetricsHandler)
    assert handler.registry is regs['fp']
    assert fp_expo.MetricsHandler.registry is fastprom.REGISTRY
    assert issubclass(fp_expo.MetricsHandler, BaseHTTPRequestHandler)


def test_metrics_handler_uses_patched_bake_output(regs):
    server = _serve(fp_expo.MetricsHandler.factory(regs['fp']))
    try:
        with mock.patch('fastprom.exposition._bake_output',
                        return_value=('201 Created', [('X-Test', 'yes')], b'patched')):
            status, _, headers, body = _http_request(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    assert (status, body) == (201, [b'patched'])
    assert ('X-Test', 'yes') in headers


def _urlopen(url, method='GET', headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, resp_headers, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, body = err.code, err.headers, err.read()
    keep = [(k, v) for k, v in resp_headers.items() if k.lower() not in ('date', 'server')]
    if ('Content-Encoding', 'gzip') in keep:
        body = gzip.decompress(body)
    return status, keep, _families(body)


@pytest.fixture(scope='module')
def http_servers():
    """One start_http_server per library, serving identical registries."""
    regs = _registries()
    servers = {}
    for name, (_, expo, _) in LIBS.items():
        server, thread = expo.start_http_server(0, addr='127.0.0.1', registry=regs[name])
        assert thread.daemon and thread.is_alive()
        servers[name] = server
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize('request_kwargs', [
    dict(), dict(method='POST'), dict(method='HEAD'), dict(method='OPTIONS'),
    dict(headers={'Accept-Encoding': 'gzip', 'Accept': 'application/openmetrics-text'}),
    dict(path='/favicon.ico'), dict(path='/metrics?name[]=hh_bucket'),
])
def test_start_http_server(http_servers, request_kwargs):
    kwargs = dict(request_kwargs)
    path = kwargs.pop('path', '/metrics')
    results = {name: _urlopen(f'http://127.0.0.1:{server.server_port}{path}', **kwargs)
               for name, server in http_servers.items()}
    assert results['fp'] == results['ref']


def test_start_wsgi_server_returns_server_and_thread(regs):
    server, thread = fp_expo.start_wsgi_server(0, addr='127.0.0.1', registry=regs['fp'])
    try:
        assert isinstance(server, fp_expo.MetricsServer)
        assert server.server_address == ('127.0.0.1', server.server_port)
        assert isinstance(thread, threading.Thread) and thread.daemon
        assert server.address_family == socket.AF_INET
        status, headers, body = _urlopen(f'http://127.0.0.1:{server.server_port}/metrics')
        assert status == 200
        assert ('Content-Type', fp_expo.CONTENT_TYPE_PLAIN_0_0_4) in headers
        assert body == _families(pc_expo.generate_latest(regs['ref']))
    finally:
        server.shutdown()
        server.server_close()


def test_get_best_family():
    for addr in ('127.0.0.1', '0.0.0.0', 'localhost'):
        assert fp_expo._get_best_family(addr, 0) == pc_expo._get_best_family(addr, 0)


def test_get_ssl_ctx_errors(tmp_path):
    missing = str(tmp_path / 'missing.pem')
    cases = [
        (missing, missing, ssl.PROTOCOL_TLS_SERVER),
        (missing, missing, ssl.PROTOCOL_TLS_SERVER, missing),
        (missing, missing, ssl.PROTOCOL_TLS_SERVER, None, str(tmp_path / 'nodir')),
    ]
    for args in cases:
        ref = _outcome(pc_expo._get_ssl_ctx, *args)
        fp = _outcome(fp_expo._get_ssl_ctx, *args)
        assert ref[0] == 'raise'
        assert fp == ref


def test_tls_auth_handler_missing_files(tmp_path):
    missing = str(tmp_path / 'missing.pem')
    for kwargs in ({}, {'cafile': missing}, {'insecure_skip_verify': True}):
        ref = _outcome(pc_expo.tls_auth_handler, 'https://x', 'PUT', 1, [], b'', missing, missing, **kwargs)
        fp = _outcome(fp_expo.tls_auth_handler, 'https://x', 'PUT', 1, [], b'', missing, missing, **kwargs)
        assert fp == ref


# --------------------------------------------------------------------------------------------
# write_to_textfile


@pytest.mark.parametrize('escaping', [None, 'underscores', 'allow-utf-8', 'dots', 'values'])
@pytest.mark.parametrize('use_tmpdir', [False, True])
def test_write_to_textfile(regs, tmp_path, escaping, use_tmpdir):
    contents = {}
    for name, (_, expo, _) in LIBS.items():
        directory = tmp_path / name
        directory.mkdir()
        kwargs = {} if escaping is None else {'escaping': escaping}
        if use_tmpdir:
            (directory / 'tmp').mkdir()
            kwargs['tmpdir'] = str(directory / 'tmp')
        path = directory / 'metrics.prom'
        expo.write_to_textfile(str(path), regs[name], **kwargs)
        contents[name] = path.read_bytes()
        assert sorted(os.listdir(directory)) == (['metrics.prom', 'tmp'] if use_tmpdir else ['metrics.prom'])
        if use_tmpdir:
            assert os.listdir(directory / 'tmp') == []
    assert contents['fp'] == contents['ref']


def test_write_to_textfile_overwrites(regs, tmp_path):
    path = tmp_path / 'metrics.prom'
    path.write_text('old')
    fp_expo.write_to_textfile(str(path), regs['fp'])
    assert path.read_bytes() == pc_expo.generate_latest(regs['ref'], 'allow-utf-8')


class _BrokenCollector:
    def collect(self):
        raise RuntimeError('collect failed')


def test_write_to_textfile_cleans_up_on_error(tmp_path):
    outcomes = {}
    for name, (lib, expo, _) in LIBS.items():
        directory = tmp_path / name
        (directory / 'tmp').mkdir(parents=True)
        reg = lib.CollectorRegistry()
        reg.register(_BrokenCollector())
        outcomes[name] = [
            _outcome(expo.write_to_textfile, str(directory / 'metrics.prom'), reg),
            _outcome(expo.write_to_textfile, str(directory / 'metrics.prom'), reg, tmpdir=str(directory / 'tmp')),
        ]
        assert os.listdir(directory) == ['tmp']
        assert os.listdir(directory / 'tmp') == []
    assert outcomes['fp'] == outcomes['ref']
    assert outcomes['fp'][0][:2] == ('raise', RuntimeError)


def test_write_to_textfile_missing_directory(regs, tmp_path):
    path = str(tmp_path / 'nope' / 'metrics.prom')
    ref = _outcome(pc_expo.write_to_textfile, path, regs['ref'])
    fp = _outcome(fp_expo.write_to_textfile, path, regs['fp'])
    assert ref[:2] == fp[:2] == ('raise', FileNotFoundError)


# --------------------------------------------------------------------------------------------
# pushgateway


class _Capture:
    """A handler that records its arguments instead of talking HTTP."""

    def __init__(self):
        self.calls = []

    def __call__(self, url, method, timeout, headers, data):
        self.calls.append(dict(url=url, method=method, timeout=timeout, headers=list(headers), data=data))
        return lambda: None


GATEWAYS = ['http://gw:9091', 'gw:9091', 'gw', 'https://gw/', 'http://gw/prefix//', 'localhost:9091', 'ftp://gw']
GROUPING_KEYS = [
    None, {}, {'instance': 'host:1'}, {'a': 'x/y', 'b': 'with space', 'c': '', 'd': 7, 'e': 'plain+ü&?='},
    {'z': 'last', 'a': 'first'}, {1: 2},
]
JOBS = ['my_job', 'job/with/slash', 'job with space', '', 'ü+&']


def _capture_push(expo, fn_name, *args, **kwargs):
    capture = _Capture()
    outcome = _outcome(getattr(expo, fn_name), *args, handler=capture, **kwargs)
    for call in capture.calls:
        if ('Content-Encoding', 'gzip') in call['headers']:
            call['data'] = gzip.decompress(call['data'])
    return outcome, capture.calls


@pytest.mark.parametrize('gateway', GATEWAYS)
@pytest.mark.parametrize('grouping_key', GROUPING_KEYS)
@pytest.mark.parametrize('job', JOBS)
def test_push_url_building(regs, gateway, grouping_key, job):
    for fn_name in ('push_to_gateway', 'pushadd_to_gateway'):
        ref = _capture_push(pc_expo, fn_name, gateway, job, regs['ref'], grouping_key)
        fp = _capture_push(fp_expo, fn_name, gateway, job, regs['fp'], grouping_key)
        assert fp == ref
    ref = _capture_push(pc_expo, 'delete_from_gateway', gateway, job, grouping_key)
    fp = _capture_push(fp_expo, 'delete_from_gateway', gateway, job, grouping_key)
    assert fp == ref


@pytest.mark.parametrize('compression', [None, 'gzip', 'GZIP', 'snappy', 'zstd'])
@pytest.mark.parametrize('timeout', [30, None, 0.5])
def test_push_compression_and_timeout(regs, compression, timeout):
    for fn_name in ('push_to_gateway', 'pushadd_to_gateway'):
        ref = _capture_push(pc_expo, fn_name, 'gw', 'j', regs['ref'], timeout=timeout, compression=compression)
        fp = _capture_push(fp_expo, fn_name, 'gw', 'j', regs['fp'], timeout=timeout, compression=compression)
        if compression == 'snappy' and fp_expo.SNAPPY_AVAILABLE:
            # Snappy output is not byte-stable across library versions; check headers only.
            assert [c['headers'] for c in fp[1]] == [c['headers'] for c in ref[1]]
            continue
        assert fp == ref


def test_push_errors_messages():
    if not fp_expo.SNAPPY_AVAILABLE:
        with pytest.raises(RuntimeError, match='^Snappy compression requires the python-snappy package to be '
                                               'installed.$'):
            fp_expo.push_to_gateway('gw', 'j', fastprom.CollectorRegistry(), handler=_Capture(),
                                    compression='snappy')
    with pytest.raises(ValueError, match='^Unsupported compression type: zstd$'):
        fp_expo.push_to_gateway('gw', 'j', fastprom.CollectorRegistry(), handler=_Capture(), compression='zstd')
    capture = _Capture()
    with pytest.raises(ValueError, match='^Compression is not supported for DELETE requests.$'):
        fp_expo._use_gateway('DELETE', 'gw', 'j', None, None, 30, capture, 'gzip')
    assert capture.calls == []


def test_delete_with_compression_matches_reference():
    ref = _capture_push(pc_expo, '_use_gateway', 'DELETE', 'gw', 'j', None, {'a': 'b'}, 30, compression='gzip')
    fp = _capture_push(fp_expo, '_use_gateway', 'DELETE', 'gw', 'j', None, {'a': 'b'}, 30, compression='gzip')
    assert fp == ref


def test_pushadd_default_registry(regs):
    results = {}
    for name, (_, expo, _) in LIBS.items():
        with mock.patch.object(expo, 'REGISTRY', regs[name]):
            results[name] = _capture_push(expo, 'pushadd_to_gateway', 'gw', 'j', None)
    assert results['fp'] == results['ref']
    assert results['fp'][1][0]['data'] == pc_expo.generate_latest(regs['ref'])


@pytest.mark.parametrize('key,value', [
    ('k', ''), ('k', 'a/b'), ('k', 'a b'), ('k', 'plain'), ('k', 'ü+&?#'), ('k', '/'), ('job', 'x y/z'),
])
def test_escape_grouping_key(key, value):
    assert fp_expo._escape_grouping_key(key, value) == pc_expo._escape_grouping_key(key, value)


class _Gateway(BaseHTTPRequestHandler):
    """A tiny pushgateway stand-in recording what it receives."""

    def _handle(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        headers = dict(self.headers.items())
        if headers.get('Content-Encoding') == 'gzip':
            body = gzip.decompress(body)
            headers.pop('Content-Length', None)
        self.server.requests.append((self.command, self.path, headers, body))
        code = 200
        for prefix, (status, target) in self.server.redirects.items():
            if self.path.startswith(prefix):
                code = status
                self.send_response(code)
                self.send_header('Location', target + self.path[len(prefix):])
                self.end_headers()
                return
        if self.path.startswith('/fail'):
            code = 500
        self.send_response(code)
        self.end_headers()

    do_GET = do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, format, *args):
        pass


@pytest.fixture
def gateway():
    server = HTTPServer(('127.0.0.1', 0), _Gateway)
    server.requests = []
    server.redirects = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _real_push(gateway_server, expo, fn_name, *args, **kwargs):
    gateway_server.requests.clear()
    outcome = _outcome(getattr(expo, fn_name), *args, **kwargs)
    if outcome[0] == 'raise' and issubclass(outcome[1], urllib.error.HTTPError):
        outcome = outcome[:2]  # compare the error type only
    return outcome, list(gateway_server.requests)


def _basic_auth(expo):
    def handler(url, method, timeout, headers, data):
        return expo.basic_auth_handler(url, method, timeout, headers, data, 'user', 'pa:ss')
    return handler


@pytest.mark.parametrize('case', [
    ('push_to_gateway', {}),
    ('push_to_gateway', {'grouping_key': {'a': 'x/y', 'b': 'with space', 'c': ''}}),
    ('push_to_gateway', {'compression': 'gzip'}),
    ('pushadd_to_gateway', {'grouping_key': {'instance': 'h:1'}}),
    ('pushadd_to_gateway', {'compression': 'gzip', 'handler': 'basic_auth'}),
    ('delete_from_gateway', {'grouping_key': {'a': 'b c'}}),
    ('push_to_gateway', {'handler': 'basic_auth'}),
    ('push_to_gateway', {'handler': 'passthrough_redirect_handler', 'path': '/moved'}),
    ('pushadd_to_gateway', {'handler': 'passthrough_redirect_handler', 'path': '/moved'}),
    ('push_to_gateway', {'path': '/moved'}),
    ('delete_from_gateway', {'handler': 'passthrough_redirect_handler', 'path': '/moved'}),
    ('push_to_gateway', {'path': '/fail'}),
    ('delete_from_gateway', {'path': '/fail'}),
])
def test_push_against_local_gateway(regs, gateway, case):
    fn_name, options = case
    gateway.redirects['/moved'] = (301, '/new')
    results = {}
    for name, (_, expo, _) in LIBS.items():
        kwargs = dict(options)
        url = f'http://127.0.0.1:{gateway.server_port}' + kwargs.pop('path', '')
        handler = kwargs.pop('handler', None)
        if handler == 'basic_auth':
            kwargs['handler'] = _basic_auth(expo)
        elif handler is not None:
            kwargs['handler'] = getattr(expo, handler)
        args = (url, 'my/job') if fn_name == 'delete_from_gateway' else (url, 'my/job', regs[name])
        results[name] = _real_push(gateway, expo, fn_name, *args, **kwargs)
    assert results['fp'] == results['ref']
    assert results['fp'][1], 'the gateway received nothing'


def test_push_request_details(regs, gateway):
    url = f'http://127.0.0.1:{gateway.server_port}'
    fp_expo.push_to_gateway(url, 'job', regs['fp'], {'a': 'x/y', 'e': ''}, handler=_basic_auth(fp_expo),
                            compression='gzip')
    method, path, headers, body = gateway.requests[-1]
    assert method == 'PUT'
    assert path == '/metrics/job/job/a@base64/eC95/e@base64/='
    assert headers['Content-Type'] == fp_expo.CONTENT_TYPE_PLAIN_0_0_4
    assert headers['Content-Encoding'] == 'gzip'
    assert headers['Authorization'] == 'Basic ' + base64.b64encode(b'user:pa:ss').decode()
    assert body == pc_expo.generate_latest(regs['ref'])
    fp_expo.delete_from_gateway(url, 'job')
    method, path, headers, body = gateway.requests[-1]
    assert (method, path, body) == ('DELETE', '/metrics/job/job', b'')
    assert headers['Content-Type'] == fp_expo.CONTENT_TYPE_PLAIN_0_0_4


def test_basic_auth_handler_headers(gateway):
    url = f'http://127.0.0.1:{gateway.server_port}/metrics/job/j'
    headers = {}
    for name, (_, expo, _) in LIBS.items():
        headers[name] = [('Content-Type', expo.CONTENT_TYPE_PLAIN_0_0_4)]
        expo.basic_auth_handler(url, 'PUT', 5, headers[name], b'x', 'user', 'pass')()
        # Without both credentials no header is added.
        expo.basic_auth_handler(url, 'PUT', 5, headers[name], b'x', 'user')()
    assert headers['fp'] == headers['ref']
    assert headers['fp'][-1] == ('Authorization', b'Basic ' + base64.b64encode(b'user:pass'))


def test_push_http_error(regs, gateway):
    url = f'http://127.0.0.1:{gateway.server_port}/fail'
    with pytest.raises(urllib.error.HTTPError) as info:
        fp_expo.push_to_gateway(url, 'job', regs['fp'])
    assert info.value.code == 500


def test_instance_ip_grouping_key():
    assert fp_expo.instance_ip_grouping_key() == pc_expo.instance_ip_grouping_key()


# --------------------------------------------------------------------------------------------
# Graphite bridge


class _LineServer:
    """Accepts TCP connections and keeps what each one sent."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.address = self.sock.getsockname()
        self.received = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            chunks = []
            with conn:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            self.received.append(b''.join(chunks))

    def wait(self, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received[:count]

    def close(self):
        self.sock.close()


@pytest.fixture
def line_server():
    server = _LineServer()
    yield server
    server.close()


def _graphite_registries():
    regs = {}
    for name, (lib, _, _) in LIBS.items():
        reg = lib.CollectorRegistry()
        with mock.patch('time.time', return_value=123.456):
            g = lib.Gauge('g', 'help', ['a', 'b.c'], registry=reg)
            g.labels('x.y', 'z-w=1 ü').set(1.5)
            g.labels('1', '2').set(1234567)
            c = lib.Counter('cnt', 'help', registry=reg)
            c.inc(3)
            h = lib.Histogram('h', 'help', buckets=(1, 5), registry=reg)
            h.observe(2)
        regs[name] = reg
    return regs


@pytest.mark.parametrize('tags', [False, True])
@pytest.mark.parametrize('prefix', [None, '', 'pre.fix'])
def test_graphite_bridge(line_server, tags, prefix):
    regs = _graphite_registries()
    bridges = {
        'ref': PcGraphiteBridge(line_server.address, registry=regs['ref'], _timer=lambda: 1434898897.5, tags=tags),
        'fp': FpGraphiteBridge(line_server.address, registry=regs['fp'], _timer=lambda: 1434898897.5, tags=tags),
    }
    for name in ('ref', 'fp'):
        if prefix is None:
            bridges[name].push()
        else:
            bridges[name].push(prefix=prefix)
    ref, fp = line_server.wait(2)
    assert fp == ref
    assert b' 1434898897\n' in fp


def test_graphite_bridge_start(line_server):
    regs = _graphite_registries()
    bridge = FpGraphiteBridge(line_server.address, registry=regs['fp'], _timer=lambda: 7.0)
    bridge.start(interval=0.05, prefix='p')
    try:
        received = line_server.wait(2)
    finally:
        # The pushing thread runs forever; make its further pushes no-ops.
        bridge.push = lambda prefix='': None
    assert len(received) == 2
    other = _LineServer()
    try:
        PcGraphiteBridge(other.address, registry=regs['ref'], _timer=lambda: 7.0).push(prefix='p')
        expected = other.wait(1)
    finally:
        other.close()
    assert received == expected * 2


def test_graphite_bridge_connection_refused():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    address = sock.getsockname()
    sock.close()
    reg = fastprom.CollectorRegistry()
    with pytest.raises(OSError):
        FpGraphiteBridge(address, registry=reg, timeout_seconds=2).push()


# --------------------------------------------------------------------------------------------
# framework adapters (optional dependencies)


def test_aiohttp_handler(regs):
    pytest.importorskip('aiohttp')
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from prometheus_client.aiohttp import make_aiohttp_handler as pc_make
    from fastprom.aiohttp import make_aiohttp_handler as fp_make

    async def fetch(handler, **kwargs):
        app = web.Application()
        app.router.add_get('/metrics', handler)
        async with TestClient(TestServer(app)) as client:
            resp = await client.get('/metrics', **kwargs)
            return (resp.status, resp.headers.get('Content-Type'), resp.headers.get('Content-Encoding'),
                    _families(await resp.read()))

    requests = [
        {},
        {'headers': {'Accept-Encoding': 'gzip'}},
        {'headers': {'Accept': 'application/openmetrics-text; version=1.0.0'}},
        {'params': [('name[]', 'gg'), ('name[]', 'cc_total')]},
    ]
    for disable in (False, True):
        for kwargs in requests:
            ref = asyncio.run(fetch(pc_make(regs['ref'], disable), **kwargs))
            fp = asyncio.run(fetch(fp_make(regs['fp'], disable), **kwargs))
            assert fp == ref


def test_django_view(regs):
    django = pytest.importorskip('django')
    from django.conf import settings
    if not settings.configured:
        settings.configure(DATABASES={}, INSTALLED_APPS=[], ALLOWED_HOSTS=['*'])
        django.setup()
    from django.test import RequestFactory

    from prometheus_client.django import PrometheusDjangoView as PcView
    from fastprom.django import PrometheusDjangoView as FpView

    factory = RequestFactory()
    requests = [
        lambda: factory.get('/metrics'),
        lambda: factory.get('/metrics', HTTP_ACCEPT='application/openmetrics-text; version=1.0.0'),
        lambda: factory.get('/metrics', HTTP_ACCEPT_ENCODING='gzip'),
        lambda: factory.options('/metrics'),
        lambda: factory.post('/metrics'),
    ]

    def describe(response):
        headers = {k: v for k, v in response.headers.items()}
        body = response.content
        if headers.get('Content-Encoding') == 'gzip':
            body = gzip.decompress(body)
        return response.status_code, headers, body

    for make_request in requests:
        ref = describe(PcView.as_view(registry=regs['ref'])(make_request()))
        fp = describe(FpView.as_view(registry=regs['fp'])(make_request()))
        assert fp == ref
    assert FpView.multiprocess_mode == PcView.multiprocess_mode


def test_twisted_resource(regs):
    pytest.importorskip('twisted')
    from twisted.web.wsgi import WSGIResource

    from fastprom.twisted import MetricsResource

    resource = MetricsResource(registry=regs['fp'])
    assert isinstance(resource, WSGIResource)
    # The resource wraps fastprom's WSGI app for the given registry.
    ref = _call_wsgi(pc_expo.make_wsgi_app(regs['ref']))
    assert _call_wsgi(resource._application) == ref
