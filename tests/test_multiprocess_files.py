"""Multiprocess files that survive their directory and do not leak (issue 18).

Each scenario runs in a fresh interpreter (multiprocess mode is chosen at import) and, where
it is about behaviour rather than resources, against prometheus_client too."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 120
LINUX = sys.platform.startswith('linux')


def run(code, lib='fastprom', mpdir=None, timeout=TIMEOUT):
    """Runs `code` (with `lib` imported as `lib`) in a fresh interpreter; its stdout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir', 'FASTPROM_INSTALL')}
    if mpdir is not None:
        env['PROMETHEUS_MULTIPROC_DIR'] = str(mpdir)
    script = f'import {lib} as lib\nimport {lib}.multiprocess\n' if lib else ''
    script += textwrap.dedent(code)
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f'{lib}: exit status {proc.returncode}\n{proc.stderr.decode(errors="replace")[-3000:]}')
    return proc.stdout.decode()


RESOURCES = '''
import os
def resources():
    fds = len(os.listdir('/proc/self/fd'))
    with open('/proc/self/status') as f:
        status = dict(line.split(':', 1) for line in f)
    kib = lambda field: int(status[field].split()[0])
    return fds, kib('VmSize'), kib('VmRSS')
'''


@pytest.mark.skipif(not LINUX, reason='reads /proc')
def test_removed_children_release_their_files_mappings(tmp_path):
    """Every `remove` rewrites the process's file; the replaced file's descriptor and its
    1 GiB mapping used to be kept for the life of the process (+1 descriptor, +1 GiB of
    address space and +64 KiB resident per cycle)."""
    out = run(RESOURCES + '''
c = lib.Counter('cycled', 'd', ['k'], registry=None)
c.labels('kept').inc(7)
for i in range(20):
    c.labels('x').inc(); c.remove('x')
before = resources()
for i in range(300):
    c.labels('x').inc(); c.remove('x')
after = resources()
c.labels('kept').inc()
print(after[0] - before[0], after[1] - before[1], after[2] - before[2], c.labels('kept')._value.get())
''', mpdir=tmp_path)
    fds, vm_kib, rss_kib = out.split()[:3]
    assert int(fds) <= 2, f'{fds} descriptors more after 300 remove cycles'
    assert int(vm_kib) < 2 * 2**20, f'address space grew by {vm_kib} KiB'
    assert int(rss_kib) < 8 * 2**10, f'resident memory grew by {rss_kib} KiB'
    assert float(out.split()[3]) == 8.0


@pytest.mark.skipif(not LINUX, reason='reads /proc')
def test_removal_while_rendering_without_the_gil(tmp_path):
    """Renders read the slots without the GIL while `remove` replaces the file under them and
    moves the kept entries to new offsets: the replaced mapping is released only once no
    render can still read through it (released too early, a render reads another entry's
    bytes, or faults)."""
    out = run('''
import threading
c = lib.Counter('raced', 'd', ['k'], registry=lib.REGISTRY)
h = lib.Histogram('raced_h', 'd', ['k'], registry=lib.REGISTRY)
# The removed children come first in the files: every removal moves the kept ones.
for i in range(300):
    c.labels('gone%d' % i).inc(); h.labels('gone%d' % i).observe(1)
expected = set()
for j in range(10):
    c.labels('kept%d' % j).inc(j + 1); h.labels('kept%d' % j).observe(j + 0.5)
    expected |= {'raced_total{k="kept%d"} %s' % (j, float(j + 1)),
                 'raced_h_sum{k="kept%d"} %s' % (j, j + 0.5)}
stop = threading.Event()
bad = []
def render():
    while not stop.is_set():
        text = lib.generate_latest(lib.REGISTRY).decode().splitlines()
        kept = {line for line in text if 'kept' in line and '_total' in line or '_sum{' in line and 'kept' in line}
        if kept != expected:
            bad.append(sorted(kept - expected))
threads = [threading.Thread(target=render) for _ in range(2)]
for t in threads: t.start()
for i in range(300):
    c.remove('gone%d' % i); h.remove('gone%d' % i)
stop.set()
for t in threads: t.join()
print(len(bad), bad[:3])
''', mpdir=tmp_path)
    assert out.split()[0] == '0', out


WRITE_ONE_DIRECTORY = '''
import os
from prometheus_client.mmap_dict import MmapedDict, mmap_key
def write_directory(path, value):
    os.makedirs(path)
    d = MmapedDict(os.path.join(path, 'counter_1.db'))
    d.write_value(mmap_key('m_total', 'm_total', (), (), 'help'), value, 0.0)
    d.close()
'''


@pytest.mark.skipif(not LINUX, reason='reads /proc')
def test_collector_cache_lets_go_of_deleted_directories(tmp_path):
    """Collectors over short-lived directories: the shared cache kept each deleted directory's
    files open (+1 descriptor per directory, forever)."""
    out = run(RESOURCES + WRITE_ONE_DIRECTORY + f'''
import shutil
def scrape_one(i):
    path = os.path.join({str(tmp_path)!r}, 'd%d' % i)
    write_directory(path, float(i))
    collector = lib.multiprocess.MultiProcessCollector(None, path=path)
    value = [s.value for m in collector.collect() for s in m.samples]
    assert value == [float(i)], value
    del collector
    shutil.rmtree(path)
for i in range(5):
    scrape_one(i)
before = resources()
for i in range(5, 105):
    scrape_one(i)
after = resources()
print(after[0] - before[0])
''')
    assert int(out) <= 2, f'{out.strip()} descriptors more after 100 short-lived directories'


def collect_after(lib, tmp_path, action):
    """generate_latest of a registry holding the collector of a directory after `action`."""
    return run(WRITE_ONE_DIRECTORY + f'''
import shutil, sys, warnings
path = {str(tmp_path / lib)!r}
write_directory(path, 3.0)
registry = lib.CollectorRegistry()
lib.multiprocess.MultiProcessCollector(registry, path=path)
{action}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    sys.stdout.write(lib.generate_latest(registry).decode())
print('warnings', len(caught))
''', lib=lib)


@pytest.mark.parametrize('lib', ['prometheus_client', 'fastprom'])
def test_deleted_directory_scrapes_empty_as_the_reference(lib, tmp_path):
    out = collect_after(lib, tmp_path, 'shutil.rmtree(path)')
    assert out == 'warnings 0\n'


def test_deleted_directory_same_as_the_reference(tmp_path):
    outputs = [collect_after(lib, tmp_path, 'shutil.rmtree(path)')
               for lib in ('prometheus_client', 'fastprom')]
    assert outputs[0] == outputs[1]


def _can_mount_read_only():
    if not LINUX or os.geteuid() != 0 or shutil.which('unshare') is None:
        return False
    probe = subprocess.run(['unshare', '--mount', 'sh', '-c',
                            'mount -t tmpfs -o ro tmpfs /mnt'], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason='needs root and mount namespaces')
def test_read_only_directory_scrapes_as_the_reference(tmp_path):
    """A read-only mount of the workers' volume: the scrape cannot create its lock file there
    and reads the files all the same, as prometheus_client does."""
    mount = tmp_path / 'volume'
    mount.mkdir()
    outputs = {}
    for lib in ('prometheus_client', 'fastprom'):
        writer = WRITE_ONE_DIRECTORY + f'write_directory({str(mount / "mp")!r}, 5.0)'
        reader = f'''
import os, sys
import {lib} as lib
import {lib}.multiprocess
registry = lib.CollectorRegistry()
path = {str(mount / "mp")!r}
lib.multiprocess.MultiProcessCollector(registry, path=path)
try:
    open(os.path.join(path, 'probe'), 'w')
    print('writable')
except OSError as e:
    print('read-only', e.errno)
sys.stdout.write(lib.generate_latest(registry).decode())
'''
        shell = (f'mount -t tmpfs tmpfs {mount} && '
                 f'{sys.executable} -c "$WRITER" && '
                 f'mount -o remount,ro {mount} && '
                 f'{sys.executable} -c "$READER"')
        env = dict(os.environ, WRITER=writer, READER=reader)
        env.pop('PROMETHEUS_MULTIPROC_DIR', None)
        proc = subprocess.run(['unshare', '--mount', 'sh', '-c', shell], env=env,
                              capture_output=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr.decode(errors='replace')[-3000:]
        outputs[lib] = proc.stdout.decode()
    assert outputs['fastprom'].startswith('read-only 30\n'), outputs['fastprom']
    assert 'm_total 5.0' in outputs['fastprom']
    assert outputs['fastprom'] == outputs['prometheus_client']


TRUNCATE_AND_RESTORE = '''
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
with open(path, 'rb') as f:
    original = f.read()
deadline = time.monotonic() + seconds
count = 0
while time.monotonic() < deadline:
    fd = os.open(path, os.O_RDWR)
    os.ftruncate(fd, 4096)
    os.ftruncate(fd, 0)
    os.pwrite(fd, original, 0)
    os.close(fd)
    count += 1
print(count)
'''


@pytest.mark.parametrize('lib', ['prometheus_client', 'fastprom'])
def test_file_truncated_under_the_scraper(lib, tmp_path):
    """A `.db` file truncated and restored while scrapes run: the scraper used to die of
    SIGBUS reading its mapping past the new end. A scrape sees the file, or skips it with a
    warning (fastprom) or an error (the reference), and the process lives on."""
    mpdir = tmp_path / 'mp'
    run(WRITE_ONE_DIRECTORY + f'''
from prometheus_client.mmap_dict import MmapedDict, mmap_key
write_directory({str(mpdir)!r}, 2.0)
d = MmapedDict(os.path.join({str(mpdir)!r}, 'counter_1.db'))
for i in range(3000):
    d.write_value(mmap_key('m_total', 'm_total', ('i',), (str(i),), 'help'), 1.0, 0.0)
d.close()
''', lib=None)
    truncator = subprocess.Popen([sys.executable, '-c', TRUNCATE_AND_RESTORE,
                                  str(mpdir / 'counter_1.db'), '4'], stdout=subprocess.PIPE)
    try:
        out = run(f'''
import time, warnings
warnings.simplefilter('ignore')
collector = lib.multiprocess.MultiProcessCollector(None, path={str(mpdir)!r})
deadline = time.monotonic() + 4
scrapes = complete = 0
while time.monotonic() < deadline:
    scrapes += 1
    try:
        samples = [s for m in collector.collect() for s in m.samples]
    except Exception:
        continue
    complete += len(samples) == 3001
print(scrapes, complete)
''', lib=lib)
    finally:
        truncations = int(truncator.communicate(timeout=TIMEOUT)[0])
    scrapes, complete = map(int, out.split())
    assert truncations > 10 and scrapes > 10
    assert complete > 0


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_forked_child_and_parent_scrape_through_the_same_open_files(tmp_path):
    """The collector keeps files open between scrapes, and a forked child inherits those
    descriptors, file offsets included. Parent and child reading at once must not move each
    other's reads: every read in both sees every file whole."""
    mpdir = tmp_path / 'mp'
    mpdir.mkdir()
    out = run('''
import glob, os, threading, time
c = lib.Counter('c', 'help', ['i'])
g = lib.Gauge('g', 'help', ['i'], multiprocess_mode='livesum')
for i in range(2000):
    c.labels(str(i)).inc()
    g.labels(str(i)).set(1)
collector = lib.multiprocess.MultiProcessCollector(None)
files = sorted(glob.glob(os.path.join(os.environ['PROMETHEUS_MULTIPROC_DIR'], '*.db')))
def whole():
    metrics, skipped = collector._reader.merge(files, True)
    return not skipped and sum(len(m.samples) for m in metrics) == 4000
assert whole()
stop = threading.Event()
parent_bad = []
def read_forever():
    while not stop.is_set():
        if not whole():
            parent_bad.append(1)
thread = threading.Thread(target=read_forever)
thread.start()
children_bad = 0
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        deadline = time.monotonic() + 0.2
        ok = True
        while ok and time.monotonic() < deadline:
            ok = whole()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    children_bad += os.waitstatus_to_exitcode(status) != 0
stop.set()
thread.join()
print(children_bad, len(parent_bad))
''', mpdir=mpdir)
    assert out.split() == ['0', '0']
