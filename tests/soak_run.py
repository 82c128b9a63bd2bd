"""A bounded soak (tests/test_soak.py): writers, scrapers, forks, compactions and a hostile
client at once, on loopback, for SECONDS seconds; prints a JSON report as its last line.

    python tests/soak_run.py SECONDS    (PROMETHEUS_MULTIPROC_DIR unset: it makes its own)

Two registries: an in-memory one (a counter and a histogram written by threads, served by the
native server) and a multiprocess one (a counter every process writes; children are forked
nonstop, and their files are compacted away once they exit). The first part is quiet: the
writers run and a well-behaved client scrapes the server. Then the hostile client holds a few
hundred idle connections to the server, children are forked, and compactions run, while the
well-behaved client keeps scraping.
"""
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request

WRITERS = 2
IDLE_CONNECTIONS = 300
CHILD_DEADLINE = 5.0
BUCKETS = (0.01, 0.1, 1.0, 10.0)


def rss_bytes():
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Soak:
    def __init__(self, directory):
        from fastprom import CollectorRegistry, Counter, Histogram, multiprocess
        self.memory = CollectorRegistry()
        self.ops = Counter('soak_ops', 'Writes.', ['writer'], registry=self.memory)
        self.latency = Histogram('soak_seconds', 'Observations.', ['writer'],
                                 buckets=BUCKETS, registry=self.memory)
        os.environ['PROMETHEUS_MULTIPROC_DIR'] = directory
        self.directory = directory
        self.shared = Counter('soak_shared', 'Writes of every process.', ['who'],
                              registry=None)
        self.merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.merged)
        self.stop = threading.Event()
        self.load = threading.Event()
        self.written = [0] * WRITERS
        self.problems = []
        self.children_ok = 0
        self.children_bad = 0
        self.quiet_latencies = []
        self.loaded_latencies = []
        self.compactions = 0

    def writer(self, index):
        name = f'w{index}'
        ops, latency, shared = self.ops.labels(name), self.latency.labels(name), \
            self.shared.labels(name)
        while not self.stop.is_set():
            for i in range(1000):
                ops.inc()
                latency.observe((i % 200) / 10.0)
                shared.inc()
            self.written[index] += 1000

    def check_histograms(self, body):
        """Every histogram series: buckets never decrease, and +Inf equals _count."""
        from fastprom.parser import text_string_to_metric_families
        for family in text_string_to_metric_families(body.decode()):
            if family.type != 'histogram':
                continue
            series = {}
            for sample in family.samples:
                key = sample.labels.get('writer')
                series.setdefault(key, {'buckets': [], 'count': None})
                if sample.name.endswith('_bucket'):
                    series[key]['buckets'].append(sample.value)
                elif sample.name.endswith('_count'):
                    series[key]['count'] = sample.value
            for key, parts in series.items():
                buckets = parts['buckets']
                if buckets != sorted(buckets) or buckets[-1] != parts['count']:
                    self.problems.append(f'inconsistent histogram {key}: {parts}')

    def scraper(self):
        from fastprom import generate_latest
        while not self.stop.is_set():
            self.check_histograms(generate_latest(self.memory))
            generate_latest(self.merged)

    def polite_client(self, port):
        url = f'http://127.0.0.1:{port}/metrics'
        while not self.stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
            elapsed = time.perf_counter() - started
            (self.loaded_latencies if self.load.is_set() else self.quiet_latencies).append(elapsed)
            self.check_histograms(body)
            time.sleep(0.02)

    def hostile_client(self, port):
        """Connections that send half a request, then nothing, reopened when closed."""
        connections = []
        while not self.stop.is_set():
            while len(connections) < IDLE_CONNECTIONS and not self.stop.is_set():
                try:
                    c = socket.create_connection(('127.0.0.1', port), timeout=5)
                    c.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n')
                    connections.append(c)
                except OSError:
                    break
            time.sleep(0.2)
            connections = [c for c in connections if still_open(c)]
        for c in connections:
            c.close()

    def fork_child(self):
        from fastprom import generate_latest, multiprocess
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.shared.labels('child').inc()
                self.ops.labels('child').inc()
                generate_latest(self.merged)
                generate_latest(self.memory)
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + CHILD_DEADLINE
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                status = -1
                break
            time.sleep(0.005)
        if status == 0:
            self.children_ok += 1
        else:
            self.children_bad += 1
        multiprocess.mark_process_dead(pid, self.directory)

    def compactor(self):
        from fastprom import multiprocess
        while not self.stop.is_set():
            if self.load.is_set():
                multiprocess.compact(self.directory)
                self.compactions += 1
            time.sleep(0.5)

    def shared_totals(self):
        from fastprom import generate_latest
        from fastprom.parser import text_string_to_metric_families
        totals = {}
        for family in text_string_to_metric_families(generate_latest(self.merged).decode()):
            for sample in family.samples:
                if sample.name == 'soak_shared_total':
                    totals[sample.labels['who']] = sample.value
        return totals


def still_open(connection):
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) != b''
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        connection.setblocking(True)


def main():
    seconds = float(sys.argv[1])
    from fastprom import start_http_server
    with tempfile.TemporaryDirectory() as directory:
        soak = Soak(directory)
        server, _ = start_http_server(0, addr='127.0.0.1', registry=soak.memory)
        threads = [threading.Thread(target=soak.writer, args=(i,)) for i in range(WRITERS)]
        threads += [threading.Thread(target=soak.scraper),
                    threading.Thread(target=soak.polite_client, args=(server.server_port,)),
                    threading.Thread(target=soak.compactor)]
        for thread in threads:
            thread.start()
        time.sleep(seconds / 4)
        rss_start = rss_bytes()
        soak.load.set()
        hostile = threading.Thread(target=soak.hostile_client, args=(server.server_port,))
        hostile.start()
        end = time.monotonic() + seconds * 3 / 4
        while time.monotonic() < end:
            soak.fork_child()
            time.sleep(0.05)
        rss_end = rss_bytes()
        soak.stop.set()
        for thread in threads + [hostile]:
            thread.join(timeout=30)
        ops = {s.labels['writer']: s.value for s in soak.ops.collect()[0].samples
               if s.name == 'soak_ops_total'}
        counts = {s.labels['writer']: s.value for s in soak.latency.collect()[0].samples
                  if s.name == 'soak_seconds_count'}
        written = {f'w{i}': float(n) for i, n in enumerate(soak.written)}
        shared = soak.shared_totals()
        report = {
            'seconds': seconds,
            'written': written,
            'ops': {k: v for k, v in ops.items() if k != 'child'},
            'observations': counts,
            'shared': shared,
            'children_ok': soak.children_ok,
            'children_bad': soak.children_bad,
            'compactions': soak.compactions,
            'problems': soak.problems[:5],
            'quiet_scrapes': len(soak.quiet_latencies),
            'loaded_scrapes': len(soak.loaded_latencies),
            'quiet_p99': p99(soak.quiet_latencies),
            'loaded_p99': p99(soak.loaded_latencies),
            'rss_start': rss_start,
            'rss_end': rss_end,
            'live_threads': [t.name for t in threads + [hostile] if t.is_alive()],
        }
        server.shutdown()
        server.server_close()
    print(json.dumps(report), flush=True)


if __name__ == '__main__':
    main()
