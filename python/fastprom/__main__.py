"""`python -m fastprom demo [--port N] [--once]`: a simulated web service's metrics, served."""

import argparse
import random
import sys
import threading
import time

ENDPOINTS = [('GET', '/users'), ('GET', '/items'), ('POST', '/orders'), ('GET', '/health')]


def _build_metrics(registry):
    from . import Counter, Gauge, Histogram
    requests = Counter('http_requests_total', 'HTTP requests handled', ['method', 'endpoint', 'status'],
                       registry=registry)
    latency = Histogram('http_request_duration_seconds', 'HTTP request latency', ['endpoint'],
                        registry=registry)
    in_progress = Gauge('http_requests_in_progress', 'HTTP requests being handled', registry=registry)
    return requests, latency, in_progress


def _serve_requests(metrics, count, rng):
    """Records `count` simulated requests: latency from a log-normal, 3% server errors."""
    requests, latency, in_progress = metrics
    for _ in range(count):
        method, endpoint = rng.choice(ENDPOINTS)
        with in_progress.track_inprogress():
            duration = rng.lognormvariate(-3.0, 0.8)
            status = '500' if rng.random() < 0.03 else '200'
            latency.labels(endpoint).observe(duration)
            requests.labels(method, endpoint, status).inc()


def demo(port: int, once: bool) -> int:
    from . import CollectorRegistry, generate_latest, start_http_server
    registry = CollectorRegistry()
    metrics = _build_metrics(registry)
    rng = random.Random(7)
    _serve_requests(metrics, 10_000, rng)
    text = generate_latest(registry).decode()
    if once:
        sys.stdout.write(text)
        return 0
    server, _ = start_http_server(port, addr='127.0.0.1', registry=registry)
    print(f'Serving metrics at http://127.0.0.1:{server.server_port}/metrics (Ctrl-C to stop)')
    print('A sample of the exposition:')
    print('\n'.join(text.splitlines()[:12]))
    print('...')

    def traffic():
        while True:
            _serve_requests(metrics, 100, rng)
            time.sleep(0.1)

    threading.Thread(target=traffic, daemon=True).start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m fastprom')
    commands = parser.add_subparsers(dest='command', required=True)
    run = commands.add_parser('demo', help='record a simulated request workload and serve /metrics')
    run.add_argument('--port', type=int, default=8000, help='port on 127.0.0.1 (0 picks a free one)')
    run.add_argument('--once', action='store_true', help='print the exposition and exit')
    args = parser.parse_args(argv)
    return demo(args.port, args.once)


if __name__ == '__main__':
    sys.exit(main())
