"""Multiprocess mode under real pre-fork servers, for both libraries.

* gunicorn, 4 sync workers, ``child_exit`` hook calling
  ``multiprocess.mark_process_dead(worker.pid)`` (as the reference docs say);
* uvicorn ``--workers 2`` serving a Starlette app.

The apps live in ``tests/mp_apps.py`` (library chosen by ``MP_LIB``); every
request to ``/a``, ``/b`` or ``/c`` increments ``app_requests_total{path}`` and
observes a fixed, exactly representable latency in ``app_latency_seconds``;
``/metrics`` merges the directory with ``MultiProcessCollector``.  The counts
served must equal, exactly, the requests the test got a 200 for, summed over
every worker that ever lived, also when workers are recycled
(``--max-requests``) or SIGKILLed between load phases.

Every wait polls with a deadline; servers get SIGTERM then SIGKILL (by pid) at
teardown.  Ids name the library (``-k prometheus_client`` / ``-k fastprom``).
"""

import collections
import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest


REF = 'prometheus_client'
IMPL = 'fastprom'
LIBS = [REF, IMPL]

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIR)
import mp_apps  # noqa: E402
from libs import sample_value, sample_values  # noqa: E402

LOOPBACK = '127.0.0.1'
START_TIMEOUT = 20.0
SETTLE_TIMEOUT = 10.0
POLL = 0.05
PATHS = sorted(mp_apps.APP_PATHS)

GUNICORN_CONF = '''\
import importlib
import os


def child_exit(server, worker):
    multiprocess = importlib.import_module(os.environ['MP_LIB'] + '.multiprocess')
    multiprocess.mark_process_dead(worker.pid)
'''


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def children_of(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()
        if int(fields[1]) == pid and fields[0] != b'Z':
            out.append(int(entry))
    return sorted(out)


def pid_alive(pid):
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b')') + 2:].split()[0] != b'Z'


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(POLL)
    raise AssertionError(f'timed out after {timeout}s waiting for {what} (last: {last!r})')


class Server:
    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, 'wb')
        self.proc = subprocess.Popen(argv, env=env, cwd=TESTS_DIR, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, n=4000):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, 'rb') as f:
            return f.read()[-n:].decode(errors='replace')

    def workers(self):
        return children_of(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            workers = self.workers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for pid in workers:                 # only pids this server started
                if pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        s.stop()
        # shown by pytest only when the test failed
        print(f'--- {s.name} log (tail) ---\n{s.log_tail(6000)}')


def listening_port(server, pattern):
    """The port a server started on port 0 says it listens on (from its log)."""
    def port():
        if server.proc.poll() is not None:
            raise AssertionError(f'{server.name} exited ({server.proc.returncode}):\n'
                                 f'{server.log_tail()}')
        m = re.search(pattern, server.log_tail(10 ** 6))
        return int(m.group(1)) if m else None
    return wait_until(port, START_TIMEOUT, f'{server.name} to listen')


def server_env(lib, mpdir):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir',
                        'FASTPROM_INSTALL')}     # that one would alias the reference
    env.update(MP_LIB=lib, PROMETHEUS_MULTIPROC_DIR=str(mpdir), PYTHONDONTWRITEBYTECODE='1',
               PYTHONUNBUFFERED='1')
    return env


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def get(port, path, timeout=10.0):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request('GET', path, headers={'Connection': 'close'})
        resp = conn.getresponse()
        return resp.status, resp.getheader('X-Worker-Pid'), resp.read()
    finally:
        conn.close()


def wait_ready(server, port):
    def ready():
        if server.proc.poll() is not None:
            raise AssertionError(f'{server.name} exited ({server.proc.returncode}):\n'
                                 f'{server.log_tail()}')
        try:
            return get(port, '/pid', timeout=2)[0] == 200
        except OSError:
            return False
    wait_until(ready, START_TIMEOUT, f'{server.name} to answer')


# The reference's known race: a worker creating its file (open 'a+b', then
# truncate to 64 KiB) while another worker collects makes read_all_values_from_file
# unpack 4 bytes from an empty file -> struct.error -> HTTP 500.  Scrapes of the
# reference are retried on 500 and the server log is checked afterwards (every
# traceback must be that race); fastprom must answer every scrape.
REF_RACE = 'unpack_from requires a buffer of at least 4 bytes for unpacking 4 bytes at offset 0'


class ScrapeFailed(AssertionError):
    pass


def scrape_once(port):
    status, _, body = get(port, '/metrics')
    if status != 200:
        raise ScrapeFailed(f'/metrics answered {status}: {body[-300:]!r}')
    return parse(body)


def scrape(port, lib, retries=10):
    """{(sample name, frozenset(labels)): value}; parsed with the reference parser."""
    for attempt in range(retries + 1):
        try:
            return scrape_once(port)
        except ScrapeFailed:
            if lib != REF or attempt == retries:
                raise
            time.sleep(POLL)


def check_ref_log(server, lib):
    """Every traceback in the log of a reference server is the known race."""
    if lib != REF:
        return
    log = server.log_tail(10 ** 7)
    tracebacks = log.count('Traceback (most recent call last)')
    assert log.count(REF_RACE) == tracebacks, log[-4000:]


parse = sample_values
sample = sample_value


class Load:
    """Requests sent so far: per path counts of 200 answers, pids, errors."""

    def __init__(self):
        self.ok = collections.Counter()
        self.pids = set()
        self.errors = []
        self.started = 0
        self.lock = threading.Lock()

    def run(self, port, n, threads=4):
        def worker(t):
            for k in range(t, n, threads):
                path = PATHS[k % len(PATHS)]
                with self.lock:
                    self.started += 1
                try:
                    status, pid, _ = get(port, path)
                except OSError as e:
                    with self.lock:
                        self.errors.append(f'{path}: {e!r}')
                    continue
                with self.lock:
                    if status == 200:
                        self.ok[path] += 1
                        self.pids.add(pid)
                    else:
                        self.errors.append(f'{path}: HTTP {status}')

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
            assert not t.is_alive(), 'client thread hung'


def check_totals(samples, load):
    for path in PATHS:
        n = load.ok[path]
        v = mp_apps.APP_PATHS[path]
        assert sample(samples, 'app_requests_total', path=path) == n, \
            f'{path}: counted {sample(samples, "app_requests_total", path=path)}, sent {n}'
        assert sample(samples, 'app_latency_seconds_count', path=path) == n
        assert sample(samples, 'app_latency_seconds_sum', path=path) == n * v
        for le in mp_apps.APP_BUCKETS:
            assert sample(samples, 'app_latency_seconds_bucket', path=path, le=str(le)) == \
                (n if v <= le else 0)
        assert sample(samples, 'app_latency_seconds_bucket', path=path, le='+Inf') == n


class Scraper:
    """Scrapes in a loop during load: totals never go backwards and never
    exceed the requests started so far."""

    def __init__(self, port, load, lib):
        self.port, self.load, self.lib = port, load, lib
        self.stop_ev = threading.Event()
        self.problems = []
        self.count = 0
        self.ref_races = 0
        self.thread = threading.Thread(target=self.loop)

    def loop(self):
        last = 0.0
        while not self.stop_ev.is_set():
            try:
                s = scrape_once(self.port)
            except ScrapeFailed as e:
                if self.lib == REF:           # the reference's race, see REF_RACE
                    self.ref_races += 1
                else:
                    self.problems.append(f'scrape failed: {e}')
                continue
            except (OSError, AssertionError) as e:
                self.problems.append(f'scrape failed: {e!r}')
                continue
            with self.load.lock:          # read after the scrape: an upper bound
                limit = self.load.started
            total = sum(sample(s, 'app_requests_total', path=p) or 0.0 for p in PATHS)
            self.count += 1
            if total < last:
                self.problems.append(f'total went backwards: {last} -> {total}')
            if total > limit:
                self.problems.append(f'total {total} above the {limit} requests started')
            last = total
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(30)


# ---------------------------------------------------------------------------
# gunicorn
# ---------------------------------------------------------------------------

def start_gunicorn(servers, lib, tmp_path, workers=4, extra=()):
    pytest.importorskip('gunicorn')
    mpdir = tmp_path / 'mp'
    mpdir.mkdir()
    conf = tmp_path / 'gunicorn_conf.py'
    conf.write_text(GUNICORN_CONF)
    # port 0: the kernel picks a free port, read back from the log (no race)
    argv = [sys.executable, '-m', 'gunicorn', '-w', str(workers), '-b', f'{LOOPBACK}:0',
            '--chdir', TESTS_DIR, '-c', str(conf), '--graceful-timeout', '5',
            '--log-level', 'info', *extra, 'mp_apps:wsgi_app']
    server = Server(f'gunicorn[{lib}]', argv, server_env(lib, mpdir), tmp_path / 'gunicorn.log')
    servers.append(server)
    port = listening_port(server, r'Listening at: http://127\.0\.0\.1:(\d+)')
    wait_ready(server, port)
    return server, port, mpdir


def wait_alive(port, n, server, lib):
    """Until the livesum gauge of live workers is n (dead ones marked)."""
    wait_until(lambda: sample(scrape(port, lib), 'app_workers_alive') == n, SETTLE_TIMEOUT,
               f'app_workers_alive == {n}\n{server.log_tail()}')


@pytest.mark.parametrize('lib', LIBS)
def test_gunicorn_counts_are_exact(lib, servers, tmp_path):
    server, port, mpdir = start_gunicorn(servers, lib, tmp_path)
    wait_until(lambda: len(server.workers()) == 4, START_TIMEOUT, '4 gunicorn workers')
    wait_alive(port, 4, server, lib)
    load = Load()
    load.run(port, 400)
    assert load.errors == []
    assert sum(load.ok.values()) == 400
    assert len(load.pids) >= 2, 'all requests went to one worker: nothing merged'
    s = scrape(port, lib)
    check_totals(s, load)
    assert sample(s, 'app_workers_alive') == 4
    # every worker wrote its own files
    assert {f'counter_{pid}.db' for pid in load.pids} <= set(os.listdir(mpdir))
    check_ref_log(server, lib)


@pytest.mark.parametrize('lib', LIBS)
def test_gunicorn_recycled_and_killed_workers_lose_nothing(lib, servers, tmp_path):
    server, port, mpdir = start_gunicorn(
        servers, lib, tmp_path, extra=['--max-requests', '50', '--max-requests-jitter', '0'])
    wait_until(lambda: len(server.workers()) == 4, START_TIMEOUT, '4 gunicorn workers')
    load = Load()
    with Scraper(port, load, lib) as scraper:
        load.run(port, 300)
    assert load.errors == []
    assert len(load.pids) > 4, f'no worker was recycled (pids {load.pids})'
    check_totals(scrape(port, lib), load)

    # SIGKILL one worker while idle: gunicorn respawns it
    victim = None
    for pid in server.workers():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:      # was just recycled; take another
            continue
        victim = pid
        break
    assert victim is not None
    wait_until(lambda: victim not in server.workers() and len(server.workers()) == 4,
               START_TIMEOUT, 'gunicorn to replace the killed worker')
    wait_alive(port, 4, server, lib)          # child_exit -> mark_process_dead ran for it
    check_totals(scrape(port, lib), load)

    with Scraper(port, load, lib) as scraper2:
        load.run(port, 300)
    assert load.errors == []
    assert sum(load.ok.values()) == 600
    wait_alive(port, 4, server, lib)
    s = scrape(port, lib)
    check_totals(s, load)
    assert scraper.count + scraper2.count > 5, 'the scraper hardly ran'
    assert scraper.problems == [] and scraper2.problems == [], \
        (scraper.problems + scraper2.problems)[:5]

    # the hook ran for every dead worker: no live-gauge file of a dead pid is left
    live = set(server.workers())
    dead = {int(p) for p in load.pids} - live
    dead.add(victim)

    def live_files_of_dead():
        names = os.listdir(mpdir)
        return [n for n in names if n.startswith('gauge_live')
                and int(n.rsplit('_', 1)[1][:-3]) in dead]
    wait_until(lambda: live_files_of_dead() == [], SETTLE_TIMEOUT,
               'mark_process_dead of every dead worker')
    if lib == IMPL:
        # fastprom's mark_process_dead folds the dead pid's counters/histograms
        def per_pid_of_dead():
            return [n for n in os.listdir(mpdir) if n.endswith('.db')
                    and n.rsplit('_', 1)[1][:-3].isdigit()
                    and int(n.rsplit('_', 1)[1][:-3]) in dead]
        wait_until(lambda: per_pid_of_dead() == [], SETTLE_TIMEOUT,
                   'fastprom to compact the files of dead workers')
        check_totals(scrape(port, lib), load)
    else:
        names = set(os.listdir(mpdir))
        assert {f'counter_{pid}.db' for pid in dead} <= names, \
            'the reference keeps counter files of dead processes'
    check_ref_log(server, lib)
    print(f'{lib}: {scraper.count + scraper2.count} scrapes during load, '
          f'{scraper.ref_races + scraper2.ref_races} hit the reference empty-file race')


# ---------------------------------------------------------------------------
# uvicorn
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('lib', LIBS)
def test_uvicorn_workers_counts_are_exact(lib, servers, tmp_path):
    pytest.importorskip('uvicorn')
    pytest.importorskip('starlette')
    mpdir = tmp_path / 'mp'
    mpdir.mkdir()
    argv = [sys.executable, '-m', 'uvicorn', 'mp_apps:asgi_app', '--app-dir', TESTS_DIR,
            '--workers', '2', '--host', LOOPBACK, '--port', '0', '--log-level', 'info',
            '--no-access-log']
    server = Server(f'uvicorn[{lib}]', argv, server_env(lib, mpdir), tmp_path / 'uvicorn.log')
    servers.append(server)
    port = listening_port(server, r'Uvicorn running on http://127\.0\.0\.1:(\d+)')
    wait_ready(server, port)
    wait_alive(port, 2, server, lib)          # both workers imported the app
    load = Load()
    with Scraper(port, load, lib) as scraper:
        load.run(port, 400)
    assert load.errors == []
    assert sum(load.ok.values()) == 400
    s = scrape(port, lib)
    check_totals(s, load)
    assert scraper.problems == [], scraper.problems[:5]
    names = os.listdir(mpdir)
    assert len([n for n in names if n.startswith('gauge_livesum_')]) == 2, names
    assert {f'counter_{pid}.db' for pid in load.pids} <= set(names)
    check_ref_log(server, lib)
