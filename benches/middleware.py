#!/usr/bin/env python3
"""Per-request overhead of BentoML's default service metrics middleware.

    python benches/middleware.py [--quick]

fastprom's `fastprom.asgi.ServiceMetricsMiddleware` against BentoML's own
`RunnerTrafficMetricsMiddleware` on prometheus_client (if `bentoml` cannot be imported, a
line-by-line replica of it from the reference notes, said so in the row's notes). Both run in
multiprocess mode, as BentoML always does: each library is measured in subprocesses of its own
(several short ones, the libraries alternating) with PROMETHEUS_MULTIPROC_DIR set to a fresh
directory before anything is imported; each checks that it wrote multiprocess files.

The endpoint is a trivial ASGI app (response start + body), called in-process in a loop of
fake requests inside one coroutine, no network. Overhead per request = (time of the loop
with the middleware - time of the loop on the bare app) / requests; the bare and wrapped
loops alternate in every round. `run(quick)` returns the row for the main benchmark runner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from timeit import default_timer
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = ('prometheus_client', 'fastprom')
PATH = '/hello'
SERVICE = dict(service_name='svc', service_version='1.0', runner_name='Svc')

START = {'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain')]}
BODY = {'type': 'http.response.body', 'body': b'ok'}
REQUEST = {'type': 'http.request', 'body': b'', 'more_body': False}
SCOPE = {
    'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'GET',
    'scheme': 'http', 'path': PATH, 'raw_path': PATH.encode(), 'root_path': '', 'query_string': b'',
    'headers': [(b'host', b'bench')], 'client': ('127.0.0.1', 1), 'server': ('bench', 80),
}


async def bare_app(scope, receive, send):
    await send(START)
    await send(BODY)


async def receive():
    return REQUEST


async def send(message):
    pass


# ---------------------------------------------------------------------------
# The two middlewares
# ---------------------------------------------------------------------------

def fastprom_middleware():
    from fastprom.asgi import ServiceMetricsMiddleware
    return ServiceMetricsMiddleware(bare_app, routes=[PATH], **SERVICE), ''


def bentoml_middleware():
    """BentoML's RunnerTrafficMetricsMiddleware, set up as a 1.4 service does."""
    try:
        from bentoml._internal.context import server_context
        from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
        import bentoml
    except ImportError as exc:
        return ReplicaRunnerTrafficMetricsMiddleware(bare_app), (
            f'bentoml not importable ({exc}): reference is a replica of its middleware on prometheus_client')
    server_context.bento_name = SERVICE['service_name']
    server_context.bento_version = SERVICE['service_version']
    server_context.service_name = SERVICE['runner_name']
    server_context.service_routes = [PATH]
    skip_paths = ['/metrics', '/healthz', '/livez', '/readyz', '/health']
    mw = RunnerTrafficMetricsMiddleware(bare_app, namespace='bentoml_service', skip_paths=skip_paths)
    return mw, f'reference: bentoml {bentoml.__version__} RunnerTrafficMetricsMiddleware'


class ReplicaRunnerTrafficMetricsMiddleware:
    """BentoML 1.4's RunnerTrafficMetricsMiddleware (HTTP path) on prometheus_client, with
    the label values it reads from its server context held as attributes."""

    def __init__(self, app, namespace='bentoml_service', skip_paths=('/metrics', '/healthz', '/livez', '/readyz')):
        self.app = app
        self.namespace = namespace
        self.skip_paths = skip_paths
        self._is_setup = False

    def _setup(self):
        import prometheus_client as pc
        from prometheus_client import REGISTRY
        labels = ['endpoint', 'service_name', 'service_version', 'http_response_code', 'runner_name']
        self.metrics_request_duration = pc.Histogram(
            namespace=self.namespace, name='request_duration_seconds', documentation='runner RPC duration in seconds',
            labelnames=labels, registry=REGISTRY,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0,
                     float('inf')))
        self.metrics_request_total = pc.Counter(
            namespace=self.namespace, name='request_total', documentation='Total number of runner RPC',
            labelnames=labels, registry=REGISTRY)
        self.metrics_request_in_progress = pc.Gauge(
            namespace=self.namespace, name='request_in_progress',
            documentation='Total number of runner RPC in progress now',
            labelnames=['endpoint', 'service_name', 'service_version', 'runner_name'], multiprocess_mode='livesum',
            registry=REGISTRY)
        self.metrics_last_request_timestamp = pc.Gauge(
            namespace=self.namespace, name='last_request_timestamp_seconds',
            documentation='Timestamp of the last received request',
            labelnames=['service_name', 'service_version', 'runner_name'], registry=REGISTRY)
        for code in (200, 500):
            self.metrics_request_total.labels(endpoint=PATH, service_name='svc', service_version='1.0',
                                              http_response_code=code, runner_name='Svc')
        self._is_setup = True

    async def __call__(self, scope, receive, send):
        if not self._is_setup:
            self._setup()
        if not scope['type'].startswith(('http', 'websocket')):
            await self.app(scope, receive, send)
            return
        if scope['type'].startswith('http') and scope['path'] == '/metrics':
            await self.app(scope, receive, send)
            return
        endpoint = scope['path']
        if not endpoint.startswith(tuple(self.skip_paths)):
            self.metrics_last_request_timestamp.labels(
                service_name='svc', service_version='1.0', runner_name='Svc').set_to_current_time()
        start_time = default_timer()
        status_code = 0

        async def wrapped_receive():
            message = await receive()
            return message  # the websocket branches are not reached by HTTP requests

        async def wrapped_send(message):
            nonlocal status_code
            if message['type'] == 'http.response.start':
                status_code = message['status']
            elif message['type'] == 'http.response.body':
                if ('more_body' not in message) or not message['more_body']:
                    self.metrics_request_total.labels(
                        endpoint=endpoint, service_name='svc', service_version='1.0',
                        http_response_code=status_code, runner_name='Svc').inc()
                    total_time = max(default_timer() - start_time, 0)
                    self.metrics_request_duration.labels(
                        endpoint=endpoint, service_name='svc', service_version='1.0',
                        http_response_code=status_code, runner_name='Svc').observe(total_time)
            await send(message)

        with self.metrics_request_in_progress.labels(
                endpoint=endpoint, service_name='svc', service_version='1.0', runner_name='Svc').track_inprogress():
            await self.app(scope, wrapped_receive, wrapped_send)


# ---------------------------------------------------------------------------
# Measurement (in the subprocess)
# ---------------------------------------------------------------------------

async def request_loop(app, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await app(SCOPE, receive, send)
    return time.perf_counter() - start


def measure(lib: str, rounds: int, number: int) -> dict:
    """Per-round overhead in microseconds of `lib`'s middleware, in this process."""
    middleware, notes = fastprom_middleware() if lib == 'fastprom' else bentoml_middleware()

    async def main():
        await request_loop(middleware, 1_000)  # set up, warm caches
        await request_loop(bare_app, 1_000)
        overheads, bare = [], []
        for r in range(rounds):
            if r % 2:
                t_mw = await request_loop(middleware, number)
                t_bare = await request_loop(bare_app, number)
            else:
                t_bare = await request_loop(bare_app, number)
                t_mw = await request_loop(middleware, number)
            overheads.append((t_mw - t_bare) / number * 1e6)
            bare.append(t_bare / number * 1e6)
        return overheads, bare

    overheads, bare = asyncio.run(main())
    return {'lib': lib, 'overhead_us': overheads, 'bare_us': bare, 'notes': notes,
            'multiprocess_files': sorted(os.listdir(os.environ['PROMETHEUS_MULTIPROC_DIR']))}


def measure_in_subprocess(lib: str, rounds: int, number: int) -> dict:
    directory = tempfile.mkdtemp(prefix='fastprom-bench-mw-')
    try:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
        args = [sys.executable, os.path.abspath(__file__), '--worker', lib, str(rounds), str(number)]
        out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if not result['multiprocess_files']:
        raise RuntimeError(f'{lib} wrote no multiprocess files: not in multiprocess mode')
    return result


def run(quick: bool) -> List[dict]:
    # Several short subprocesses per library, alternating, so that a busy spell of the
    # machine does not fall on one library only.
    batches, rounds, number = (3, 3, 5_000) if quick else (6, 5, 20_000)
    samples: Dict[str, List[float]] = {lib: [] for lib in LIBS}
    bare: List[float] = []
    notes = ''
    for batch in range(batches):
        for lib in (LIBS if batch % 2 else LIBS[::-1]):
            result = measure_in_subprocess(lib, rounds, number)
            samples[lib] += result['overhead_us']
            bare += result['bare_us']
            notes = notes or result['notes']
    ref, fast = statistics.median(samples['prometheus_client']), statistics.median(samples['fastprom'])
    notes += (f"; both in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, files checked); trivial ASGI app called "
              f"in-process, {number} requests per round, bare app {statistics.median(bare):.2f} us/request")
    return [{
        'id': 'middleware_overhead',
        'label': 'BentoML service metrics middleware, overhead per request',
        'goal': 5, 'unit': 'us', 'ref': ref, 'fast': fast, 'speedup': ref / fast,
        'samples': samples, 'notes': notes,
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--worker', nargs=3, metavar=('LIB', 'ROUNDS', 'NUMBER'),
                        help='measure one library here and print JSON')
    args = parser.parse_args()
    if args.worker:
        lib, rounds, number = args.worker
        print(json.dumps(measure(lib, int(rounds), int(number))))
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown (BentoML's PrometheusClient.__del__ complains there)
    for r in run(args.quick):
        print(f"{r['id']}: prometheus_client/BentoML {r['ref']:.2f} us, fastprom {r['fast']:.2f} us, "
              f"{r['speedup']:.1f}x (goal {r['goal']}x)\n  {r['notes']}")


if __name__ == '__main__':
    main()
