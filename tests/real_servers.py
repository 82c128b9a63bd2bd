"""Helpers for the real-component tests: real Prometheus, Pushgateway, promtool,
uvicorn and gunicorn processes on loopback, plus the metric workloads they serve.

Everything here binds 127.0.0.1 only, works in a per-test temporary directory
and stops what it started (terminate, then kill, then wait) even when a test
fails.  A missing binary skips the test with a clear reason, except under
``FASTPROM_CI=1`` where it fails (CI installs the binaries).

This module is also imported by the small ASGI/WSGI app files the tests write
to a temporary directory and run under uvicorn / gunicorn in a subprocess (see
``APP_SOURCE``), so that the served metrics are built by the same code in
every process.  Keep its top-level imports to the standard library.
"""

import contextlib
import gzip
import http.client
import importlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from unittest import mock

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
LOOPBACK = '127.0.0.1'
CI = os.environ.get('FASTPROM_CI') == '1'

# Seconds; generous for slow CI machines, every wait polls and returns early.
START_TIMEOUT = 30.0
POLL = 0.05


# ---------------------------------------------------------------------------
# Skipping / failing when a component is missing
# ---------------------------------------------------------------------------

def _unavailable(reason):
    import pytest
    if CI:
        pytest.fail(f'{reason} (FASTPROM_CI=1: CI must provide it)', pytrace=False)
    pytest.skip(reason)


def require_binary(name):
    """Absolute path of ``name`` on PATH; skip (fail under FASTPROM_CI=1) if absent."""
    path = shutil.which(name)
    if path is None:
        _unavailable(f'{name!r} not found on PATH; install it '
                     f'(Debian/Ubuntu: apt-get install prometheus prometheus-pushgateway)')
    return path


def require_module(name):
    """Import ``name``; skip (fail under FASTPROM_CI=1) if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _unavailable(f'python module {name!r} not installed ({exc}); pip install ".[test]"')


# ---------------------------------------------------------------------------
# Ports, processes, waiting
# ---------------------------------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Proc:
    """A subprocess whose stdout+stderr go to ``<workdir>/<name>.log``."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = os.path.join(str(workdir), f'{name}.log')
        self._log = open(self.log_path, 'wb')
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            self.argv, cwd=str(workdir), env=full_env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])

    def check_alive(self):
        rc = self.popen.poll()
        if rc is not None:
            raise RuntimeError(f'{self.name} exited with status {rc}; command: {" ".join(self.argv)}\n'
                               f'--- {self.log_path} ---\n{self.log_tail()}')

    def stop(self, timeout=10.0):
        """SIGTERM the process group we started, SIGKILL after ``timeout``, always reap."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout)
        else:
            # The leader is gone; make sure no child of its group (gunicorn worker) lingers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


def wait_until(predicate, timeout, what, procs=(), interval=POLL):
    """Poll ``predicate()`` until it returns a truthy value; return that value.

    Raises TimeoutError naming ``what`` (with the logs of ``procs``) on timeout,
    and RuntimeError as soon as one of ``procs`` has exited.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        for p in procs:
            p.check_alive()
        try:
            result = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            logs = ''.join(f'\n--- {p.name} ({p.log_path}) ---\n{p.log_tail()}' for p in procs)
            raise TimeoutError(f'timed out after {timeout}s waiting for {what}; '
                               f'last error: {last_exc!r}{logs}')
        time.sleep(interval)


def http_request(url, method='GET', headers=(), body=None, timeout=10.0):
    """One raw HTTP request with exactly the given headers (repeats allowed).

    Unlike urllib/http.client defaults, no Accept-Encoding is added.  Returns
    ``(status, reason, headers_list, raw_body)``.
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or '/'
        if parts.query:
            path += '?' + parts.query
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader('Content-Length', str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.reason, resp.getheaders(), data
    finally:
        conn.close()


def http_get_ok(url, headers=None, timeout=5.0):
    """Body of a GET that must answer 2xx (urllib; raises otherwise)."""
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
        if resp.headers.get('Content-Encoding') == 'gzip':
            body = gzip.decompress(body)
        return body


def _answers_http(url, headers=None):
    """True once anything answers HTTP at ``url`` (any status, e.g. 401)."""
    try:
        http_get_ok(url, headers, timeout=2.0)
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------

class Prometheus:
    """A running ``prometheus`` scraping ``jobs`` every second.

    ``jobs`` maps job name -> ``(host:port, metrics_path)``.
    """

    def __init__(self, workdir, jobs, scrape_interval='1s', flags=()):
        binary = require_binary('prometheus')
        self.workdir = str(workdir)
        self.port = free_port()
        self.url = f'http://{LOOPBACK}:{self.port}'
        self.config_path = os.path.join(self.workdir, 'prometheus.yml')
        with open(self.config_path, 'w') as f:
            f.write(self.render_config(jobs, scrape_interval))
        self.proc = Proc('prometheus', [
            binary,
            f'--config.file={self.config_path}',
            f'--storage.tsdb.path={os.path.join(self.workdir, "tsdb")}',
            f'--web.listen-address={LOOPBACK}:{self.port}',
            '--log.level=warn',
            *flags,
        ], self.workdir)

    @staticmethod
    def render_config(jobs, scrape_interval):
        lines = ['global:', f'  scrape_interval: {scrape_interval}',
                 f'  scrape_timeout: {scrape_interval}', 'scrape_configs:']
        for job, (target, path) in jobs.items():
            lines += [f'  - job_name: {json.dumps(job)}',
                      f'    metrics_path: {json.dumps(path)}',
                      '    static_configs:',
                      f'      - targets: [{json.dumps(target)}]']
        return '\n'.join(lines) + '\n'

    def wait_ready(self, timeout=START_TIMEOUT):
        def ready():
            try:
                http_get_ok(self.url + '/-/ready', timeout=2.0)
                return True
            except OSError:
                return False
        wait_until(ready, timeout, 'prometheus /-/ready', procs=[self.proc])

    def stop(self):
        self.proc.stop()

    def api(self, path, **params):
        url = f'{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}'
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                doc = json.load(resp)
        except urllib.error.HTTPError as err:
            raise AssertionError(f'prometheus API error for {params}: {err.code} {err.read()!r}') from err
        if doc.get('status') != 'success':
            raise AssertionError(f'prometheus API error for {params}: {doc}')
        return doc['data']

    def query(self, promql):
        """Instant query; returns the list of ``{'metric': {...}, 'value': [ts, 'v']}``."""
        data = self.api('query', query=promql)
        if data['resultType'] != 'vector':
            raise AssertionError(f'expected a vector for {promql!r}, got {data}')
        return data['result']

    def query_value(self, promql):
        """The float value of a query that must return exactly one series."""
        result = self.query(promql)
        if len(result) != 1:
            raise AssertionError(f'{promql!r} returned {len(result)} series, expected 1: {result}')
        return float(result[0]['value'][1])

    def wait_for(self, promql, timeout=START_TIMEOUT, predicate=bool):
        """Poll ``promql`` until ``predicate(result)`` holds; return the result."""
        def check():
            result = self.query(promql)
            return result if predicate(result) else None
        try:
            return wait_until(check, timeout, f'query {promql!r}', procs=[self.proc], interval=0.2)
        except TimeoutError as exc:
            raise AssertionError(f'{exc}\ntargets: {self.target_health()}') from None

    def target_health(self):
        """``{job: (health, lastError, scrapeUrl)}`` from the targets API."""
        try:
            targets = self.api('targets')['activeTargets']
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f'<targets API failed: {exc!r}>'
        return {t['labels'].get('job'): (t['health'], t['lastError'], t['scrapeUrl']) for t in targets}


@contextlib.contextmanager
def prometheus_server(workdir, jobs, flags=()):
    prom = Prometheus(workdir, jobs, flags=flags)
    try:
        prom.wait_ready()
        yield prom
    finally:
        prom.stop()


def check_native_histogram_queries(workdir, target, series, bucket, count, total, at_most_half):
    """Scrapes `target` (job `native`) with a Prometheus that has native histograms on, which
    must answer histogram_count/sum/quantile/fraction on `series` (values uniform on [0, 1):
    `count` of them summing to `total`), then with one that has them off, whose classic
    `bucket` query (le="0.5") must give `at_most_half`."""
    (workdir / 'native').mkdir()
    (workdir / 'classic').mkdir()
    with prometheus_server(workdir / 'native', target,
                           flags=['--enable-feature=native-histograms']) as prom:
        prom.wait_for('up{job="native"} == 1')
        prom.wait_for(f'histogram_count({series})')
        assert prom.query_value(f'histogram_count({series})') == count
        assert abs(prom.query_value(f'histogram_sum({series})') - total) <= 1e-6 * max(1.0, total)
        p95 = prom.query_value(f'histogram_quantile(0.95, {series})')
        assert abs(p95 - 0.95) < 0.03, p95
        half = prom.query_value(f'histogram_fraction(0, 0.5, {series})')
        assert abs(half - 0.5) < 0.03, half
    with prometheus_server(workdir / 'classic', target) as prom:
        prom.wait_for('up{job="native"} == 1')
        prom.wait_for(bucket)
        assert prom.query_value(bucket) == at_most_half


def prometheus_histogram_quantile(q, buckets):
    """Prometheus 2.42 ``bucketQuantile`` (promql/quantile.go) for classic buckets.

    ``buckets``: iterable of ``(upper_bound, cumulative_count)``, must include +Inf.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted((float(ub), float(c)) for ub, c in buckets)
    if not buckets or not math.isinf(buckets[-1][0]) or len(buckets) < 2:
        return math.nan
    # ensureMonotonic: a bucket never has fewer observations than a lower one.
    mono, running = [], -math.inf
    for ub, c in buckets:
        running = max(running, c)
        mono.append((ub, running))
    buckets = mono
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank)  # sort.Search
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    bucket_start, bucket_end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        bucket_start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


# ---------------------------------------------------------------------------
# Pushgateway
# ---------------------------------------------------------------------------

class Pushgateway:
    """A running ``prometheus-pushgateway`` keeping metrics in memory only."""

    def __init__(self, workdir, name='pushgateway', web_config=None):
        binary = require_binary('prometheus-pushgateway')
        self.workdir = str(workdir)
        self.port = free_port()
        self.address = f'{LOOPBACK}:{self.port}'
        self.url = f'http://{self.address}'
        argv = [binary, f'--web.listen-address={self.address}',
                '--persistence.file=',  # default is /var/lib/prometheus/pushgateway.data
                '--log.level=warn']
        if web_config is not None:
            path = os.path.join(self.workdir, f'{name}-web.yml')
            with open(path, 'w') as f:
                f.write(web_config)
            argv.append(f'--web.config.file={path}')
        self.proc = Proc(name, argv, self.workdir)

    def wait_ready(self, timeout=START_TIMEOUT):
        # Any HTTP answer will do: with basic auth even /-/ready answers 401.
        wait_until(lambda: _answers_http(self.url + '/-/ready'), timeout,
                   f'{self.proc.name} to answer HTTP', procs=[self.proc])

    def stop(self):
        self.proc.stop()


@contextlib.contextmanager
def pushgateway_server(workdir, name='pushgateway', web_config=None):
    gw = Pushgateway(workdir, name, web_config)
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


def bcrypt_hash(password):
    """A bcrypt hash of ``password`` (cost 4, the minimum Go accepts), or None.

    Uses the ``bcrypt`` package if installed, else the stdlib ``crypt`` module
    (libxcrypt supports ``$2b$``; removed in Python 3.13).
    """
    try:
        import bcrypt  # type: ignore
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            import crypt  # type: ignore
        if crypt.METHOD_BLOWFISH not in crypt.methods:
            return None
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    if not hashed or not hashed.startswith('$2'):
        return None
    return hashed


# ---------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------

def promtool_check_metrics(data, timeout=30.0):
    """Run ``promtool check metrics`` on ``data`` (stdin); return ``(returncode, output)``.

    promtool 2.42 parses the Prometheus text format 0.0.4 only; exit status 1
    means a parse error, 3 lint problems, 0 clean.
    """
    binary = require_binary('promtool')
    proc = subprocess.run([binary, 'check', 'metrics'], input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


# ---------------------------------------------------------------------------
# Workloads served to Prometheus (same code in-process and in app subprocesses)
# ---------------------------------------------------------------------------

FIXED_TIME = 1700000000.25  # time.time() while building static metrics (=> _created)

# Histogram with a known distribution: QUANTILE_COUNTS[i] observations fall in
# (QUANTILE_BUCKETS[i-1], QUANTILE_BUCKETS[i]].  1000 observations in total.
QUANTILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
QUANTILE_COUNTS = (100, 100, 100, 100, 100, 200, 200, 100)

# Live workload: LIVE_STEP every LIVE_PERIOD seconds => LIVE_RATE per second.
LIVE_STEP = 10
LIVE_PERIOD = 0.1
LIVE_RATE = LIVE_STEP / LIVE_PERIOD
LIVE_BATCH_DIVISOR = 10  # the live histogram gets QUANTILE_COUNTS / 10 per period


def quantile_observations(divisor=1):
    """Values reproducing QUANTILE_COUNTS (scaled down by ``divisor``), bucket midpoints."""
    values, lower = [], 0.0
    for upper, count in zip(QUANTILE_BUCKETS, QUANTILE_COUNTS):
        values += [(lower + upper) / 2] * (count // divisor)
        lower = upper
    return values


def expected_quantile_buckets():
    """``[(upper_bound, cumulative_count)]`` of the static histogram, with +Inf."""
    out, total = [], 0
    for upper, count in zip(QUANTILE_BUCKETS, QUANTILE_COUNTS):
        total += count
        out.append((upper, total))
    out.append((math.inf, total))
    return out


def build_static_metrics(lib, registry):
    """Register deterministic metrics of all six types on ``registry``.

    ``lib`` is the ``prometheus_client`` or ``fastprom`` module; identical calls
    with ``time.time`` frozen make both libraries expose identical bytes.
    Names start with ``static``.
    """
    with mock.patch('time.time', return_value=FIXED_TIME):
        c = lib.Counter('static_requests', 'Requests served.\nSecond line: "quoted" and \\ backslash',
                        ['path', 'method'], registry=registry)
        c.labels('/api/ünïcödé/€/😀', 'GET').inc(7)
        c.labels('say "hi"\\ and\nnewline', 'POST').inc(2.5)
        c.labels('', 'PUT').inc()  # empty label value
        g = lib.Gauge('static_temperature_celsius', 'Temperature (°C) per room', ['room'], registry=registry)
        g.labels('kitchen').set(21.5)
        g.labels('freezer').set(-18.25)
        g.labels('tiny').set(3e-7)
        g.labels('big').set(1234567.0)
        g.labels('inf').set(math.inf)
        s = lib.Summary('static_latency_seconds', 'Latency summary', ['handler'], registry=registry)
        for v in (0.1, 0.25, 0.7):
            s.labels('/x').observe(v)
        h = lib.Histogram('static_size_bytes', 'Payload sizes', ['kind'],
                          buckets=(10, 100, 1000), registry=registry)
        for v in (5, 50, 50, 500, 5000):
            h.labels('upload').observe(v)
        q = lib.Histogram('static_quantile_seconds', 'Known distribution for histogram_quantile',
                          buckets=QUANTILE_BUCKETS, registry=registry)
        for v in quantile_observations():
            q.observe(v)
        i = lib.Info('static_build', 'Build information', ['component'], registry=registry)
        i.labels('core').info({'version': '1.2.3', 'commit': 'abc"d\\ef'})
        e = lib.Enum('static_state', 'Worker state', ['worker'],
                     states=['starting', 'running', 'stopped'], registry=registry)
        e.labels('w1').state('running')
        e.labels('w2')  # default: first state
        u = lib.Gauge('static.dotted.metric', 'UTF-8 metric name', ['label.with.dots'], registry=registry)
        u.labels('v').set(42)
        plain = lib.Counter('static_plain', 'No labels at all', registry=registry)
        plain.inc(3)
    return registry


class LiveWorkload:
    """A counter growing at LIVE_RATE/s and a histogram fed the known distribution."""

    def __init__(self, lib, registry):
        self.counter = lib.Counter('live_ticks', 'Incremented by a background thread', registry=registry)
        self.histogram = lib.Histogram('live_latency_seconds', 'Fed the known distribution',
                                       buckets=QUANTILE_BUCKETS, registry=registry)
        self._batch = quantile_observations(LIVE_BATCH_DIVISOR)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='fastprom-live-workload', daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            self.counter.inc(LIVE_STEP)
            for v in self._batch:
                self.histogram.observe(v)
            n += 1
            # Drift-free schedule: tick n happens at start + n * period.
            delay = start + n * LIVE_PERIOD - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


# Source of the app module run by uvicorn (``appmod:asgi``) and gunicorn
# (``appmod:wsgi``) in a subprocess.  REAL_LIB selects the library.
#   /static/...   -> deterministic registry (for the differential comparison)
#   /metrics-text -> live registry, Accept header removed (=> text 0.0.4)
#   anything else -> live registry (static + live metrics)
APP_SOURCE = '''\
import importlib, os, sys
sys.path.insert(0, {tests_dir!r})
import real_servers as rs

lib = importlib.import_module(os.environ['REAL_LIB'])
static_registry = rs.build_static_metrics(lib, lib.CollectorRegistry())
live_registry = rs.build_static_metrics(lib, lib.CollectorRegistry())
workload = rs.LiveWorkload(lib, live_registry).start()

_asgi_static = lib.make_asgi_app(static_registry)
_asgi_live = lib.make_asgi_app(live_registry)
_wsgi_static = lib.make_wsgi_app(static_registry)
_wsgi_live = lib.make_wsgi_app(live_registry)


async def asgi(scope, receive, send):
    if scope['type'] == 'lifespan':  # not part of the metrics app's contract
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                await send({{'type': 'lifespan.startup.complete'}})
            elif message['type'] == 'lifespan.shutdown':
                await send({{'type': 'lifespan.shutdown.complete'}})
                return
    path = scope.get('path', '')
    if path.startswith('/static/'):
        scope = dict(scope, path=path[len('/static'):])
        return await _asgi_static(scope, receive, send)
    if path == '/metrics-text':
        scope = dict(scope, headers=[(k, v) for k, v in scope['headers'] if k.lower() != b'accept'])
    return await _asgi_live(scope, receive, send)


def wsgi(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path.startswith('/static/'):
        environ = dict(environ, PATH_INFO=path[len('/static'):],
                       SCRIPT_NAME=environ.get('SCRIPT_NAME', '') + '/static')
        return _wsgi_static(environ, start_response)
    if path == '/metrics-text':
        environ = {{k: v for k, v in environ.items() if k != 'HTTP_ACCEPT'}}
    return _wsgi_live(environ, start_response)
'''


def write_app_module(workdir, name='appmod'):
    path = os.path.join(str(workdir), f'{name}.py')
    with open(path, 'w') as f:
        f.write(APP_SOURCE.format(tests_dir=TESTS_DIR))
    return name


def start_uvicorn(workdir, lib_name, port, module='appmod'):
    """uvicorn serving ``module:asgi`` for ``lib_name`` (not waited for)."""
    require_module('uvicorn')
    return Proc(f'uvicorn-{lib_name}', [
        sys.executable, '-m', 'uvicorn', f'{module}:asgi', '--host', LOOPBACK, '--port', str(port),
        '--app-dir', str(workdir), '--log-level', 'warning', '--no-access-log',
    ], workdir, env={'REAL_LIB': lib_name})


def start_gunicorn(workdir, lib_name, port, module='appmod'):
    """gunicorn (1 sync worker) serving ``module:wsgi`` for ``lib_name`` (not waited for)."""
    require_module('gunicorn')
    return Proc(f'gunicorn-{lib_name}', [
        sys.executable, '-m', 'gunicorn', f'{module}:wsgi', '--bind', f'{LOOPBACK}:{port}',
        '--workers', '1', '--chdir', str(workdir), '--log-level', 'warning',
        '--worker-tmp-dir', str(workdir), '--timeout', '30',
    ], workdir, env={'REAL_LIB': lib_name})


def wait_http_ok(url, proc, timeout=START_TIMEOUT):
    """Wait until ``url`` answers 2xx, failing early if ``proc`` died."""
    def ok():
        http_get_ok(url, timeout=2.0)
        return True
    wait_until(ok, timeout, f'{proc.name} to serve {url}', procs=[proc])
