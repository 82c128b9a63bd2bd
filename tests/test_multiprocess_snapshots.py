"""Consistent multiprocess snapshots (issue 18): a scrape sees each histogram or summary child
of each process's file at one moment, while the processes keep observing.

Writers observe a constant (0.25) as fast as they can, so any scrape that catches a child
between its bucket (or count) update and its sum update shows `sum != count * 0.25`; a
histogram's count is its `+Inf` bucket, so the buckets are checked against it too."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import fastprom
from fastprom import multiprocess

VALUE = 0.25
WRITERS = 3

WRITER = textwrap.dedent('''
    import sys, time
    import fastprom
    h = fastprom.Histogram('h', 'help', ['k'], buckets=[0.1, 0.5, 1])
    s = fastprom.Summary('s', 'help', ['k'])
    children = [h.labels('a'), h.labels('b'), s.labels('a'), s.labels('b')]
    print('ready', flush=True)
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        for child in children:
            for _ in range(100):
                child.observe(0.25)
''')


def torn_samples(metrics):
    """The histogram and summary children whose samples are not from one moment."""
    torn = []
    for metric in metrics:
        children = {}
        for sample in metric.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != 'le'))
            child = children.setdefault(labels, {'buckets': {}})
            if sample.name.endswith('_bucket'):
                child['buckets'][float(sample.labels['le'])] = sample.value
            else:
                child[sample.name[len(metric.name):]] = sample.value
        for labels, child in children.items():
            count, total = child.get('_count'), child.get('_sum')
            buckets = [child['buckets'][b] for b in sorted(child['buckets'])]
            consistent = total == count * VALUE
            if buckets:
                consistent &= buckets[-1] == count and buckets == sorted(buckets)
            if not consistent:
                torn.append((metric.name, labels, child))
    return torn


def start_writers(path, seconds):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(path))
    writers = [subprocess.Popen([sys.executable, '-c', WRITER, str(seconds)], env=env,
                                stdout=subprocess.PIPE) for _ in range(WRITERS)]
    for writer in writers:
        assert writer.stdout.readline() == b'ready\n'
    return writers


def scrape_while_writing(path, seconds, collect):
    """Scrapes until the writers stop: (scrapes, torn children seen, last scrape)."""
    writers = start_writers(path, seconds)
    scrapes, torn, last = 0, [], None
    try:
        while any(w.poll() is None for w in writers):
            last = collect()
            torn += torn_samples(last)
            scrapes += 1
    finally:
        for writer in writers:
            assert writer.wait(timeout=60) == 0
    return scrapes, torn, last


def test_fastprom_collector_sees_each_child_at_one_moment(tmp_path):
    collector = multiprocess.MultiProcessCollector(None, path=str(tmp_path))
    scrapes, torn, _ = scrape_while_writing(tmp_path, 4, collector.collect)
    assert scrapes > 50
    assert torn == [], f'{len(torn)} torn children in {scrapes} scrapes, first {torn[:3]}'
    # Once the writers are done, every observation is there.
    counts = {(m.name, tuple(s.labels.items())): s.value for m in collector.collect()
              for s in m.samples if s.name.endswith('_count')}
    assert len(counts) == 4 and all(c > 0 and c % 100 == 0 for c in counts.values())


def test_reference_collector_reads_fastprom_files_with_sequence_counters(tmp_path):
    """The sequence counter lives in a slot prometheus_client's collector ignores (the
    timestamp of a histogram's or summary's `_sum` entry): it reads the same totals."""
    import prometheus_client
    import prometheus_client.multiprocess
    writers = start_writers(tmp_path, 0.5)
    for writer in writers:
        assert writer.wait(timeout=60) == 0
    outputs = []
    for lib, mp in ((fastprom, multiprocess), (prometheus_client, prometheus_client.multiprocess)):
        registry = lib.CollectorRegistry()
        mp.MultiProcessCollector(registry, path=str(tmp_path))
        outputs.append(lib.generate_latest(registry))
    assert outputs[0] == outputs[1]
    assert b'h_count{k="a"}' in outputs[0]


@pytest.mark.skipif(not os.environ.get('FASTPROM_SNAPSHOT_REPORT'), reason='a measurement')
def test_report_torn_scrapes_of_both_collectors(tmp_path):
    """`FASTPROM_SNAPSHOT_REPORT=1 pytest -s`: how many scrapes see a torn child, for both."""
    import prometheus_client.multiprocess
    for name, mp in (('fastprom', multiprocess), ('prometheus_client', prometheus_client.multiprocess)):
        path = tmp_path / name
        path.mkdir()
        collector = mp.MultiProcessCollector(None, path=str(path))
        start = time.monotonic()
        scrapes, torn, _ = scrape_while_writing(path, 5, collector.collect)
        print(f'{name}: {len(torn)} torn children in {scrapes} scrapes '
              f'({time.monotonic() - start:.1f} s)')


def test_a_render_of_mapped_children_sees_each_at_one_moment(tmp_path, monkeypatch):
    """A registry's own render of multiprocess children reads their slots without the GIL
    while threads observe: it used to give up after a few spins on a writer descheduled
    mid-update (14 and 22 torn children in 3 s, two runs) and render it torn."""
    import threading
    from fastprom.parser import text_string_to_metric_families
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    registry = fastprom.CollectorRegistry()
    h = fastprom.Histogram('h', 'help', ['k'], registry=registry, buckets=[0.1, 1])
    s = fastprom.Summary('s', 'help', ['k'], registry=registry)
    stop = threading.Event()

    def observe(child):
        while not stop.is_set():
            for _ in range(1000):
                child.observe(VALUE)

    threads = [threading.Thread(target=observe, args=(c,)) for c in (h.labels('a'), s.labels('a'))]
    for t in threads:
        t.start()
    torn, renders = [], 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            renders += 1
            for family in text_string_to_metric_families(fastprom.generate_latest(registry).decode()):
                values = {x.name: x.value for x in family.samples}
                count = values.get(family.name + '_count')
                if count is not None and values[family.name + '_sum'] != count * VALUE:
                    torn.append(values)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert renders > 50
    assert torn == [], f'{len(torn)} torn in {renders} renders, first {torn[:3]}'
