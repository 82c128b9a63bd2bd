"""A typed service instrumented the way real ones are; mypy must find nothing wrong in it.

Written against prometheus_client; tests/test_typing.py also checks it with every
`prometheus_client` replaced by `fastprom`. It is type-checked, never run.
"""

import asyncio
import os
import threading
from typing import Dict, Iterable, List, Optional, Tuple, Type
from wsgiref.simple_server import make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Enum, Gauge, Histogram, Info,
    Metric, Summary, delete_from_gateway, disable_created_metrics, generate_latest,
    make_asgi_app, make_wsgi_app, push_to_gateway, pushadd_to_gateway, start_http_server,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import basic_auth_handler, choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

REQUESTS = Counter('app_requests_total', 'Requests handled', ['method', 'path'])
FAILURES = Counter('app_failures', 'Handler failures', namespace='app', subsystem='http')
IN_FLIGHT = Gauge('app_in_flight', 'Requests being handled', multiprocess_mode='livesum')
QUEUE = Gauge('app_queue_length', 'Jobs waiting', ['queue'])
LATENCY = Histogram('app_latency_seconds', 'Request latency', ['method'],
                    buckets=(0.01, 0.1, 1.0, float('inf')))
PAYLOAD = Summary('app_payload_bytes', 'Payload sizes', unit='bytes')
BUILD = Info('app_build', 'Build facts')
STATE = Enum('app_state', 'Lifecycle state', states=['starting', 'ready', 'stopping'])


@LATENCY.labels('GET').time()
@REQUESTS.labels(method='GET', path='/items').count_exceptions()
@IN_FLIGHT.track_inprogress()
def list_items(limit: int) -> List[str]:
    return [str(i) for i in range(limit)]


@PAYLOAD.time()
async def fetch(name: str) -> bytes:
    await asyncio.sleep(0)
    return name.encode()


@FAILURES.count_exceptions((ValueError, KeyError))
def parse_port(text: str) -> int:
    return int(text)


def handle(method: str, path: str, body: bytes) -> int:
    child: Counter = REQUESTS.labels(method, path)
    child.inc()
    REQUESTS.labels(method=method, path=path).inc(2.5, exemplar={'trace_id': 'abc'})
    PAYLOAD.observe(len(body))
    with LATENCY.labels(method=method).time():
        status = 200
    with QUEUE.labels('default').track_inprogress():
        pass
    with FAILURES.count_exceptions():
        return status


def measure() -> Optional[float]:
    with LATENCY.labels('POST').time() as timer:
        pass
    LATENCY.labels(method='PUT').observe(0.25, {'trace_id': 'def'})
    duration: Optional[float] = timer.duration
    return duration


def housekeeping(sizes: Dict[str, int]) -> None:
    for queue, size in sizes.items():
        QUEUE.labels(queue=queue).set(size)
    QUEUE.labels('retry').inc()
    QUEUE.labels('retry').dec(0.5)
    IN_FLIGHT.set_to_current_time()
    IN_FLIGHT.set_function(lambda: float(len(sizes)))
    BUILD.info({'version': '1.2.3', 'commit': 'abc'})
    STATE.state('ready')
    QUEUE.remove('retry')
    QUEUE.clear()
    FAILURES.reset()


class TenantCounter(Counter):
    """A metric class of the service's own, built on the library's."""

    def inc_for(self, tenant: str, amount: float = 1) -> None:
        self.labels(tenant).inc(amount)


def describe_all(metrics: Iterable[MetricWrapperBase]) -> List[str]:
    return [family.name for metric in metrics for family in metric.describe()]


def latency_histogram(kind: Type[Histogram], name: str) -> Histogram:
    return kind(name, 'Latency', buckets=Histogram.DEFAULT_BUCKETS)


class QueueCollector(Collector):
    """A custom collector, registered like the built-in ones."""

    def __init__(self, sizes: Dict[str, int]) -> None:
        self.sizes = sizes

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily('queue_size', 'Queue sizes', labels=['queue'])
        for name, size in self.sizes.items():
            gauge.add_metric([name], size)
        counter = CounterMetricFamily('jobs', 'Jobs done', value=7)
        histogram = HistogramMetricFamily('waits', 'Waits', buckets=[('1', 2.0), ('+Inf', 3.0)],
                                          sum_value=4.5)
        return [gauge, counter, histogram]


def expose(registry: CollectorRegistry) -> Tuple[bytes, str]:
    body = generate_latest(registry)
    encoder, content_type = choose_encoder('application/openmetrics-text')
    assert content_type != CONTENT_TYPE_LATEST
    return body + encoder(registry) + generate_openmetrics(registry), content_type


def private_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(QueueCollector({'default': 3}))
    Counter('private_total', 'A counter', registry=registry).inc()
    value: Optional[float] = registry.get_sample_value('private_total')
    if value is not None:
        print(value + 1)
    registry.set_target_info({'env': 'test'})
    for family in registry.collect():
        for sample in family.samples:
            print(sample.name, sample.labels, sample.value)
    return registry


def serve() -> None:
    server, thread = start_http_server(0, addr='127.0.0.1')
    print(server.server_address)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5.0)
    app = make_wsgi_app(REGISTRY)
    with make_server('127.0.0.1', 0, app) as wsgi:
        threading.Thread(target=wsgi.handle_request).start()
    print(make_asgi_app(REGISTRY, disable_compression=True))


def push(registry: CollectorRegistry) -> None:
    def handler(url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, str]],
                data: bytes) -> None:
        basic_auth_handler(url, method, timeout, headers, data, 'user', 'secret')()

    push_to_gateway('127.0.0.1:9091', job='batch', registry=registry,
                    grouping_key={'instance': 'a'}, timeout=5.0, handler=handler)
    pushadd_to_gateway('127.0.0.1:9091', job='batch', registry=registry)
    delete_from_gateway('127.0.0.1:9091', job='batch')
    write_to_textfile('/tmp/metrics.prom', registry)


def multiprocess_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    mark_process_dead(os.getpid())
    return registry


def parse(text: str) -> Dict[str, float]:
    values: Dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values


def main() -> None:
    disable_created_metrics()
    items: List[str] = list_items(3)
    port: int = parse_port('8000')
    status: int = handle('GET', '/items', b'{}')
    payload: bytes = asyncio.run(fetch('x'))
    print(items, port, status, payload, measure())
    housekeeping({'default': 1})
    print(expose(private_registry()), parse('a 1\n'), multiprocess_registry())
    tenants = TenantCounter('tenant_requests', 'Requests per tenant', ['tenant'])
    tenants.inc_for('acme')
    print(describe_all([REQUESTS, QUEUE, LATENCY, PAYLOAD, BUILD, STATE, tenants]))
    print(latency_histogram(Histogram, 'db_latency_seconds'))
    serve()
    push(CollectorRegistry())
