"""`python -m fastprom COMMAND`:

- `demo [--port N] [--once]`: a simulated web service's metrics, served.
- `dashboard [--namespace N] [--from-url URL] [--title T]`: a Grafana dashboard (JSON) for a
  BentoML service.
- `prometheus-config --target HOST:PORT [--job NAME] [--interval 15s] [--metrics-path /metrics]`:
  a prometheus.yml scraping it.
"""

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


def dashboard(namespace: str, from_url, title) -> int:
    from .dashboard import dashboard_json, scrape_families, scrape_native_histograms
    families, natives = [], []
    if from_url:
        try:
            families = scrape_families(from_url)
            natives = scrape_native_histograms(from_url)
        except (OSError, ValueError) as exc:
            print(f'could not scrape {from_url}: {exc}', file=sys.stderr)
            return 1
    sys.stdout.write(dashboard_json(namespace, title, families, natives))
    return 0


def prometheus_config(targets, job: str, interval: str, metrics_path: str) -> int:
    from .prometheus_config import prometheus_config as render
    sys.stdout.write(render(targets, job, interval, metrics_path))
    return 0


def _checked(check):
    """An argparse `type` that turns the check's ValueError into a usage error."""
    def convert(value):
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _namespace(value):
    from .dashboard import is_valid_namespace
    if not is_valid_namespace(value):
        raise ValueError(f'not a valid metric name prefix: {value!r}')
    return value


def _parser():
    from .dashboard import DEFAULT_NAMESPACE
    from .prometheus_config import check_duration, check_job, check_metrics_path, check_target
    parser = argparse.ArgumentParser(prog='python -m fastprom')
    commands = parser.add_subparsers(dest='command', required=True)
    run = commands.add_parser('demo', help='record a simulated request workload and serve /metrics')
    run.add_argument('--port', type=int, default=8000, help='port on 127.0.0.1 (0 picks a free one)')
    run.add_argument('--once', action='store_true', help='print the exposition and exit')

    dash = commands.add_parser('dashboard', help='print a Grafana dashboard (JSON) for a BentoML service')
    dash.add_argument('--namespace', type=_checked(_namespace), default=DEFAULT_NAMESPACE,
                      help=f'metrics namespace of the service (default {DEFAULT_NAMESPACE})')
    dash.add_argument('--from-url', metavar='URL',
                      help='scrape this /metrics URL and add a panel per custom metric')
    dash.add_argument('--title', help='dashboard title')

    conf = commands.add_parser('prometheus-config', help='print a prometheus.yml scraping a BentoML service')
    conf.add_argument('--target', type=_checked(check_target), action='append', required=True,
                      metavar='HOST:PORT', help='address of the service (repeat for several)')
    conf.add_argument('--job', type=_checked(check_job), default='bentoml', help='job name (default bentoml)')
    conf.add_argument('--interval', type=_checked(check_duration), default='15s',
                      help='scrape interval (default 15s)')
    conf.add_argument('--metrics-path', type=_checked(check_metrics_path), default='/metrics',
                      help='path of the metrics endpoint (default /metrics)')
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == 'dashboard':
        return dashboard(args.namespace, args.from_url, args.title)
    if args.command == 'prometheus-config':
        return prometheus_config(args.target, args.job, args.interval, args.metrics_path)
    return demo(args.port, args.once)


if __name__ == '__main__':
    sys.exit(main())
