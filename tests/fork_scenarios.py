"""Forks taken while another thread works inside fastprom (tests/test_fork_safety.py).

``python tests/fork_scenarios.py SCENARIO FORKS SERIES`` builds a registry of SERIES series,
starts the busy work of SCENARIO, then forks FORKS times, one child at a time. Each child
records, scrapes and serves, then exits the normal way (atexit handlers, finalization). The
parent gives each child CHILD_DEADLINE seconds; a child still running then is killed and
counted as stuck (with FORK_SCENARIO_GDB set, gdb prints its Python stack first). The last
line printed is a JSON report.

Scenarios:
  render       a thread renders the registry with generate_latest, over and over
  server       the native server serves the registry; other processes scrape it nonstop
  multiprocess a thread scrapes a MultiProcessCollector (PROMETHEUS_MULTIPROC_DIR set by the
               caller); while each child is alive, another process compacts the directory and
               must not wait for it
  multiprocess-server   other processes scrape a MultiProcessCollector through the native
               server (its threads run the collector in Python)
"""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request

CHILD_DEADLINE = 5.0
COMPACTION_DEADLINE = 5.0
SERVED_SERIES_MAX = 20_000
# Scraper processes: together they keep the server rendering most of the time.
SCRAPERS = 3

SCRAPER = r'''
import http.client, sys, time
connection = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=5)
stop = time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:
    try:
        connection.request('GET', '/metrics')
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        connection.close()
        time.sleep(0.01)
'''

COMPACTOR = r'''
import sys
from fastprom import multiprocess
for line in sys.stdin:
    multiprocess.compact(sys.argv[1])
    print('done', flush=True)
'''


class Metrics:
    def __init__(self, series):
        from fastprom import CollectorRegistry, Counter, Histogram
        self.registry = CollectorRegistry()
        self.big = Counter('series', 'Many series.', ['i'], registry=self.registry)
        for i in range(series):
            self.big.labels(str(i)).inc()
        self.histogram = Histogram('latency_seconds', 'A histogram.', ['route'],
                                   registry=self.registry)
        for route in ('a', 'b'):
            self.histogram.labels(route).observe(0.1)
        # A child serves the registry when it is small; else a registry of its own.
        self.served = self.registry
        if series > SERVED_SERIES_MAX:
            self.served = CollectorRegistry()
            Counter('served', 'A series to serve.', registry=self.served).inc()


def scrape_registry(metrics):
    """What a scrape in this process reads: the multiprocess directory or the registry."""
    from fastprom import CollectorRegistry, multiprocess
    if 'PROMETHEUS_MULTIPROC_DIR' not in os.environ:
        return metrics.registry
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def scrape_forever(url):
    while True:
        try:
            urllib.request.urlopen(url, timeout=CHILD_DEADLINE).read()
        except OSError:
            time.sleep(0.01)


def child_work(metrics):
    """Records, scrapes and serves; raises when something is missing. Returns with its server
    running and a thread scraping it, as a worker process ends."""
    from fastprom import generate_latest, start_http_server
    metrics.big.labels('child').inc()
    metrics.big.labels('0').inc()
    metrics.histogram.labels('child').observe(0.2)
    metrics.histogram.labels('a').observe(0.3)
    body = generate_latest(scrape_registry(metrics))
    assert b'series_total{i="child"}' in body, 'the child scraped without its own series'
    served = metrics.served
    if 'PROMETHEUS_MULTIPROC_DIR' in os.environ:
        served = scrape_registry(metrics)
    server, _ = start_http_server(0, addr='127.0.0.1', registry=served)
    url = f'http://127.0.0.1:{server.server_port}/metrics'
    with urllib.request.urlopen(url, timeout=CHILD_DEADLINE) as response:
        assert b'_total' in response.read(), 'the child served no series'
    threading.Thread(target=scrape_forever, args=(url,), daemon=True).start()
    time.sleep(0.02)


def wait_for(pid, deadline):
    """The child's wait status, or None when it is still running at the deadline."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)


class Compactor:
    """Another process that compacts the multiprocess directory when asked."""

    def __init__(self, directory):
        self.process = subprocess.Popen([sys.executable, '-c', COMPACTOR, directory],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.late = False

    def compacts_within(self, seconds):
        self.process.stdin.write(b'go\n')
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        if not ready:
            # Stay in step: the answer comes once the child has exited.
            self.late = True
            return False
        self.process.stdout.readline()
        return True

    def catch_up(self):
        if self.late:
            self.late = False
            self.process.stdout.readline()

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


def fork_once(metrics, report, compactor):
    """One child: it works, tells the parent, and (with a compactor) waits to be let go."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            child_work(metrics)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(3)
        os.write(ready_w, b'r')
        select.select([go_r], [], [], CHILD_DEADLINE)
        sys.exit(0)
    os.close(ready_w)
    os.close(go_r)
    deadline = time.monotonic() + CHILD_DEADLINE
    ready, _, _ = select.select([ready_r], [], [], CHILD_DEADLINE)
    if ready and os.read(ready_r, 1) == b'r' and compactor is not None:
        if not compactor.compacts_within(COMPACTION_DEADLINE):
            report['compaction_waited'] += 1
    os.close(go_w)
    status = wait_for(pid, deadline + (COMPACTION_DEADLINE if compactor else 0))
    os.close(ready_r)
    if status is None:
        if os.environ.get('FORK_SCENARIO_GDB'):
            gdb = '-ex "set auto-load safe-path /" -ex "py-bt"'
            os.system(f'gdb -p {pid} -batch {gdb} >&2 2>/dev/null')
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        report['stuck'] += 1
    elif os.waitstatus_to_exitcode(status) != 0:
        report['failed'].append(os.waitstatus_to_exitcode(status))
    else:
        report['ok'] += 1
    if compactor is not None:
        compactor.catch_up()


def busy_thread(work, stop):
    # Once before the thread starts: a fork while another thread imports a module for the
    # first time leaves the child waiting on that module's import lock (CPython's, whatever
    # the library).
    work()

    def loop():
        while not stop.is_set():
            work()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def serve_and_scrape(registry):
    """Serves `registry` natively; other processes scrape it nonstop."""
    from fastprom import start_http_server
    server, _ = start_http_server(0, addr='127.0.0.1', registry=registry)
    scrapers = [subprocess.Popen([sys.executable, '-c', SCRAPER, str(server.server_port), '120'])
                for _ in range(SCRAPERS)]
    time.sleep(0.5)
    return scrapers


def main():
    scenario, forks, series = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from fastprom import generate_latest
    metrics = Metrics(series)
    stop = threading.Event()
    helpers = []
    compactor = None
    if scenario == 'render':
        busy_thread(lambda: generate_latest(metrics.registry), stop)
    elif scenario == 'server':
        helpers = serve_and_scrape(metrics.registry)
    elif scenario == 'multiprocess':
        busy_thread(lambda: generate_latest(scrape_registry(metrics)), stop)
        compactor = Compactor(os.environ['PROMETHEUS_MULTIPROC_DIR'])
    elif scenario == 'multiprocess-server':
        helpers = serve_and_scrape(scrape_registry(metrics))
    else:
        raise SystemExit(f'unknown scenario {scenario}')
    report = {'scenario': scenario, 'forks': forks, 'series': series, 'ok': 0, 'stuck': 0,
              'failed': [], 'compaction_waited': 0}
    started = time.monotonic()
    for _ in range(forks):
        fork_once(metrics, report, compactor)
    report['seconds'] = round(time.monotonic() - started, 1)
    stop.set()
    for helper in helpers:
        helper.kill()
        helper.wait()
    if compactor is not None:
        compactor.stop()
    print(json.dumps(report), flush=True)


if __name__ == '__main__':
    main()
