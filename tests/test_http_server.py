"""fastprom's native start_http_server: GIL-free scrapes, render-plan freshness, and clients
that misbehave."""
import http.client
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

import fastprom
import prometheus_client
from fastprom import CollectorRegistry, Counter, Gauge, Histogram
from fastprom.core import GaugeMetricFamily


@pytest.fixture
def serve():
    started = []

    def start(registry):
        server, thread = fastprom.start_http_server(0, addr='127.0.0.1', registry=registry)
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


def scrape(server, path='/metrics', headers=None):
    url = f'http://127.0.0.1:{server.server_port}{path}'
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
        return r.read().decode()


def test_scrapes_are_answered_while_python_holds_the_gil(serve):
    reg = CollectorRegistry()
    busy = Counter('busy_loops', 'Iterations of the busy loop', registry=reg)
    server = serve(reg)
    scrape(server)  # the render plan is made (under the GIL) here, before the loop
    client = textwrap.dedent(f'''
        import time, urllib.request
        seen = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            body = urllib.request.urlopen('http://127.0.0.1:{server.server_port}/').read().decode()
            seen.append([l for l in body.splitlines() if l.startswith('busy_loops_total')][0])
        print(len(set(seen)))
    ''')
    old_interval = sys.getswitchinterval()
    # The busy loop would keep the GIL up to 10 s against any thread that asks for it.
    sys.setswitchinterval(10)
    try:
        proc = subprocess.Popen([sys.executable, '-c', client], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            busy.inc()
        distinct_values = int(proc.communicate(timeout=30)[0])
    finally:
        sys.setswitchinterval(old_interval)
    # Each scrape saw a new count: they were served while the loop ran.
    assert distinct_values >= 5


def test_plan_follows_registry_changes(serve):
    reg = CollectorRegistry()
    Counter('first', 'First', registry=reg).inc()
    server = serve(reg)
    assert 'first_total 1.0' in scrape(server)
    second = Gauge('second', 'Second', registry=reg)
    second.set(7)
    assert 'second 7.0' in scrape(server)
    reg.unregister(second)
    assert 'second' not in scrape(server)
    reg.set_target_info({'env': 'test'})
    assert 'target_info{env="test"} 1.0' in scrape(server)


def test_python_collectors_and_functions_are_collected_on_every_scrape(serve):
    reg = CollectorRegistry()
    calls = []

    class Custom:
        def collect(self):
            calls.append(1)
            yield GaugeMetricFamily('custom', 'Custom', value=len(calls))

    reg.register(Custom())
    g = Gauge('fn_gauge', 'From a function', registry=reg)
    server = serve(reg)
    g.set_function(lambda: 42)
    body = scrape(server)
    assert 'fn_gauge 42.0' in body and 'custom 1.0' in body
    assert 'custom 2.0' in scrape(server)


def test_set_function_after_the_plan_is_cached(serve):
    reg = CollectorRegistry()
    g = Gauge('late_fn', 'Function set later', registry=reg)
    server = serve(reg)
    assert 'late_fn 0.0' in scrape(server)
    g.set_function(lambda: 5)
    assert 'late_fn 5.0' in scrape(server)


def test_disable_created_metrics_applies_to_the_running_server(serve):
    reg = CollectorRegistry()
    Counter('created_check', 'Has created', registry=reg).inc()
    server = serve(reg)
    assert 'created_check_created' in scrape(server)
    fastprom.disable_created_metrics()
    try:
        assert 'created_check_created' not in scrape(server)
    finally:
        fastprom.enable_created_metrics()
    assert 'created_check_created' in scrape(server)


def test_failing_collector_gives_500_and_the_server_goes_on(serve, capfd):
    reg = CollectorRegistry()
    Counter('fine', 'Fine', registry=reg)
    fail = [True]

    class Failing:
        def collect(self):
            if fail[0]:
                raise RuntimeError('collector broke')
            return []

    reg.register(Failing())
    server = serve(reg)
    with pytest.raises(urllib.error.HTTPError) as err:
        scrape(server)
    assert err.value.code == 500
    assert 'collector broke' in capfd.readouterr().err
    # The reference's WSGI server answers the same status, type and body.
    ref_reg = prometheus_client.CollectorRegistry()
    ref_reg.register(Failing())
    ref_server, ref_thread = prometheus_client.start_http_server(0, addr='127.0.0.1', registry=ref_reg)
    try:
        with pytest.raises(urllib.error.HTTPError) as ref_err:
            scrape(ref_server)
    finally:
        ref_server.shutdown()
        ref_server.server_close()
    assert (ref_err.value.code, ref_err.value.headers['Content-Type'], ref_err.value.read()) == (
        err.value.code, err.value.headers['Content-Type'], err.value.read())
    fail[0] = False
    assert 'fine_total 0.0' in scrape(server)


def raw_exchange(server, data, wait=5.0):
    with socket.create_connection(('127.0.0.1', server.server_port), timeout=wait) as conn:
        conn.sendall(data)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)


def test_half_sent_and_idle_clients_do_not_block_scrapes(serve):
    reg = CollectorRegistry()
    Counter('alive', 'Alive', registry=reg).inc()
    server = serve(reg)
    idle = [socket.create_connection(('127.0.0.1', server.server_port)) for _ in range(10)]
    half = socket.create_connection(('127.0.0.1', server.server_port))
    half.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/pl')
    try:
        start = time.monotonic()
        assert 'alive_total 1.0' in scrape(server)
        assert time.monotonic() - start < 2
    finally:
        for conn in idle + [half]:
            conn.close()


def test_huge_headers_are_refused_with_431(serve):
    server = serve(CollectorRegistry())
    request = b'GET / HTTP/1.1\r\nX-Big: ' + b'a' * 100_000 + b'\r\n\r\n'
    try:
        answer = raw_exchange(server, request)
    except ConnectionResetError:
        answer = b'HTTP/1.0 431'  # the rest of the request may still be in flight at close
    assert answer.startswith(b'HTTP/1.0 431')
    assert scrape(server) == ''


def test_keep_alive_serves_many_requests_on_one_connection(serve):
    reg = CollectorRegistry()
    c = Counter('ka', 'Keep-alive', registry=reg)
    server = serve(reg)
    conn = http.client.HTTPConnection('127.0.0.1', server.server_port, timeout=5)
    for i in range(5):
        c.inc()
        conn.request('GET', '/metrics')
        response = conn.getresponse()
        assert response.status == 200 and response.version == 11
        assert f'ka_total {i + 1}.0' in response.read().decode()
    conn.close()


def test_histogram_renders_with_gzip_and_openmetrics(serve):
    import gzip
    reg = CollectorRegistry()
    h = Histogram('lat', 'Latency', buckets=[0.1, 1], registry=reg)
    h.observe(0.5)
    server = serve(reg)
    url = f'http://127.0.0.1:{server.server_port}/'
    req = urllib.request.Request(url, headers={
        'Accept': 'application/openmetrics-text; version=1.0.0', 'Accept-Encoding': 'gzip'})
    with urllib.request.urlopen(req) as r:
        assert r.headers['Content-Encoding'] == 'gzip'
        body = gzip.decompress(r.read()).decode()
    assert 'lat_bucket{le="1.0"} 1.0\n' in body and body.endswith('# EOF\n')


def test_shutdown_and_close_free_the_port():
    reg = CollectorRegistry()
    server, thread = fastprom.start_http_server(0, addr='127.0.0.1', registry=reg)
    port = server.server_port
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert not thread.is_alive()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(('127.0.0.1', port))


def test_port_in_use_raises_the_reference_error():
    errors = []
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for lib in (fastprom, prometheus_client):
            with pytest.raises(OSError) as err:
                lib.start_http_server(port, addr='127.0.0.1')
            errors.append((type(err.value), str(err.value)))
    assert errors[0] == errors[1]
    assert errors[0][1] == '[Errno 98] Address already in use'


EXIT_WHILE_SCRAPED = textwrap.dedent('''
    import threading, time, urllib.request
    import fastprom
    counter = fastprom.Counter('x', 'x', ['a'])
    for i in range(20000):
        counter.labels(str(i)).inc()

    class Slow:
        """Keeps scrapes inside Python most of the time."""
        def collect(self):
            time.sleep(0.02)
            return []

    fastprom.REGISTRY.register(Slow())
    server, _ = fastprom.start_http_server(0, addr='127.0.0.1')

    def scrape():
        while True:
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{server.server_port}/').read()
            except Exception:
                pass

    for _ in range(6):
        threading.Thread(target=scrape, daemon=True).start()
    time.sleep(0.3)
''')


def test_interpreter_exits_cleanly_during_scrapes():
    # Server threads that enter Python (for the default registry's collectors) must be out of
    # it before the interpreter finalizes, or CPython aborts.
    for _ in range(5):
        proc = subprocess.run([sys.executable, '-c', EXIT_WHILE_SCRAPED], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert 'Fatal Python error' not in proc.stderr
