"""BentoML on fastprom, for real: `bentoml serve` (2 workers) on loopback, scraped.

One module-scoped set of servers, started together (see bentoml_servers.py):

- ``install``:   service module begins with ``import fastprom; fastprom.install()``,
                 metrics namespace ``custom_ns``;
- ``env``:       untouched module, ``FASTPROM_INSTALL=1`` (the .pth hook);
- ``reference``: untouched module, plain prometheus_client (for the comparison);
- ``example``:   examples/bentoml/service.py.

Each gets the same fixed requests, then one /metrics scrape is kept for the checks.
A real Prometheus then scrapes the ``install`` server every second, configured by
``python -m fastprom prometheus-config``, and runs every query of the dashboard made by
``python -m fastprom dashboard --from-url``.

Skipped if bentoml is not installed, except under FASTPROM_CI=1 where that fails.
"""

import collections
import json
import math
import os
import subprocess
import sys
import time

import pytest

import bentoml_servers as bs
import real_servers as rs
from fastprom.dashboard import expressions

EXAMPLE_DIR = os.path.join(bs.REPO, 'examples', 'bentoml')
API_ENDPOINTS = ('/classify', '/encode', '/fail', '/whoami')
NAMESPACES = {'install': 'custom_ns', 'env': 'bentoml_service', 'reference': 'bentoml_service'}
CONTENT_TYPE = 'text/plain; version=1.0.0; charset=utf-8'
RATE_INTERVAL = '1m'  # stands for Grafana's $__rate_interval in the queries

Run = collections.namedtuple('Run', 'server traffic content_type families started')


def fastprom_cli(*args):
    proc = subprocess.run([sys.executable, '-m', 'fastprom', *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def example_traffic(server):
    for text in ('I love this, great!', 'awful and sad', 'a table'):
        status, body = server.call('analyze', {'text': text})
        assert status == 200, body
    status, body = server.call('scores', {'texts': ['good', 'bad']})
    assert status == 200 and body == [1.0, -1.0], body


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    rs.require_module('bentoml')
    off = {'FASTPROM_INSTALL': ''}  # whatever the test runner's environment says
    dirs = {name: tmp_path_factory.mktemp(f'bento-{name}') for name in (*NAMESPACES, 'example')}
    specs = [
        ('install', dirs['install'], bs.write_service(dirs['install'], bs.INSTALL_PRELUDE),
         dict(off, TEST_METRICS_NAMESPACE='custom_ns')),
        ('env', dirs['env'], bs.write_service(dirs['env']), bs.hook_environment(dirs['env'])),
        ('reference', dirs['reference'], bs.write_service(dirs['reference']), off),
        ('example', dirs['example'], 'service:SentimentAnalysis', off, EXAMPLE_DIR),
    ]
    servers = bs.start_servers(specs)
    try:
        result = {}
        for server in servers:
            started = time.time()
            if server.name == 'example':
                example_traffic(server)
                traffic = None
            else:
                traffic = bs.send_traffic(server)
            content_type, text = server.metrics()
            result[server.name] = Run(server, traffic, content_type, bs.parse(text), started)
        yield result
    finally:
        for server in servers:
            server.stop()


# ---------------------------------------------------------------------------
# Which library the workers run
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['install', 'env'])
def test_workers_use_fastprom(runs, name):
    import fastprom
    run = runs[name]
    answers = run.traffic['whoami']
    package_dir = os.path.dirname(os.path.realpath(fastprom.__file__))
    for answer in answers:
        assert answer['prometheus_client'] == 'fastprom', answer
        assert answer['counter_module'] == 'fastprom.metrics', answer
        assert answer['metrics_endpoint_library'] == 'fastprom', answer  # BentoML's /metrics renderer
        assert os.path.dirname(os.path.realpath(answer['prometheus_client_file'])) == package_dir
        assert answer['multiproc_dir'], answer
    pids = {a['pid'] for a in answers}
    assert len(pids) == bs.WORKERS, f'{bs.WHOAMI_CALLS} requests reached workers {pids}'
    assert pids <= run.server.worker_pids()


def test_reference_run_uses_prometheus_client(runs):
    for answer in runs['reference'].traffic['whoami']:
        assert answer['prometheus_client'] == 'prometheus_client', answer
        assert answer['metrics_endpoint_library'] == 'prometheus_client', answer


# ---------------------------------------------------------------------------
# BentoML's default metrics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['install', 'env', 'reference'])
def test_default_metrics(runs, name):
    run, ns = runs[name], NAMESPACES[name]
    fams, sent = run.families, run.traffic['sent']
    assert run.content_type == CONTENT_TYPE
    for endpoint in API_ENDPOINTS:
        for code in ('200', '500'):  # zero-initialised at startup, then counted
            expected = sent.get((endpoint, code), 0)
            total = bs.value(fams, f'{ns}_request_total', endpoint=endpoint, http_response_code=code)
            assert total == expected, (endpoint, code)
        assert bs.value(fams, f'{ns}_request_in_progress', endpoint=endpoint) == 0
    for (endpoint, code), count in sent.items():
        labels = dict(endpoint=endpoint, http_response_code=code)
        assert bs.value(fams, f'{ns}_request_duration_seconds_count', **labels) == count
        buckets = bs.samples(fams, f'{ns}_request_duration_seconds_bucket', **labels)
        assert tuple(s.labels['le'] for s in buckets) == bs.DURATION_BUCKETS
        assert [s.value for s in buckets] == sorted(s.value for s in buckets)
        assert buckets[-1].value == count
        assert bs.value(fams, f'{ns}_request_duration_seconds_sum', **labels) > 0
    for sample in bs.samples(fams, f'{ns}_request_in_progress'):
        assert sample.value == 0, sample


@pytest.mark.parametrize('name', ['install', 'env', 'reference'])
def test_last_request_timestamp_per_worker(runs, name):
    run, ns = runs[name], NAMESPACES[name]
    stamps = bs.samples(run.families, f'{ns}_last_request_timestamp_seconds')
    pids = {int(s.labels['pid']) for s in stamps}
    assert {a['pid'] for a in run.traffic['whoami']} <= pids <= run.server.worker_pids()
    for sample in stamps:
        assert run.started - 1 <= sample.value <= time.time() + 1, sample
        assert sample.labels['runner_name'] == bs.SERVICE_CLASS


@pytest.mark.parametrize('name', ['install', 'env', 'reference'])
def test_adaptive_batch_size(runs, name):
    fams, calls = runs[name].families, runs[name].traffic['encode_calls']
    # One request at a time: every dispatch is a batch of one.  The name ignores the namespace.
    assert bs.value(fams, 'bentoml_service_adaptive_batch_size_count', method_name='encode') == calls
    assert bs.value(fams, 'bentoml_service_adaptive_batch_size_sum', method_name='encode') == calls


def test_custom_namespace(runs):
    names = set(runs['install'].families)
    assert {'custom_ns_request', 'custom_ns_request_duration_seconds', 'custom_ns_request_in_progress',
            'custom_ns_last_request_timestamp_seconds'} <= names
    assert not any(n.startswith('bentoml_service_') and n != 'bentoml_service_adaptive_batch_size'
                   for n in names), names


# ---------------------------------------------------------------------------
# Custom metrics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['install', 'env', 'reference'])
def test_custom_metrics(runs, name):
    from bentoml._internal.utils.metrics import exponential_buckets
    fams = runs[name].families
    bounds = exponential_buckets(0.001, 1.5, 10.0)
    hist, polarity = bs.expected_custom(bounds)
    assert fams['inference_duration'].type == 'histogram'
    assert fams['inference_duration'].documentation == 'Duration of inference'
    for label, h in hist.items():
        labels = dict(nltk_version='3.9', sentiment_cls=label)
        buckets = bs.samples(fams, 'inference_duration_bucket', **labels)
        assert [float(s.labels['le']) for s in buckets] == [float(b) for b in bounds]
        assert [s.value for s in buckets] == h['buckets']
        assert bs.value(fams, 'inference_duration_count', **labels) == h['count']
        assert math.isclose(bs.value(fams, 'inference_duration_sum', **labels), h['sum'], rel_tol=1e-9)
    assert fams['polarity'].type == 'counter'
    for label, count in polarity.items():
        assert bs.value(fams, 'polarity_total', polarity=label) == count


@pytest.mark.parametrize('name', ['install', 'env'])
def test_same_output_as_prometheus_client(runs, name):
    """Same families, types, help, sample names, labels and values as plain prometheus_client."""
    def fix(metric):  # the install run uses namespace custom_ns
        return 'bentoml_service_' + metric[len('custom_ns_'):] if metric.startswith('custom_ns_') else metric

    def renamed(families):
        return {(fix(fam), typ, doc, fix(sample), labels): val
                for (fam, typ, doc, sample, labels), val in bs.comparable(families, API_ENDPOINTS).items()}

    ours, reference = renamed(runs[name].families), renamed(runs['reference'].families)
    missing = sorted(set(reference) - set(ours))
    extra = sorted(set(ours) - set(reference))
    assert not missing and not extra, f'missing: {missing[:10]}\nextra: {extra[:10]}'
    different = [(k, ours[k], reference[k]) for k in reference
                 if ours[k] != reference[k] and not (ours[k] is not None and reference[k] is not None
                                                     and math.isclose(ours[k], reference[k], rel_tol=1e-9))]
    assert not different, different[:10]


# ---------------------------------------------------------------------------
# The example
# ---------------------------------------------------------------------------

def test_example_service(runs):
    from fastprom import exponential_buckets
    fams = runs['example'].families
    buckets = bs.samples(fams, 'inference_duration_bucket', sentiment_cls='positive', model_version='0.1')
    assert [float(s.labels['le']) for s in buckets] == list(exponential_buckets(0.001, 1.5, 10.0))
    assert buckets[-1].value == 1
    assert {s.labels['polarity']: s.value for s in bs.samples(fams, 'polarity_total')} == {
        'positive': 1, 'negative': 1, 'neutral': 1}
    assert bs.value(fams, 'bentoml_service_request_total', endpoint='/analyze', http_response_code='200') == 3
    assert bs.value(fams, 'bentoml_service_adaptive_batch_size_count', method_name='scores') == 1


def test_example_dashboard_is_current(runs):
    url = runs['example'].server.url + '/metrics'
    generated = fastprom_cli('dashboard', '--from-url', url)
    with open(os.path.join(EXAMPLE_DIR, 'dashboard.json')) as f:
        committed = f.read()
    assert json.loads(generated) == json.loads(committed), (
        'examples/bentoml/dashboard.json is out of date: regenerate it as its README says')


# ---------------------------------------------------------------------------
# A real Prometheus scraping the service
# ---------------------------------------------------------------------------

def _has_finite_value(result):
    return any(math.isfinite(float(r['value'][1])) for r in result)


def test_prometheus_scrapes_and_runs_dashboard_queries(runs, tmp_path):
    server = runs['install'].server
    config = fastprom_cli('prometheus-config', '--target', f'{rs.LOOPBACK}:{server.port}',
                          '--job', 'bentoml', '--interval', '1s')
    prom = bs.ConfiguredPrometheus(tmp_path, config)
    try:
        prom.wait_ready()
        prom.wait_for('up{job="bentoml"} == 1')
        with bs.BackgroundTraffic(server):
            p99 = ('histogram_quantile(0.99, rate(custom_ns_request_duration_seconds_bucket'
                   '{endpoint="/encode"}[1m]))')
            assert _has_finite_value(prom.wait_for(p99, timeout=60, predicate=_has_finite_value))

            dashboard = json.loads(fastprom_cli('dashboard', '--namespace', 'custom_ns',
                                                '--from-url', server.url + '/metrics'))
            titles = [p['title'] for p in dashboard['panels']]
            assert 'inference_duration (p95)' in titles and 'polarity_total (rate)' in titles, titles
            for expr in expressions(dashboard):
                query = expr.replace('$__rate_interval', RATE_INTERVAL)
                assert prom.wait_for(query, timeout=60), query
    finally:
        prom.stop()
