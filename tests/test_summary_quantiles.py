"""Summary quantiles (issue 16): client_golang's objectives over a sliding window, one process."""

import math
import random
import shutil
import subprocess
import threading
import time

import prometheus_client
from prometheus_client.openmetrics import exposition as ref_openmetrics
import pytest

import fastprom
from fastprom.openmetrics import exposition as fp_openmetrics

OBJECTIVES = {0.5: 0.05, 0.9: 0.01, 0.99: 0.001}


def summary(registry=None, **kwargs):
    kwargs.setdefault('objectives', OBJECTIVES)
    return fastprom.Summary('latency_seconds', 'Latency.', registry=registry or fastprom.CollectorRegistry(),
                            **kwargs)


def quantile_samples(metric):
    """{quantile: value} of an unlabelled summary, from collect()."""
    [family] = metric.collect()
    return {float(s.labels['quantile']): s.value for s in family.samples if 'quantile' in s.labels}


def within_rank_error(sorted_values, q, error, estimate):
    n = len(sorted_values)
    low = sum(1 for v in sorted_values if v < estimate) + 1       # ranks of the estimate
    high = sum(1 for v in sorted_values if v <= estimate)
    return high >= math.floor((q - error) * n) and low <= math.ceil((q + error) * n)


DISTRIBUTIONS = {
    'uniform': lambda r: r.random(),
    'exponential': lambda r: r.expovariate(3.0),
    'lognormal': lambda r: r.lognormvariate(0, 2),
    'bimodal': lambda r: r.gauss(0.05, 0.01) if r.random() < 0.8 else r.gauss(3.0, 0.5),
    'discrete': lambda r: float(r.randrange(5)),
}


@pytest.mark.parametrize('distribution', sorted(DISTRIBUTIONS))
def test_every_objective_is_within_its_rank_error(distribution):
    rng = random.Random(distribution)
    values = [DISTRIBUTIONS[distribution](rng) for _ in range(100_000)]
    s = summary()
    s.observe_many(values[:50_000])
    for v in values[50_000:]:
        s.observe(v)
    ordered = sorted(values)
    estimates = quantile_samples(s)
    assert sorted(estimates) == sorted(OBJECTIVES)
    for q, error in OBJECTIVES.items():
        assert within_rank_error(ordered, q, error, estimates[q]), (q, estimates[q])


def test_an_empty_window_reports_nan_and_counts_stay_exact():
    s = summary()
    assert all(math.isnan(v) for v in quantile_samples(s).values())
    s.observe(float('nan'))
    assert all(math.isnan(v) for v in quantile_samples(s).values())
    [family] = s.collect()
    count = [x.value for x in family.samples if x.name.endswith('_count')]
    assert count == [1.0]


def test_old_observations_age_out():
    s = summary(max_age=0.6, age_buckets=3)
    for _ in range(100):
        s.observe(1.0)
    assert set(quantile_samples(s).values()) == {1.0}
    time.sleep(0.4)
    for _ in range(100):
        s.observe(5.0)
    assert set(quantile_samples(s).values()) <= {1.0, 5.0}
    time.sleep(0.45)  # the first observations are now older than max_age
    assert set(quantile_samples(s).values()) == {5.0}
    time.sleep(0.7)
    assert all(math.isnan(v) for v in quantile_samples(s).values())


def test_concurrent_observers_keep_exact_counts():
    s = summary()

    def observe():
        for i in range(20_000):
            s.observe(i / 20_000)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [family] = s.collect()
    values = {x.name: x.value for x in family.samples if not x.labels}
    assert values['latency_seconds_count'] == 80_000
    estimates = quantile_samples(s)
    assert abs(estimates[0.5] - 0.5) <= 0.05 + 1e-9 and abs(estimates[0.99] - 0.99) <= 0.002


def _replayed_in_the_reference(fp_registry):
    """A prometheus_client registry whose collector yields our collected families, so its
    writers format the very samples we wrote."""
    class Replay(prometheus_client.registry.Collector):
        def collect(self):
            for family in fp_registry.collect():
                metric = prometheus_client.Metric(family.name, family.documentation, family.type,
                                                  family.unit)
                for s in family.samples:
                    metric.add_sample(s.name, s.labels, s.value, s.timestamp, s.exemplar)
                yield metric

    registry = prometheus_client.CollectorRegistry()
    registry.register(Replay())
    return registry


def test_quantile_lines_are_written_as_the_reference_writes_a_summary_with_quantiles():
    registry = fastprom.CollectorRegistry()
    s = summary(registry, labelnames=['route'])
    for i in range(1000):
        s.labels('/a').observe(i / 1000)
        s.labels('/b').observe(i)
    fastprom.Summary('plain_seconds', 'No objectives.', registry=registry).observe(2)
    reference = _replayed_in_the_reference(registry)
    text = fastprom.generate_latest(registry)
    assert text == prometheus_client.generate_latest(reference)
    assert fp_openmetrics.generate_latest(registry) == ref_openmetrics.generate_latest(reference)
    lines = text.decode().splitlines()
    quantile_lines = [line for line in lines if 'quantile=' in line]
    assert len(quantile_lines) == 6
    first = lines.index(quantile_lines[0])
    assert lines[first + 3].startswith('latency_seconds_count{route="/a"}')


def test_get_sample_value_answers_quantiles():
    registry = fastprom.CollectorRegistry()
    s = summary(registry, labelnames=['route'])
    for i in range(1, 101):
        s.labels('/a').observe(i)
    median = registry.get_sample_value('latency_seconds', {'route': '/a', 'quantile': '0.5'})
    assert 45 <= median <= 55
    assert registry.get_sample_value('latency_seconds', {'route': '/a', 'quantile': '0.75'}) is None
    assert registry.get_sample_value('latency_seconds_count', {'route': '/a'}) == 100


def test_labels_remove_clear_time_and_decorators():
    registry = fastprom.CollectorRegistry()
    s = summary(registry, labelnames=['route'])
    child = s.labels(route='/x')
    with child.time():
        pass

    @child.time()
    def work():
        return 3

    assert work() == 3
    assert registry.get_sample_value('latency_seconds_count', {'route': '/x'}) == 2
    assert registry.get_sample_value('latency_seconds', {'route': '/x', 'quantile': '0.9'}) >= 0
    s.labels('/y').observe(1)
    s.remove('/x')
    assert registry.get_sample_value('latency_seconds', {'route': '/x', 'quantile': '0.9'}) is None
    s.clear()
    assert b'quantile' not in fastprom.generate_latest(registry)


def test_prometheus_summary_arguments_and_module():
    s = summary(objectives=None, invariants=((0.5, 0.05), (0.75, 0.02)), max_age_seconds=60,
                age_buckets=3)
    s.observe(1)
    assert sorted(quantile_samples(s)) == [0.5, 0.75]
    from fastprom.summary import Summary as DefaultQuantiles
    d = DefaultQuantiles('d', 'd', registry=fastprom.CollectorRegistry())
    d.observe(2)
    assert quantile_samples(d) == {0.5: 2.0, 0.9: 2.0, 0.99: 2.0}


@pytest.mark.parametrize('kwargs, message', [
    ({'objectives': {1.0: 0.01}}, 'not between 0 and 1'),
    ({'objectives': {0.5: 0.0}}, 'not between 0 and 1'),
    ({'objectives': [(0.5, 0.1), (0.5, 0.2)]}, 'twice'),
    ({'objectives': {0.5: 0.1}, 'invariants': ((0.5, 0.1),)}, 'not both'),
    ({'max_age': 0}, 'max_age'),
    ({'max_age': 10, 'max_age_seconds': 10}, 'not both'),
    ({'age_buckets': 0}, 'age_buckets'),
    ({'age_buckets': 2.5}, 'age_buckets'),
])
def test_bad_objectives_and_windows_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        summary(**kwargs)


def test_without_objectives_a_summary_is_the_references():
    ours, reference = fastprom.CollectorRegistry(), prometheus_client.CollectorRegistry()
    for lib, registry in ((fastprom, ours), (prometheus_client, reference)):
        lib.Summary('s', 'doc', ['a'], registry=registry).labels('x').observe(3)
    strip = lambda text: [l for l in text.splitlines() if b'_created' not in l]  # noqa: E731
    assert strip(fastprom.generate_latest(ours)) == strip(prometheus_client.generate_latest(reference))


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool (Debian package prometheus)')
def test_promtool_accepts_the_quantiles(tmp_path):
    registry = fastprom.CollectorRegistry()
    s = fastprom.Summary('job_duration_seconds', 'Job durations.', ['queue'], registry=registry,
                         objectives=OBJECTIVES)
    for i in range(500):
        s.labels('fast').observe(i / 500)
    result = subprocess.run(['promtool', 'check', 'metrics'], input=fastprom.generate_latest(registry),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_prometheus_scrapes_the_quantiles(tmp_path):
    """Prometheus 2.42 (OpenMetrics scrapes) stores the quantile series of a summary served by
    start_http_server, with values within the objectives of uniform data."""
    import real_servers as rs
    registry = fastprom.CollectorRegistry()
    s = fastprom.Summary('rpc_seconds', 'RPC latency.', ['method'], registry=registry,
                         objectives=OBJECTIVES)
    rng = random.Random(16)
    s.labels('get').observe_many([rng.random() for _ in range(50_000)])
    server, thread = fastprom.start_http_server(0, addr=rs.LOOPBACK, registry=registry)
    try:
        jobs = {'quantiles': (f'{rs.LOOPBACK}:{server.server_port}', '/metrics')}
        with rs.prometheus_server(tmp_path, jobs) as prom:
            prom.wait_for('up{job="quantiles"} == 1')
            for q, error in OBJECTIVES.items():
                series = f'rpc_seconds{{job="quantiles",method="get",quantile="{q}"}}'
                prom.wait_for(series)
                value = prom.query_value(series)
                assert abs(value - q) <= error + 0.01, (q, value)
            assert prom.query_value('rpc_seconds_count{job="quantiles"}') == 50_000
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
