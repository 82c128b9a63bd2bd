"""Real-component tests: a real Prometheus scrapes fastprom's servers, promtool
checks fastprom's expositions, and real HTTP requests compare fastprom's
servers with prometheus_client's byte for byte.

One Prometheus (scrape interval 1 s) per module scrapes five jobs:

  fp_http_server          fastprom.start_http_server (in this process)
  fp_asgi_uvicorn         fastprom.make_asgi_app under uvicorn (subprocess)
  fp_asgi_uvicorn_text    same, Accept header stripped => text 0.0.4 scrape
  fp_wsgi_gunicorn        fastprom.make_wsgi_app under gunicorn (subprocess)
  fp_wsgi_gunicorn_text   same, Accept header stripped => text 0.0.4 scrape

Prometheus 2.42 asks for OpenMetrics 1.0.0 first, so the plain jobs exercise
fastprom's OpenMetrics output through Prometheus' own parser, the ``_text``
jobs its 0.0.4 text output.  Every target serves the same metrics (built by
``real_servers.build_static_metrics`` + ``real_servers.LiveWorkload``):
deterministic ``static*`` metrics of all six types and a counter/histogram fed
by a background thread at a known rate.

The HTTP differential tests send the same raw requests (content negotiation,
gzip, name[] filters, OPTIONS/POST/HEAD, favicon) to fastprom and to
prometheus_client serving identically built registries, under three servers:
``start_http_server`` (in process), uvicorn and gunicorn (one subprocess per
library), and compare status, headers (except Date/Server) and body.  They
need no Prometheus.

Prometheus' service discovery publishes targets after ~5 s and rate() needs
a fully covered window, so the first scrape tests wait ~5 + 6 s; the whole
module takes ~16 s.
"""

import contextlib
import gzip
import re
import urllib.parse
from dataclasses import dataclass
from typing import Dict, Tuple

import pytest

import fastprom
import fastprom.openmetrics.exposition as fp_om
import prometheus_client
import prometheus_client.openmetrics.exposition as pc_om
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

import real_servers as rs
from libs import family_blocks

LIBS = {'ref': prometheus_client, 'fp': fastprom}

SCRAPE_JOBS = ('fp_http_server', 'fp_asgi_uvicorn', 'fp_asgi_uvicorn_text',
               'fp_wsgi_gunicorn', 'fp_wsgi_gunicorn_text')


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def static_registries():
    """``{'ref': registry, 'fp': registry}`` built by identical calls."""
    return {name: rs.build_static_metrics(lib, lib.CollectorRegistry()) for name, lib in LIBS.items()}


def _serve_in_process(lib, registry, exit_stack):
    server, thread = lib.start_http_server(0, addr=rs.LOOPBACK, registry=registry)

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(5)
    exit_stack.callback(stop)
    return f'http://{rs.LOOPBACK}:{server.server_port}'


@dataclass
class Servers:
    # Differential pairs: server kind -> {'ref': base_url, 'fp': base_url}
    static_urls: Dict[str, Dict[str, str]]
    # Scrape job -> (host:port, metrics_path)
    jobs: Dict[str, Tuple[str, str]]


@pytest.fixture(scope='module')
def servers(tmp_path_factory, static_registries):
    """uvicorn and gunicorn subprocesses (one per library) and in-process
    start_http_server instances; no Prometheus needed."""
    rs.require_module('uvicorn')
    rs.require_module('gunicorn')
    workdir = tmp_path_factory.mktemp('real_servers')
    rs.write_app_module(workdir)
    with contextlib.ExitStack() as es:
        # Subprocess servers first: they start while we set up the rest.
        procs, ports = {}, {}
        for key, starter, lib_name in (('uvicorn_fp', rs.start_uvicorn, 'fastprom'),
                                       ('uvicorn_ref', rs.start_uvicorn, 'prometheus_client'),
                                       ('gunicorn_fp', rs.start_gunicorn, 'fastprom'),
                                       ('gunicorn_ref', rs.start_gunicorn, 'prometheus_client')):
            ports[key] = rs.free_port()
            procs[key] = starter(workdir, lib_name, ports[key])
            es.callback(procs[key].stop)
        base = {key: f'http://{rs.LOOPBACK}:{port}' for key, port in ports.items()}

        # In-process fastprom server scraped by Prometheus (static + live metrics).
        live_registry = rs.build_static_metrics(fastprom, fastprom.CollectorRegistry())
        workload = rs.LiveWorkload(fastprom, live_registry).start()
        es.callback(workload.stop)
        live_url = _serve_in_process(fastprom, live_registry, es)
        # In-process servers of both libraries for the differential comparison.
        http_static = {name: _serve_in_process(LIBS[name], reg, es)
                       for name, reg in static_registries.items()}

        for key, proc in procs.items():
            rs.wait_http_ok(base[key] + '/static/metrics', proc)

        def hostport(url):
            return urllib.parse.urlsplit(url).netloc

        yield Servers(
            static_urls={
                'start_http_server': http_static,
                'asgi_uvicorn': {'ref': base['uvicorn_ref'] + '/static', 'fp': base['uvicorn_fp'] + '/static'},
                'wsgi_gunicorn': {'ref': base['gunicorn_ref'] + '/static', 'fp': base['gunicorn_fp'] + '/static'},
            },
            jobs={
                'fp_http_server': (hostport(live_url), '/metrics'),
                'fp_asgi_uvicorn': (hostport(base['uvicorn_fp']), '/metrics'),
                'fp_asgi_uvicorn_text': (hostport(base['uvicorn_fp']), '/metrics-text'),
                'fp_wsgi_gunicorn': (hostport(base['gunicorn_fp']), '/metrics'),
                'fp_wsgi_gunicorn_text': (hostport(base['gunicorn_fp']), '/metrics-text'),
            },
        )


@pytest.fixture(scope='module')
def prom(tmp_path_factory, servers):
    """One Prometheus scraping all SCRAPE_JOBS every second."""
    assert set(servers.jobs) == set(SCRAPE_JOBS)
    with rs.prometheus_server(tmp_path_factory.mktemp('prometheus'), servers.jobs) as p:
        yield p


def _wait_up(prom, job):
    prom.wait_for(f'up{{job="{job}"}} == 1')


def _wait_rate_window(prom, series):
    """Wait until samples of ``series`` cover a whole ``[5s]`` window.

    rate() only extrapolates by half a scrape interval towards a window start
    that precedes the series' first sample, so a rate over a window the
    series only partly covers is too low (a 3 s old series reads ~50-70/s
    instead of 100/s).  7 samples in 8 s => the first is >= 6 s old.
    """
    prom.wait_for(f'count_over_time({series}[8s]) >= 7')


# ---------------------------------------------------------------------------
# Prometheus scrapes fastprom
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('job', SCRAPE_JOBS)
def test_target_up(prom, job):
    _wait_up(prom, job)
    health, last_error, _ = prom.target_health()[job]
    assert (health, last_error) == ('up', '')
    # Sanity: the scrape ingested the whole exposition (~60 samples), not a prefix.
    assert prom.query_value(f'scrape_samples_scraped{{job="{job}"}}') > 50


@pytest.mark.parametrize('job', SCRAPE_JOBS)
def test_counter_rate(prom, job):
    _wait_up(prom, job)
    series = f'live_ticks_total{{job="{job}"}}'
    _wait_rate_window(prom, series)
    rate = prom.query_value(f'rate({series}[5s])')
    # rate() extrapolates to the window edges and the scrape/tick phases jitter.
    assert rs.LIVE_RATE * 0.7 <= rate <= rs.LIVE_RATE * 1.3, rate


def test_expected_quantile_formula():
    """The expected values the quantile tests use (Prometheus' interpolation)."""
    buckets = rs.expected_quantile_buckets()
    # rank 950 falls in (0.5, 1.0] holding observations 901..1000 => 0.5 + 0.5 * 50/100.
    assert rs.prometheus_histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    # rank 500 is exactly the le=0.1 count => upper bound of that bucket.
    assert rs.prometheus_histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert rs.prometheus_histogram_quantile(0.99, buckets) == pytest.approx(0.95)
    assert rs.prometheus_histogram_quantile(0.25, buckets) == pytest.approx(0.025 * 0.5 + 0.01 * 0.5)


@pytest.mark.parametrize('job', SCRAPE_JOBS)
@pytest.mark.parametrize('q', [0.25, 0.5, 0.95, 0.99])
def test_histogram_quantile_raw_buckets(prom, job, q):
    _wait_up(prom, job)
    expected = rs.prometheus_histogram_quantile(q, rs.expected_quantile_buckets())
    got = prom.query_value(f'histogram_quantile({q}, static_quantile_seconds_bucket{{job="{job}"}})')
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    buckets = prom.query(f'static_quantile_seconds_bucket{{job="{job}"}}')
    got_buckets = sorted((float(r['metric']['le']), float(r['value'][1])) for r in buckets)
    assert got_buckets == rs.expected_quantile_buckets()


@pytest.mark.parametrize('job', SCRAPE_JOBS)
def test_histogram_quantile_of_rate(prom, job):
    _wait_up(prom, job)
    _wait_rate_window(prom, f'live_latency_seconds_count{{job="{job}"}}')
    expected = rs.prometheus_histogram_quantile(0.95, rs.expected_quantile_buckets())
    got = prom.query_value(
        f'histogram_quantile(0.95, rate(live_latency_seconds_bucket{{job="{job}"}}[5s]))')
    # Every bucket grows in proportion; only a batch cut by a scrape skews it (~1%).
    assert got == pytest.approx(expected, rel=0.05)
    count_rate = prom.query_value(f'rate(live_latency_seconds_count{{job="{job}"}}[5s])')
    per_second = len(rs.quantile_observations(rs.LIVE_BATCH_DIVISOR)) / rs.LIVE_PERIOD
    assert per_second * 0.7 <= count_rate <= per_second * 1.3, count_rate


def _reference_static_samples():
    """Samples of the static metrics as prometheus_client's text exposition says.

    Prometheus drops empty-valued labels, so they are dropped here as well.
    """
    reg = rs.build_static_metrics(prometheus_client, prometheus_client.CollectorRegistry())
    out = set()
    for family in text_parse(prometheus_client.generate_latest(reg).decode()):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if v != ''))
            out.add((s.name, labels, float(s.value)))
    return out


@pytest.mark.parametrize('job', SCRAPE_JOBS)
def test_scraped_series_equal_reference_exposition(prom, job):
    """Every static series Prometheus ingested from fastprom - names, label
    values (unicode, quotes, backslashes, newlines), values - is exactly what
    prometheus_client exposes for the same metrics, and nothing more."""
    _wait_up(prom, job)
    got = set()
    for r in prom.query(f'{{job="{job}",__name__=~"static.*"}}'):
        metric = dict(r['metric'])
        name = metric.pop('__name__')
        assert metric.pop('job') == job
        metric.pop('instance')
        got.add((name, tuple(sorted(metric.items())), float(r['value'][1])))
    expected = _reference_static_samples()
    assert len(expected) > 30
    assert sorted(got - expected) == [] and sorted(expected - got) == []


# ---------------------------------------------------------------------------
# promtool and parsers on every exposition format
# ---------------------------------------------------------------------------

# promtool 2.42's `check metrics` only understands the Prometheus text format
# (expfmt.TextParser): valid OpenMetrics is rejected (`\"` in HELP, a valid OM
# escape, is an "invalid escape sequence" there, exit 1) or mislinted (an OM
# counter family `# TYPE a counter` with samples `a_total`/`a_created` gives
# "no help text", exit 3), and quoted UTF-8 names ({"my.metric"}) are an
# "invalid metric name".  So promtool checks the text
# formats with legacy names (escaping underscores/dots/values, which is also
# what text 0.0.4 and 1.0.0 without escaping= serve), and the allow-utf-8 text
# and OpenMetrics 1.0.0 / 2.0.0 outputs are checked byte-for-byte against
# prometheus_client and parsed with prometheus_client's own parsers.
# (Prometheus itself parses fastprom's OpenMetrics 1.0.0 in the scrape tests.)

@pytest.mark.parametrize('escaping', ['underscores', 'dots', 'values'])
def test_promtool_accepts_text(static_registries, escaping):
    body = fastprom.generate_latest(static_registries['fp'], escaping=escaping)
    assert body == prometheus_client.generate_latest(static_registries['ref'], escaping=escaping)
    for typ in ('counter', 'gauge', 'summary', 'histogram'):  # info/enum are gauges in text
        assert re.search(rf'^# TYPE static_\S+ {typ}$'.encode(), body, re.M), typ
    rc, output = rs.promtool_check_metrics(body)
    if escaping == 'dots':
        # `dots` turns every `_` into `__` (reference behaviour, same bytes as
        # asserted above), so a summary/histogram family `static__size__bytes`
        # has samples `static__size__bytes__count`, which the text parser does
        # not see as belonging to it: it parses (exit 1 would be a parse
        # error) but lints "no help text" (exit 3).
        assert rc == 3 and 'no help text' in output, output
        assert all(line.endswith(' no help text') for line in output.splitlines()), output
    else:
        assert (rc, output) == (0, ''), output


def test_promtool_rejects_broken_text(static_registries):
    """Negative control: the promtool helper does report parse errors."""
    body = fastprom.generate_latest(static_registries['fp'])
    rc, output = rs.promtool_check_metrics(body + b'static_broken{le="1" 1\n')
    assert rc != 0 and 'pars' in output, output
    rc, output = rs.promtool_check_metrics(body + b'# TYPE static_plain_total gauge\n')
    assert rc != 0, output


@pytest.mark.parametrize('path_headers', [
    ('/metrics', []),
    ('/metrics', [('Accept', 'text/plain; version=0.0.4')]),
    ('/metrics', [('Accept', 'text/plain; version=1.0.0')]),
    ('/metrics', [('Accept', 'text/plain; version=1.0.0; escaping=values'), ('Accept-Encoding', 'gzip')]),
    ('/metrics?name[]=static_requests_total&name[]=static_quantile_seconds_bucket', []),
], ids=['default', 'text-0.0.4', 'text-1.0.0', 'text-1.0.0-values-gzip', 'name-filter'])
@pytest.mark.parametrize('kind', ['start_http_server', 'asgi_uvicorn', 'wsgi_gunicorn'])
def test_promtool_accepts_served_text(servers, kind, path_headers):
    path, headers = path_headers
    status, _, resp_headers, body = rs.http_request(servers.static_urls[kind]['fp'] + path, headers=headers)
    assert status == 200
    if ('Content-Encoding', 'gzip') in [(k.title(), v) for k, v in resp_headers]:
        body = gzip.decompress(body)
    assert body.startswith(b'# HELP static')
    rc, output = rs.promtool_check_metrics(body)
    assert (rc, output) == (0, ''), output


def test_utf8_text_matches_reference_and_parses(static_registries):
    body = fastprom.generate_latest(static_registries['fp'], escaping='allow-utf-8')
    assert body == prometheus_client.generate_latest(static_registries['ref'], escaping='allow-utf-8')
    assert b'{"static.dotted.metric","label.with.dots"="v"} 42.0' in body
    names = {f.name for f in text_parse(body.decode())}
    assert 'static.dotted.metric' in names


@pytest.mark.parametrize('version', ['1.0.0', '2.0.0'])
@pytest.mark.parametrize('escaping', ['underscores', 'allow-utf-8', 'dots', 'values'])
def test_openmetrics_matches_reference_and_parses(static_registries, version, escaping):
    body = fp_om.generate_latest(static_registries['fp'], escaping=escaping, version=version)
    ref = pc_om.generate_latest(static_registries['ref'], escaping=escaping, version=version)
    assert body == ref
    assert body.endswith(b'# EOF\n')
    if escaping in ('dots', 'values'):
        # prometheus_client 0.26.0 escapes OM *sample* names with the label
        # rune set, so `static_requests_total` becomes `static__requests__total`
        # (dots) / `U__static__requests__total` (values) under a family
        # `static_requests`; its own parser rejects that ("Clashing name"), so
        # identical bytes is all that can be checked for these two schemes.
        return
    families = {f.name: f for f in om_parse(body.decode())}
    types = {f.type for f in families.values()}
    assert {'counter', 'gauge', 'summary', 'histogram', 'info', 'stateset'} <= types
    assert families['static_requests'].samples[0].labels['path'] == '/api/ünïcödé/€/😀'


# ---------------------------------------------------------------------------
# Differential HTTP: same request to fastprom and prometheus_client servers
# ---------------------------------------------------------------------------

GZ = ('Accept-Encoding', 'gzip')


def _accept(value):
    return ('Accept', value)


# (id, method, path, headers)
HTTP_CASES = [
    ('default', 'GET', '/metrics', []),
    ('root-path', 'GET', '/', []),
    ('other-path', 'GET', '/some/other/path', []),
    ('accept-any', 'GET', '/metrics', [_accept('*/*')]),
    ('text-plain', 'GET', '/metrics', [_accept('text/plain')]),
    ('text-0.0.4', 'GET', '/metrics', [_accept('text/plain; version=0.0.4')]),
    ('text-1.0.0', 'GET', '/metrics', [_accept('text/plain;version=1.0.0')]),
    ('text-1.0.0-underscores', 'GET', '/metrics', [_accept('text/plain; version=1.0.0; escaping=underscores')]),
    ('text-1.0.0-allow-utf-8', 'GET', '/metrics', [_accept('text/plain; version=1.0.0; escaping=allow-utf-8')]),
    ('text-1.0.0-dots', 'GET', '/metrics', [_accept('text/plain; version=1.0.0; escaping=dots')]),
    ('text-1.0.0-values', 'GET', '/metrics', [_accept('text/plain; version=1.0.0; escaping=values')]),
    ('text-1.0.0-bogus-escaping', 'GET', '/metrics', [_accept('text/plain; version=1.0.0; escaping=bogus')]),
    ('om', 'GET', '/metrics', [_accept('application/openmetrics-text')]),
    ('om-0.0.1', 'GET', '/metrics', [_accept('application/openmetrics-text; version=0.0.1')]),
    ('om-1.0.0', 'GET', '/metrics', [_accept('application/openmetrics-text; version=1.0.0')]),
    ('om-1.0.0-charset', 'GET', '/metrics', [_accept('application/openmetrics-text; version=1.0.0; charset=utf-8')]),
    ('om-1.0.0-allow-utf-8', 'GET', '/metrics',
     [_accept('application/openmetrics-text; version=1.0.0; escaping=allow-utf-8')]),
    ('om-1.0.0-dots', 'GET', '/metrics', [_accept('application/openmetrics-text;version=1.0.0;escaping=dots')]),
    ('om-2.0.0', 'GET', '/metrics', [_accept('application/openmetrics-text; version=2.0.0')]),
    ('om-2.0.0-values', 'GET', '/metrics', [_accept('application/openmetrics-text; version=2.0.0; escaping=values')]),
    ('prometheus-2-accept', 'GET', '/metrics', [_accept(
        'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,'
        'text/plain;version=0.0.4;q=0.5,*/*;q=0.1')]),
    ('prometheus-3-accept', 'GET', '/metrics', [_accept(
        'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,'
        'application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,'
        'text/plain;version=0.0.4;q=0.2,*/*;q=0.1')]),
    ('accept-list-fallthrough', 'GET', '/metrics', [_accept(
        'application/openmetrics-text;version=0.0.1, text/plain;version=0.0.4, text/plain;version=1.0.0;escaping=values')]),
    ('accept-repeated-headers', 'GET', '/metrics', [
        _accept('application/openmetrics-text;version=0.0.1'), _accept('text/plain;version=1.0.0;escaping=dots')]),
    ('gzip', 'GET', '/metrics', [GZ]),
    ('gzip-om-1.0.0', 'GET', '/metrics', [_accept('application/openmetrics-text; version=1.0.0'), GZ]),
    ('gzip-text-1.0.0-allow-utf-8', 'GET', '/metrics',
     [_accept('text/plain; version=1.0.0; escaping=allow-utf-8'), GZ]),
    ('gzip-in-list', 'GET', '/metrics', [('Accept-Encoding', 'deflate, gzip;q=0.5, br')]),
    ('gzip-uppercase', 'GET', '/metrics', [('Accept-Encoding', 'GZIP')]),
    ('encoding-identity', 'GET', '/metrics', [('Accept-Encoding', 'identity')]),
    ('encoding-x-gzip', 'GET', '/metrics', [('Accept-Encoding', 'x-gzip')]),
    ('name-filter', 'GET', '/metrics?name[]=static_requests_total', []),
    ('name-filter-multi', 'GET',
     '/metrics?name[]=static_plain_total&name[]=static_size_bytes_bucket&name[]=static_state', []),
    ('name-filter-encoded', 'GET', '/metrics?name%5B%5D=static_build_info&name%5B%5D=static_requests_created', []),
    ('name-filter-om-gzip', 'GET', '/metrics?name[]=static_quantile_seconds_count&name[]=static_build_info',
     [_accept('application/openmetrics-text; version=1.0.0'), GZ]),
    ('name-filter-unknown', 'GET', '/metrics?name[]=does_not_exist', []),
    ('name-filter-utf8', 'GET', '/metrics?name[]=static.dotted.metric',
     [_accept('text/plain; version=1.0.0; escaping=allow-utf-8')]),
    ('other-query-param', 'GET', '/metrics?foo=bar&name=static_plain_total', []),
    ('options', 'OPTIONS', '/metrics', []),
    ('options-gzip', 'OPTIONS', '/metrics', [GZ]),
    ('post', 'POST', '/metrics', []),
    ('put', 'PUT', '/metrics', []),
    ('delete', 'DELETE', '/metrics', []),
    ('head', 'HEAD', '/metrics', []),
    ('favicon', 'GET', '/favicon.ico', []),
    ('favicon-gzip-om', 'GET', '/favicon.ico', [_accept('application/openmetrics-text'), GZ]),
    ('favicon-post', 'POST', '/favicon.ico', []),
]


# Headers that legitimately differ: Date changes between the two requests, and
# Server names the server software (fastprom's start_http_server is a native
# server, prometheus_client's is wsgiref's "WSGIServer/0.2 CPython/3.x").
UNCOMPARED_HEADERS = ('date', 'server')


def _family_blocks(body):
    """The exposition split into family blocks (each starting at ``# HELP``), sorted.

    With several ``name[]`` values, prometheus_client's RestrictedRegistry.collect
    iterates a *set* of collector objects, so the family order depends on object
    ids (it changes from run to run); only the set of blocks is specified.
    """
    eof = body.endswith(b'# EOF\n')
    if eof:
        body = body[:-len(b'# EOF\n')]
    return family_blocks(body), eof


def _response(url, method, headers, path):
    body = b'' if method in ('POST', 'PUT') else None
    status, reason, resp_headers, raw = rs.http_request(url, method=method, headers=headers, body=body)
    kept = sorted((k.lower(), v) for k, v in resp_headers if k.lower() not in UNCOMPARED_HEADERS)
    if 'content-length' in dict(kept):
        assert int(dict(kept)['content-length']) == len(raw) or method == 'HEAD'
    encoding = dict(kept).get('content-encoding')
    if encoding == 'gzip':
        assert raw[:2] == b'\x1f\x8b', raw[:20]
        body = gzip.decompress(raw)
        # Compressed size depends on the deflate implementation, not compared.
        kept = [(k, v) for k, v in kept if k != 'content-length']
    else:
        body = raw
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if len(query.get('name[]', ())) > 1:
        body = _family_blocks(body)
    return {'status': f'{status} {reason}', 'headers': kept, 'body': body}


@pytest.mark.parametrize('method,path,headers', [c[1:] for c in HTTP_CASES], ids=[c[0] for c in HTTP_CASES])
@pytest.mark.parametrize('kind', ['start_http_server', 'asgi_uvicorn', 'wsgi_gunicorn'])
def test_http_differential(servers, kind, method, path, headers):
    urls = servers.static_urls[kind]
    ref = _response(urls['ref'] + path, method, headers, path)
    fp = _response(urls['fp'] + path, method, headers, path)
    assert ref['status'].split()[0] in ('200', '405'), ref  # the harness reached the app
    assert fp['status'] == ref['status']
    assert dict(fp['headers']).get('content-type') == dict(ref['headers']).get('content-type')
    assert dict(fp['headers']).get('content-encoding') == dict(ref['headers']).get('content-encoding')
    assert fp['body'] == ref['body']
    assert fp['headers'] == ref['headers']


def test_http_differential_covers_formats(servers):
    """The negotiation cases really produce the different formats (so the
    differential test compares something meaningful)."""
    url = servers.static_urls['start_http_server']['fp']
    seen = {}
    for case_id, method, path, headers in HTTP_CASES:
        r = _response(url + path, method, headers, path)
        seen[case_id] = (r['status'], dict(r['headers']).get('content-type'),
                         dict(r['headers']).get('content-encoding'), r['body'])
    assert seen['default'][1] == 'text/plain; version=0.0.4; charset=utf-8'
    assert seen['text-1.0.0-values'][1] == 'text/plain; version=1.0.0; charset=utf-8; escaping=values'
    assert seen['om'][1] == 'application/openmetrics-text; version=1.0.0; charset=utf-8'
    assert seen['om-2.0.0'][1] == 'application/openmetrics-text; version=2.0.0; charset=utf-8; escaping=underscores'
    assert seen['om-0.0.1'][1] == 'text/plain; version=0.0.4; charset=utf-8'
    assert seen['gzip'][2] == 'gzip' and seen['default'][2] is None
    assert seen['om-1.0.0'][3].endswith(b'# EOF\n')
    assert b'static_dot_dotted_dot_metric' in seen['text-1.0.0-dots'][3]
    assert seen['name-filter'][3] != seen['default'][3] and b'static_requests_total' in seen['name-filter'][3]
    assert seen['name-filter-unknown'][3] == b''
    assert seen['options'][:2] == ('200 OK', None) and seen['options'][3] == b''
    assert seen['post'][0] == '405 Method Not Allowed'
    assert seen['post'][3] == b'# HTTP 405 Method Not Allowed: POST; use OPTIONS or GET\n'
    assert seen['favicon'] == ('200 OK', None, None, b'')
