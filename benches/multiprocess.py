#!/usr/bin/env python3
"""Multiprocess mode: fastprom vs prometheus_client's multiprocess mode.

    python benches/multiprocess.py [--quick]

Runs in its own process with PROMETHEUS_MULTIPROC_DIR set before either library is imported,
so both are in multiprocess mode. Rows:
- hot paths (`Counter.inc()`, `Gauge.set()` in the default and `mostrecent` modes,
  `Histogram.observe()` without and with native buckets, `labels(...).inc()`, `Summary.observe()`
  with objectives against the reference's without), ns/op;
- a scrape (collect + generate) of 16 processes x 1k distinct series, written by 16 real
  processes, each library's collector on the same directory;
- a scrape with the files of 1,000 dead processes present: fastprom after compaction
  (`mark_process_dead`) against the same directory without them (goal <= 1.5x), and
  prometheus_client's time on the uncompacted directory beside it.
`run(quick)` returns the rows for the main benchmark runner.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = ('prometheus_client', 'fastprom')


# Values observed by the summary row: 4,096 fixed pseudo-random ones in [0, 1), the same for both.
VARIED = [random.Random(16).random() for _ in range(4096)]


def quantile_arguments(L) -> dict:
    """fastprom's summary estimates quantiles; the reference's takes no such argument."""
    return {'objectives': {0.5: 0.05, 0.9: 0.01, 0.99: 0.001}} if L.__name__ == 'fastprom' else {}


def micro_rows(quick: bool) -> List[dict]:
    import prometheus_client
    import fastprom
    mods = {'prometheus_client': prometheus_client, 'fastprom': fastprom}
    cases = [
        ('mp_counter_inc', 'multiprocess Counter.inc()', 30, 'm.inc()', lambda L: L.Counter('c', 'c', registry=None)),
        ('mp_gauge_set', 'multiprocess Gauge.set(3.7)', 30, 'm.set(3.7)', lambda L: L.Gauge('g', 'g', registry=None)),
        ('mp_gauge_set_mostrecent', "multiprocess Gauge(multiprocess_mode='mostrecent').set(3.7)", 30, 'm.set(3.7)',
         lambda L: L.Gauge('gm', 'g', registry=None, multiprocess_mode='mostrecent')),
        ('mp_histogram_observe', 'multiprocess Histogram.observe(0.3)', 30, 'm.observe(0.3)',
         lambda L: L.Histogram('h', 'h', registry=None)),
        ('mp_native_histogram_observe', 'multiprocess Histogram.observe(0.3), native buckets (reference: classic)',
         15, 'm.observe(0.3)', lambda L: L.Histogram('hn', 'h', registry=None, **native_only(L))),
        ('mp_labels_inc', 'multiprocess labels(...).inc()', 15, 'm.labels("GET", "/a").inc()',
         lambda L: L.Counter('l', 'l', ['method', 'path'], registry=None)),
        ('mp_summary_quantiles_observe', 'multiprocess Summary.observe, 3 objectives (reference: no quantiles)',
         15, 'm.observe(next(v))', lambda L: L.Summary('sq', 's', registry=None, **quantile_arguments(L))),
    ]
    rounds, number = (5, 20_000) if quick else (15, 100_000)
    rows = []
    for case_id, label, goal, stmt, build in cases:
        timers = {name: timeit.Timer(stmt, globals={'m': build(mods[name]), 'v': itertools.cycle(VARIED)})
                  for name in LIBS}
        times: Dict[str, List[float]] = {name: [] for name in LIBS}
        for r in range(rounds):
            for name in (LIBS if r % 2 else LIBS[::-1]):
                times[name].append(timers[name].timeit(number) / number * 1e9)
        rows.append(row(case_id, label, goal, 'ns', times))
    return rows


def native_only(lib) -> dict:
    """Native buckets for fastprom's histogram; the reference has none (its classic one)."""
    return {'native_histogram_bucket_factor': 1.1} if lib.__name__ == 'fastprom' else {}


def row(case_id: str, label: str, goal: float, unit: str, times: Dict[str, List[float]], **extra) -> dict:
    ref, fast = statistics.median(times['prometheus_client']), statistics.median(times['fastprom'])
    r = {'id': case_id, 'label': label, 'goal': goal, 'unit': unit, 'ref': ref, 'fast': fast,
         'speedup': ref / fast, 'samples': times, 'notes': ''}
    r.update(extra)
    return r


WRITER = '''
import sys
from prometheus_client import Counter, Histogram
n, tag = int(sys.argv[1]), sys.argv[2]
c = Counter('app_requests', 'Requests.', ['route', 'status'])
h = Histogram('app_latency_seconds', 'Latency.', ['route'], buckets=(.01, .1, 1))
for i in range(n):
    c.labels(f'/route/{i}', '200').inc(i % 7 + 1)
for i in range(n // 10):
    h.labels(f'/route/{i}').observe(i / n)
'''


def write_processes(directory: str, processes: int, series: int) -> None:
    """`processes` real processes, each writing `series` series with prometheus_client's writer."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
    procs = [subprocess.Popen([sys.executable, '-c', WRITER, str(series), str(i)], env=env)
             for i in range(processes)]
    for p in procs:
        assert p.wait() == 0


def write_dead_processes(directory: str, count: int, series: int) -> List[int]:
    """Files of `count` processes that are gone (pids no process has), in the reference's format."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    pids = [5_000_000 + i for i in range(count)]
    for pid in pids:
        d = MmapedDict(os.path.join(directory, f'counter_{pid}.db'))
        for i in range(series):
            key = mmap_key('app_requests', 'app_requests_total', ('route', 'status'), (f'/route/{i}', '200'), 'Requests.')
            d.write_value(key, 1.0, 0.0)
        d.close()
    return pids


def scrape_times(directory: str, libs, rounds: int) -> Dict[str, List[float]]:
    import prometheus_client
    import prometheus_client.multiprocess
    import fastprom
    import fastprom.multiprocess
    mods = {'prometheus_client': (prometheus_client, prometheus_client.multiprocess),
            'fastprom': (fastprom, fastprom.multiprocess)}
    times: Dict[str, List[float]] = {name: [] for name in libs}
    outputs = {}
    for r in range(rounds):
        for name in (libs if r % 2 else libs[::-1]):
            lib, mp = mods[name]
            registry = lib.CollectorRegistry()
            mp.MultiProcessCollector(registry, path=directory)
            t0 = time.perf_counter()
            outputs[name] = lib.generate_latest(registry)
            times[name].append((time.perf_counter() - t0) * 1e9)
    if len(outputs) == 2:
        assert outputs['fastprom'] == outputs['prometheus_client'], 'outputs differ'
    return times


def scrape_rows(quick: bool) -> List[dict]:
    import fastprom.multiprocess
    rounds = 5 if quick else 11
    rows = []
    base = tempfile.mkdtemp(prefix='fastprom-mp-bench-')
    try:
        live = os.path.join(base, 'live')
        os.mkdir(live)
        write_processes(live, 16, 1000)
        times = scrape_times(live, LIBS, rounds)
        rows.append(row('mp_scrape_16x1k', 'multiprocess scrape, 16 processes x 1k series', 20, 'ns', times))

        dead = os.path.join(base, 'dead')
        shutil.copytree(live, dead)
        dead_count = 200 if quick else 1000
        pids = write_dead_processes(dead, dead_count, 100)
        ref_uncompacted = scrape_times(dead, ('prometheus_client',), 3)['prometheus_client']
        for pid in pids:
            fastprom.multiprocess.mark_process_dead(pid, dead)
        with_dead = scrape_times(dead, ('fastprom',), rounds)['fastprom']
        without = scrape_times(live, ('fastprom',), rounds)['fastprom']
        ratio = statistics.median(with_dead) / statistics.median(without)
        ref_ratio = statistics.median(ref_uncompacted) / statistics.median(times['prometheus_client'])
        rows.append({
            'id': 'mp_scrape_dead', 'label': f'multiprocess scrape with {dead_count} dead processes (compacted) vs none',
            'goal': 1.5, 'unit': 'ratio', 'ratio': ratio, 'ref_ratio': ref_ratio,
            'ref': statistics.median(ref_uncompacted), 'fast': statistics.median(with_dead),
            'samples': {'fastprom': with_dead, 'prometheus_client': ref_uncompacted},
            'notes': (f'fastprom {ratio:.2f}x its time without them; prometheus_client {ref_ratio:.1f}x '
                      f'(it keeps every dead process\'s files)'),
        })
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def measure(quick: bool) -> List[dict]:
    return micro_rows(quick) + scrape_rows(quick)


def run(quick: bool) -> List[dict]:
    """Runs this script in a process whose environment turns multiprocess mode on."""
    directory = tempfile.mkdtemp(prefix='fastprom-mp-values-')
    try:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
        args = [sys.executable, os.path.join(HERE, 'multiprocess.py'), '--json'] + (['--quick'] if quick else [])
        out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--json', action='store_true', help='measure here and print JSON rows')
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.quick)))
        return
    for r in run(args.quick):
        if r['unit'] == 'ratio':
            print(f"{r['id']:24} {r['notes']}")
        else:
            print(f"{r['id']:24} ref {r['ref']:12.1f} ns  fast {r['fast']:10.1f} ns  {r['speedup']:6.1f}x")


if __name__ == '__main__':
    main()
