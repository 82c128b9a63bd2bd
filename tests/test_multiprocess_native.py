"""Native histograms in multiprocess mode (issue 15): every process counts its sparse buckets in a
side file (``histogram_native_<pid>.fpn``); fastprom's collector merges them into the protobuf
exposition, prometheus_client's collector (``*.db`` only) still reads the directory.

The oracle for the merged native buckets is one process: the same observations in one
in-memory histogram give the same protobuf bytes (``_created`` off, values binary fractions so
that sums are exact in any order). Writers are real subprocesses.
"""

import glob
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import urllib.request
import warnings
from unittest import mock

import prometheus_client
import prometheus_client.multiprocess
import pytest
from hypothesis import given, settings, strategies as st

import fastprom
from fastprom import exposition, multiprocess, values

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

WRITER = '''
import json, sys, warnings
warnings.simplefilter('error')  # no warning about native buckets in multiprocess mode
import fastprom
spec = json.load(sys.stdin)
h = fastprom.Histogram('rpc_seconds', 'RPC latency.', ['method'], registry=None, **spec['settings'])
for method in spec['methods']:
    h.labels(method)
for method, values in spec['observations']:
    half = len(values) // 2
    for v in values[:half]:
        h.labels(method).observe(v)
    h.labels(method).observe_many(values[half:])
print(__import__('os').getpid())
'''


def write_as_process(mpdir, settings, observations, methods=('get', 'put')):
    """Runs one writer process; returns its pid."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(mpdir))
    spec = {'settings': settings, 'observations': observations, 'methods': list(methods)}
    done = subprocess.run([sys.executable, '-c', WRITER], input=json.dumps(spec), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.fixture
def no_created():
    fastprom.disable_created_metrics()
    yield
    fastprom.enable_created_metrics()


@pytest.fixture
def single_process(monkeypatch):
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR', raising=False)
    monkeypatch.delenv('prometheus_multiproc_dir', raising=False)


def merged_protobuf(mpdir):
    registry = fastprom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(mpdir))
    return exposition.generate_protobuf(registry)


def one_process_protobuf(settings, observations, methods=('get', 'put')):
    registry = fastprom.CollectorRegistry()
    h = fastprom.Histogram('rpc_seconds', 'RPC latency.', ['method'], registry=registry, **settings)
    for method in methods:
        h.labels(method)
    for method, values in observations:
        for v in values:
            h.labels(method).observe(v)
    return exposition.generate_protobuf(registry)


def binary_fractions(rng, n):
    """Values k/256 (exact sums in any order), both signs, zeros, spread over ~16 octaves."""
    values = [rng.choice([-1, 1, 1, 1]) * rng.randrange(1, 1 << 20) / 256 for _ in range(n)]
    return values + [0.0] * (n // 50)


def test_processes_at_different_schemas_merge_as_one_process(tmp_path, no_created, single_process):
    rng = random.Random(1515)
    settings = [{'native_histogram_bucket_factor': 1.1},        # schema 3
                {'native_histogram_initial_schema': 1},
                {'native_histogram_initial_schema': 2}]
    everything = []
    for setting in settings:
        observations = [('get', binary_fractions(rng, 400)), ('put', binary_fractions(rng, 50))]
        write_as_process(tmp_path, setting, observations)
        everything += observations
    assert len(glob.glob(str(tmp_path / 'histogram_native_*.fpn'))) == 3
    merged = merged_protobuf(tmp_path)
    # The lowest schema present is 1: one process at schema 1 saw it all.
    assert merged == one_process_protobuf({'native_histogram_initial_schema': 1}, everything)
    # Not the same bytes at another schema: the comparison sees the buckets.
    assert merged != one_process_protobuf({'native_histogram_initial_schema': 2}, everything)


@pytest.mark.parametrize('limits', [
    {'native_histogram_max_buckets': 20},
    {'native_histogram_max_buckets': 20, 'native_histogram_max_zero_threshold': 0.01},
], ids=['halves-resolution', 'widens-zero-bucket'])
def test_a_process_past_its_bucket_limit_merges_as_one_process(tmp_path, limits, no_created,
                                                               single_process):
    rng = random.Random(42)
    values = [math.ldexp(rng.randrange(16, 32), rng.randrange(-24, 12)) for _ in range(3000)]
    settings = dict(native_histogram_bucket_factor=1.1, **limits)
    write_as_process(tmp_path, settings, [('get', values)], methods=['get'])
    expected = one_process_protobuf(settings, [('get', values)], methods=['get'])
    assert merged_protobuf(tmp_path) == expected
    unlimited = one_process_protobuf({'native_histogram_bucket_factor': 1.1}, [('get', values)],
                                     methods=['get'])
    assert expected != unlimited, 'the limit was reached'


def test_prometheus_client_reads_the_directory_and_text_is_classic(tmp_path, single_process):
    rng = random.Random(7)
    gets = 0
    for schema in (3, 0):
        observations = [('get', binary_fractions(rng, 200)), ('put', binary_fractions(rng, 20))]
        write_as_process(tmp_path, {'native_histogram_initial_schema': schema}, observations)
        gets += len(observations[0][1])
    reference = prometheus_client.CollectorRegistry()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        prometheus_client.multiprocess.MultiProcessCollector(reference, path=str(tmp_path))
        expected = prometheus_client.generate_latest(reference)
    ours = fastprom.CollectorRegistry()
    multiprocess.MultiProcessCollector(ours, path=str(tmp_path))
    assert f'rpc_seconds_bucket{{le="+Inf",method="get"}} {gets:.1f}'.encode() in expected
    assert fastprom.generate_latest(ours) == expected
    # The collector's Metric objects are the reference's too (classic samples only).
    assert [m.samples for m in multiprocess.MultiProcessCollector(None, path=str(tmp_path))
            .collect()] == [m.samples for m in reference.collect()]


def test_dead_processes_fold_into_the_archive(tmp_path, no_created, single_process):
    rng = random.Random(3)
    everything, pids = [], []
    for schema in (2, 1, 3):
        observations = [('get', binary_fractions(rng, 300)), ('put', binary_fractions(rng, 30))]
        pids.append(write_as_process(tmp_path, {'native_histogram_initial_schema': schema},
                                     observations))
        everything += observations
    before = merged_protobuf(tmp_path)
    multiprocess.mark_process_dead(pids[0], path=str(tmp_path))
    assert not (tmp_path / f'histogram_native_{pids[0]}.fpn').exists()
    assert (tmp_path / 'histogram_native_archive.fpn').exists()
    assert merged_protobuf(tmp_path) == before
    assert multiprocess.compact(str(tmp_path)) >= 2
    assert glob.glob(str(tmp_path / '*.fpn')) == [str(tmp_path / 'histogram_native_archive.fpn')]
    assert merged_protobuf(tmp_path) == before
    assert before == one_process_protobuf({'native_histogram_initial_schema': 1}, everything)


def test_remove_and_clear_take_the_native_buckets_out(tmp_path, monkeypatch, no_created):
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        h = fastprom.Histogram('rpc_seconds', 'RPC latency.', ['method'], registry=None,
                               native_histogram_bucket_factor=1.1)
    for method, v in [('get', 0.25), ('put', 3.0), ('get', -1.5), ('del', 7.0)]:
        h.labels(method).observe(v)
    h.remove('get')
    kept = h.labels('put')
    kept.observe(5.0)
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR')
    expected = one_process_protobuf({'native_histogram_bucket_factor': 1.1},
                                    [('put', [3.0, 5.0]), ('del', [7.0])], methods=['put', 'del'])
    assert merged_protobuf(tmp_path) == expected
    h.clear()
    assert merged_protobuf(tmp_path) == b''


VALUES = st.one_of(st.integers(-(1 << 20), 1 << 20).map(lambda k: k / 256), st.just(0.0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-4, 8), st.lists(VALUES, max_size=60)), min_size=1, max_size=4))
def test_any_processes_merge_as_one_process_at_their_lowest_schema(processes):
    """Processes told apart by a `MultiProcessValue` identifier (each one's files named after
    it), in this process: quick enough for hypothesis."""
    identifier = ['0']
    saved = values.ValueClass
    fastprom.disable_created_metrics()
    try:
        with tempfile.TemporaryDirectory() as directory:
            with mock.patch.dict(os.environ, {'PROMETHEUS_MULTIPROC_DIR': directory}):
                values.ValueClass = values.MultiProcessValue(lambda: identifier[0])
                try:
                    for p, (schema, observed) in enumerate(processes):
                        identifier[0] = str(p)
                        h = fastprom.Histogram('h', 'H.', registry=None, native_histogram_max_buckets=0,
                                               native_histogram_initial_schema=schema)
                        for v in observed:
                            h.observe(v)
                finally:
                    values.ValueClass = saved
            merged = merged_protobuf(directory)
        registry = fastprom.CollectorRegistry()
        one = fastprom.Histogram('h', 'H.', registry=registry, native_histogram_max_buckets=0,
                                 native_histogram_initial_schema=min(p[0] for p in processes))
        for _, observed in processes:
            for v in observed:
                one.observe(v)
        assert merged == exposition.generate_protobuf(registry)
    finally:
        fastprom.enable_created_metrics()


# ---------------------------------------------------------------------------
# Real components: gunicorn with 2 workers, Prometheus 2.42 with and without the flag
# ---------------------------------------------------------------------------

APP = '''
import os
import time
import fastprom
from fastprom import multiprocess

registry = fastprom.CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
work = fastprom.Histogram('work_seconds', 'Work.', native_histogram_bucket_factor=1.1)
metrics = fastprom.make_wsgi_app(registry)


def batch(i):
    return [((i * 100 + k) % 1000 + 0.5) / 1000 for k in range(100)]


def wsgi(environ, start_response):
    if environ['PATH_INFO'] == '/work':
        for v in batch(int(environ['QUERY_STRING'])):
            work.observe(v)
        time.sleep(0.005)  # keeps a worker busy long enough for the other to take requests
        start_response('200 OK', [('X-Worker-Pid', str(os.getpid()))])
        return [b'ok']
    return metrics(environ, start_response)
'''

REQUESTS = 40  # 4000 observations: every value (j + 0.5) / 1000 four times


def send_work(port):
    """Each request once, from 4 threads; returns the pids that served them."""
    pids, errors = set(), []

    def worker(t):
        for i in range(t, REQUESTS, 4):
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/work?{i}', timeout=10) as r:
                    pids.add(r.headers['X-Worker-Pid'])
            except OSError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return pids


def test_real_prometheus_queries_a_gunicorn_app_with_two_workers(tmp_path):
    import real_servers as rs
    import test_multiprocess_servers as mps
    pytest.importorskip('gunicorn')
    rs.require_binary('prometheus')
    mpdir = tmp_path / 'mp'
    mpdir.mkdir()
    (tmp_path / 'native_app.py').write_text(APP)
    argv = [sys.executable, '-m', 'gunicorn', '-w', '2', '-b', '127.0.0.1:0', '--preload',
            '--chdir', str(tmp_path), '--graceful-timeout', '5', '--log-level', 'info',
            'native_app:wsgi']
    env = mps.server_env('fastprom', mpdir)
    server = mps.Server('gunicorn[native]', argv, env, tmp_path / 'gunicorn.log')
    try:
        port = mps.listening_port(server, r'Listening at: http://127\.0\.0\.1:(\d+)')
        mps.wait_until(lambda: len(server.workers()) == 2, mps.START_TIMEOUT, '2 workers')
        mps.wait_until(lambda: _answers(port), mps.START_TIMEOUT, 'the app to answer')
        pids = send_work(port)
        assert len(pids) == 2, f'one worker served everything: {pids}'
        assert {f'histogram_native_{pid}.fpn' for pid in pids} <= set(os.listdir(mpdir))
        target = {'native': (f'127.0.0.1:{port}', '/metrics')}
        rs.check_native_histogram_queries(
            tmp_path, target, series='work_seconds{job="native"}',
            bucket='work_seconds_bucket{job="native",le="0.5"}',
            count=REQUESTS * 100, total=REQUESTS * 50, at_most_half=REQUESTS * 100 / 2)
    finally:
        server.stop()


def _answers(port):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
