"""A well-behaved scraper gets every answer within 1 s while hostile clients press on the native
server: 1,000 slowloris connections, 1,000 idle ones, a flood of 1,000 concurrent requests, and
slow readers of big scrapes; the server's memory stays bounded meanwhile.

The server runs in a process of its own (its RSS is read from /proc), the scraper in another
(keep-alive off, Prometheus's request), the attackers in this one (non-blocking sockets, one
thread). Counts and durations are bounded and everything stops by itself.

`python tests/test_server_hostile.py` prints the numbers for fastprom and prometheus_client."""
import json
import random
import resource
import selectors
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')

SERVER = r'''
import resource, sys, threading, os
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]) if sys.argv[2:] else hard, hard))
lib = __import__(sys.argv[1])
registry = lib.CollectorRegistry()
handled = lib.Counter('http_requests', 'Requests handled.', ['path', 'code'], registry=registry)
for i in range(700):
    handled.labels(f'/api/v1/items/{i}', str(200 + i % 5)).inc(i)
latency = lib.Histogram('http_latency_seconds', 'Latency.', ['route'], registry=registry)
for i in range(20):
    latency.labels(f'route_{i}').observe(i / 10)
server, _ = lib.start_http_server(0, addr='127.0.0.1', registry=registry)
print(server.server_port, flush=True)
threading.Timer(120, lambda: os._exit(1)).start()  # never outlives a lost test
sys.stdin.read()
os._exit(0)
'''

SCRAPER = r'''
import json, socket, sys, time
port, duration, interval = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
request = (b'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/3.0\r\n'
           b'Accept: application/openmetrics-text;version=1.0.0;q=0.5,'
           b'text/plain;version=0.0.4;q=0.4,*/*;q=0.1\r\n'
           b'Accept-Encoding: gzip\r\nConnection: close\r\n\r\n')
results = []
end = time.monotonic() + duration
while time.monotonic() < end:
    start = time.monotonic()
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
            connected = time.monotonic() - start
            conn.sendall(request)
            answer = conn.recv(65536)
            first_byte = time.monotonic() - start
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b'\r\n\r\n')
        status = head.split(b'\r\n')[0].decode('latin-1') + f' ({len(body)} bytes)'
    except OSError as e:
        status, connected, first_byte = repr(e), None, None
    results.append([time.monotonic() - start, status, connected, first_byte])
    time.sleep(interval)
print(json.dumps(results))
'''

PLAIN_REQUEST = b'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
ATTACKERS = 1000
SLOW_READERS = 300
SCRAPE_SECONDS = 3.0


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * ATTACKERS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * ATTACKERS), hard))


def rss_bytes(pid):
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


class Hostile:
    """Keeps `count` hostile connections open to a port, opening again those the server closes.

    `kind` says how each behaves once connected:
    - `idle`: sends nothing;
    - `slowloris`: sends the start of a request head, then a byte a second, never ending it;
    - `flood`: sends a whole request and reads the answer as fast as it comes;
    - `slow_reader`: sends a whole request, then reads 16 bytes of the answer every half second.
    """

    PACE = {'slowloris': 1.0, 'slow_reader': 0.5}

    def __init__(self, port, kind, count):
        self.address = ('127.0.0.1', port)
        self.kind = kind
        self.count = count
        self.selector = selectors.DefaultSelector()
        self.live = set()
        self.next_action = {}  # connected socket -> monotonic time of its next trickle
        self.opened = 0
        self.answers = 0

    def open(self):
        conn = socket.socket()
        conn.setblocking(False)
        if self.kind == 'slow_reader':
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect_ex(self.address)
        self.selector.register(conn, selectors.EVENT_WRITE)
        self.live.add(conn)
        self.opened += 1

    def drop(self, conn):
        if conn in self.selector.get_map():
            self.selector.unregister(conn)
        self.next_action.pop(conn, None)
        self.live.discard(conn)
        conn.close()

    def connected(self, conn):
        if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.drop(conn)
            return
        try:
            if self.kind == 'slowloris':
                conn.send(b'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
            elif self.kind in ('flood', 'slow_reader'):
                conn.send(PLAIN_REQUEST)
        except OSError:
            self.drop(conn)
            return
        # A slow reader reads on its own schedule only; the others watch for the server's close.
        if self.kind == 'slow_reader':
            self.selector.unregister(conn)
        else:
            self.selector.modify(conn, selectors.EVENT_READ)
        pace = self.PACE.get(self.kind)
        if pace:
            self.next_action[conn] = time.monotonic() + random.uniform(0, pace)

    def readable(self, conn):
        try:
            data = conn.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            self.answers += self.kind == 'flood'
            self.drop(conn)

    def trickle(self, conn):
        try:
            if self.kind == 'slowloris':
                conn.send(b'a')
            else:
                if not conn.recv(16):
                    self.drop(conn)
                    return
        except BlockingIOError:
            pass
        except OSError:
            self.drop(conn)
            return
        self.next_action[conn] += self.PACE[self.kind]

    def step(self, timeout=0.02):
        while len(self.live) < self.count:
            self.open()
        for key, mask in self.selector.select(timeout):
            if mask & selectors.EVENT_WRITE:
                self.connected(key.fileobj)
            else:
                self.readable(key.fileobj)
        now = time.monotonic()
        for conn, due in list(self.next_action.items()):
            if due <= now:
                self.trickle(conn)

    def established(self):
        connecting = sum(1 for key in self.selector.get_map().values()
                         if key.events == selectors.EVENT_WRITE)
        return len(self.live) - connecting

    def close(self):
        for conn in self.live:
            conn.close()
        self.selector.close()


def run_scenario(lib_name, kind, count, server_fd_limit=None):
    """The scraper's (latency, status) list and the server's RSS growth, under one attack."""
    raise_fd_limit()
    fd_limit = [str(server_fd_limit)] if server_fd_limit else []
    server = subprocess.Popen([sys.executable, '-c', SERVER, lib_name] + fd_limit,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    attack = None
    try:
        port = int(server.stdout.readline())
        warm = subprocess.run([sys.executable, '-c', SCRAPER, str(port), '0.3', '0.05'],
                              capture_output=True, text=True, timeout=30)
        assert warm.returncode == 0, warm.stderr
        rss_before = rss_bytes(server.pid)
        attack = Hostile(port, kind, count)
        ramp_end = time.monotonic() + 3
        while attack.established() < count and time.monotonic() < ramp_end:
            attack.step()
        established = attack.established()
        scraper = subprocess.Popen(
            [sys.executable, '-c', SCRAPER, str(port), str(SCRAPE_SECONDS), '0.1'],
            stdout=subprocess.PIPE, text=True)
        rss_peak = rss_before
        give_up = time.monotonic() + SCRAPE_SECONDS + 15
        while scraper.poll() is None and time.monotonic() < give_up:
            attack.step()
            rss_peak = max(rss_peak, rss_bytes(server.pid))
        if scraper.poll() is None:
            scraper.kill()
        results = json.loads(scraper.communicate()[0] or '[]')
        return {'results': results, 'rss_growth': rss_peak - rss_before, 'rss_before': rss_before,
                'established': established, 'opened': attack.opened,
                'flood_answers': attack.answers}
    finally:
        if attack:
            attack.close()
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def summary(outcome):
    latencies = sorted(result[0] for result in outcome['results'])
    ok = sum(' 200 ' in result[1] for result in outcome['results'])

    def quantile(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float('nan')

    return (f"{ok}/{len(latencies)} answered 200; p50 {quantile(0.5) * 1000:.0f} ms, "
            f"p99 {quantile(0.99) * 1000:.0f} ms, max {quantile(1.0) * 1000:.0f} ms; "
            f"RSS {outcome['rss_before'] / 2**20:.0f} MiB + {outcome['rss_growth'] / 2**20:.1f} MiB; "
            f"{outcome['established']} attackers established, {outcome['opened']} opened, "
            f"{outcome['flood_answers']} flood answers")


# The last: more idle connections than the server process has file descriptors (its soft
# limit lowered to 512, as the usual default of 1024 would be against 2,000).
SCENARIOS = [('slowloris', ATTACKERS, None), ('idle', ATTACKERS, None), ('flood', ATTACKERS, None),
             ('slow_reader', SLOW_READERS, None), ('idle', ATTACKERS, 512)]
SCENARIO_IDS = ['slowloris', 'idle', 'flood', 'slow_reader', 'idle_beyond_fd_limit']
RSS_GROWTH_LIMIT = 64 * 2**20


@pytest.mark.parametrize('kind,count,server_fd_limit', SCENARIOS, ids=SCENARIO_IDS)
def test_scraper_is_answered_within_a_second_under_attack(kind, count, server_fd_limit):
    outcome = run_scenario('fastprom', kind, count, server_fd_limit)
    results = outcome['results']
    detail = summary(outcome)
    assert outcome['established'] >= 0.9 * count, detail
    assert len(results) >= 5, detail
    assert all(' 200 ' in result[1] for result in results), (detail, results)
    assert max(result[0] for result in results) < 1.0, (detail, results)
    assert outcome['rss_growth'] < RSS_GROWTH_LIMIT, detail


if __name__ == '__main__':
    libs = [arg for arg in sys.argv[1:] if '=' not in arg] or ['fastprom', 'prometheus_client']
    kinds = [arg.split('=')[1] for arg in sys.argv[1:] if arg.startswith('kind=')]
    for name in libs:
        for (kind, count, fd_limit), scenario in zip(SCENARIOS, SCENARIO_IDS):
            if kinds and scenario not in kinds:
                continue
            outcome = summary(run_scenario(name, kind, count, fd_limit))
            print(f'{name:18} {scenario:21} {count:5}: {outcome}', flush=True)
