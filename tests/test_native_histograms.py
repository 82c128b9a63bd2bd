"""Native histograms (issue 15): sparse exponential buckets kept beside the classic ones, served
over Prometheus' protobuf format when a scraper asks for it, and ingested by a real Prometheus."""

import random
import struct

import prometheus_client
import pytest

import fastprom
import fastprom.openmetrics.exposition
from fastprom import exposition

PROTOBUF_ACCEPT = ('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;'
                   'encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,'
                   'text/plain;version=0.0.4;q=0.5,*/*;q=0.1')


def native_histogram(registry, **kwargs):
    kwargs.setdefault('native_histogram_bucket_factor', 1.1)
    return fastprom.Histogram('rpc_seconds', 'RPC latency.', ['method'], registry=registry, **kwargs)


def test_text_formats_stay_the_references():
    ours, reference = fastprom.CollectorRegistry(), prometheus_client.CollectorRegistry()
    native_histogram(ours).labels('get').observe_many([0.01, 0.2, 3.0])
    h = prometheus_client.Histogram('rpc_seconds', 'RPC latency.', ['method'], registry=reference)
    for v in (0.01, 0.2, 3.0):
        h.labels('get').observe(v)
    strip = lambda text: [l for l in text.splitlines() if b'_created' not in l]  # noqa: E731
    assert strip(fastprom.generate_latest(ours)) == strip(prometheus_client.generate_latest(reference))


def _varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def delimited_messages(data):
    """The length-prefixed messages of a delimited protobuf stream."""
    i, messages = 0, []
    while i < len(data):
        length, i = _varint(data, i)
        messages.append(data[i:i + length])
        i += length
    return messages


def test_protobuf_is_chosen_only_when_asked_for():
    assert exposition.choose_encoder(PROTOBUF_ACCEPT)[1] == exposition.CONTENT_TYPE_PROTOBUF
    for accept in ('', 'text/plain;version=0.0.4', 'application/openmetrics-text;version=1.0.0',
                   'application/vnd.google.protobuf'):
        assert exposition.choose_encoder(accept)[1] != exposition.CONTENT_TYPE_PROTOBUF


def test_protobuf_holds_every_family():
    registry = fastprom.CollectorRegistry()
    native_histogram(registry).labels('get').observe(0.5)
    fastprom.Counter('jobs', 'Jobs.', registry=registry).inc(3)
    fastprom.Gauge('depth', 'Depth.', registry=registry).set(2)
    s = fastprom.Summary('size', 'Size.', registry=registry, objectives={0.5: 0.05})
    s.observe(4)
    messages = delimited_messages(exposition.generate_protobuf(registry))
    names = [m[2:2 + m[1]].decode() for m in messages]  # field 1 (name) comes first
    assert names == ['rpc_seconds', 'jobs_total', 'depth', 'size']  # as Prometheus names counters
    # The counter's value 3.0 is in its message as a double.
    assert struct.pack('<d', 3.0) in messages[1]


@pytest.mark.parametrize('kwargs, message', [
    ({'native_histogram_bucket_factor': 1.0}, 'greater than 1'),
    ({'native_histogram_bucket_factor': 1.1, 'native_histogram_initial_schema': 3}, 'not both'),
    ({'native_histogram_bucket_factor': None, 'native_histogram_initial_schema': 9}, '-4 to 8'),
    ({'native_histogram_zero_threshold': -1.0}, 'negative'),
    ({'native_histogram_max_buckets': -1}, 'negative'),
])
def test_bad_native_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        native_histogram(fastprom.CollectorRegistry(), **kwargs)


def test_real_prometheus_ingests_native_histograms(tmp_path):
    """Prometheus 2.42 with --enable-feature=native-histograms asks for protobuf and answers
    histogram_quantile/count/sum/fraction on the native series; one without the flag scrapes the
    same target as text and answers the classic _bucket query."""
    import real_servers as rs
    registry = fastprom.CollectorRegistry()
    h = native_histogram(registry)
    rng = random.Random(15)
    values = [rng.random() for _ in range(20_000)]
    h.labels('get').observe_many(values)
    server, thread = fastprom.start_http_server(0, addr=rs.LOOPBACK, registry=registry)
    target = {'native': (f'{rs.LOOPBACK}:{server.server_port}', '/metrics')}
    try:
        rs.check_native_histogram_queries(
            tmp_path, target, series='rpc_seconds{job="native",method="get"}',
            bucket='rpc_seconds_bucket{job="native",method="get",le="0.5"}',
            count=20_000, total=sum(values), at_most_half=sum(1 for v in values if v <= 0.5))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_exemplars_reach_the_native_buckets_with_their_time():
    registry = fastprom.CollectorRegistry()
    h = native_histogram(registry)
    h.labels('get').observe(0.25, {'trace_id': 'abc123'})
    h.labels('get').observe(float('nan'), {'trace_id': 'nan-trace'})  # no classic bucket
    [message] = delimited_messages(exposition.generate_protobuf(registry))
    assert b'trace_id' in message and b'abc123' in message and b'nan-trace' in message
    # The classic bucket keeps its exemplar too (OpenMetrics).
    om = fastprom.openmetrics.exposition.generate_latest(registry)
    assert b'# {trace_id="abc123"} 0.25' in om
