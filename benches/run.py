#!/usr/bin/env python3
"""fastprom vs prometheus_client, side by side in one run.

    python benches/run.py [--quick] [--only PATTERN] [--out DIR] [--python PATH] [--readme]

Every timing interleaves the two libraries (and, for the micro-benchmarks, the
native floor `Floor().noop()`) round by round and reports the median.  See
benches/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import importlib
import itertools
import importlib.metadata
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import timeit
import traceback
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------
# Libraries
# --------------------------------------------------------------------------

def import_retry(name: str, timeout: float = 180.0):
    """Import a module, waiting while fastprom is being rebuilt."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            for mod in [m for m in sys.modules if m.split('.')[0] == name.split('.')[0]]:
                del sys.modules[mod]
            if time.monotonic() > deadline:
                raise
            print(f'# import {name} failed ({exc}); retrying in 5 s', file=sys.stderr)
            time.sleep(5)


@dataclass
class Lib:
    name: str
    mod: Any           # the package: Counter, Gauge, ..., generate_latest
    om_generate: Callable


def load_lib(name: str) -> Lib:
    mod = import_retry(name)
    om = import_retry(f'{name}.openmetrics.exposition')
    return Lib(name, mod, om.generate_latest)


FP: Lib
REF: Lib


def load_libs() -> None:
    global FP, REF
    FP = load_lib('fastprom')
    REF = load_lib('prometheus_client')


def both(round_no: int) -> List[Lib]:
    """The two libraries, in an order that alternates from round to round."""
    return [FP, REF] if round_no % 2 == 0 else [REF, FP]


def rotate(items: list, n: int) -> list:
    n %= len(items)
    return items[n:] + items[:n]


# --------------------------------------------------------------------------
# Run settings
# --------------------------------------------------------------------------

@dataclass
class Config:
    rounds: int            # micro-benchmark rounds
    target: float          # seconds per timed loop (micro)
    children: int          # K for labels_new_*
    create_rounds: int
    scrape_rounds: Dict[int, int]
    mem_children: int
    mem_labels: int
    mem_reps: int
    many_rounds: int
    gil_seconds: float
    gil_reps: int


QUICK = Config(rounds=9, target=0.005, children=2000, create_rounds=5,
               scrape_rounds={1_000: 7, 10_000: 5, 100_000: 3},
               mem_children=200_000, mem_labels=2, mem_reps=1, many_rounds=5,
               gil_seconds=1.0, gil_reps=1)
FULL = Config(rounds=41, target=0.02, children=10_000, create_rounds=11,
              scrape_rounds={1_000: 21, 10_000: 11, 100_000: 5},
              mem_children=200_000, mem_labels=2, mem_reps=3, many_rounds=15,
              gil_seconds=2.0, gil_reps=3)


# --------------------------------------------------------------------------
# Object builders (the same for both libraries)
# --------------------------------------------------------------------------

LABELS = ['a', 'b', 'c']
HIST50 = [round(i * 0.1, 10) for i in range(1, 51)]


def make(lib: Lib, cls: str, labelnames=(), **kw):
    """One metric in a fresh registry."""
    return getattr(lib.mod, cls)('bench_metric', 'Benchmark metric.', labelnames,
                                 registry=lib.mod.CollectorRegistry(), **kw)


def labelled(lib: Lib, cls: str):
    """A labelled metric whose child ('a', 'b', 'c') already exists."""
    metric = make(lib, cls, LABELS)
    metric.labels('a', 'b', 'c')
    return metric


METHODS = ['GET', 'POST', 'PUT', 'DELETE']
STATUSES = ['200', '201', '404', '500', '503']
LINES_PER_GROUP = 10 * 2 + 18   # 10 counters (_total, _created) + 1 histogram (15 buckets, count, sum, created)


@lru_cache(maxsize=None)
def scrape_registry(libname: str, n_lines: int):
    """A registry of about n_lines text sample lines: 10 labelled counter
    children (3 labels) for every labelled histogram child (2 labels, 15 buckets).
    Returns (registry, label dict of a counter child in the middle)."""
    lib = FP if libname == FP.name else REF
    groups = max(1, round(n_lines / LINES_PER_GROUP))
    reg = lib.mod.CollectorRegistry()
    counter = lib.mod.Counter('bench_requests', 'Requests served.', ['method', 'path', 'status'], registry=reg)
    hist = lib.mod.Histogram('bench_latency_seconds', 'Request latency.', ['method', 'path'], registry=reg)
    for i in range(groups * 10):
        counter.labels(METHODS[i % 4], f'/api/v1/item/{i}', STATUSES[i % 5]).inc(i % 7 + 1)
    for i in range(groups):
        child = hist.labels(METHODS[i % 4], f'/api/v1/item/{i}')
        for v in (0.003, 0.04, 0.3, 2.0):
            child.observe(v * (1 + i % 3))
    mid = groups * 5
    middle = {'method': METHODS[mid % 4], 'path': f'/api/v1/item/{mid}', 'status': STATUSES[mid % 5]}
    return reg, middle


def sample_lines(text: bytes) -> List[str]:
    """Sample lines without the _created ones (their timestamps differ)."""
    return [l for l in text.decode().splitlines()
            if l and not l.startswith('#') and '_created' not in l]


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

Setup = Callable[..., Tuple[str, Dict[str, Any]]]


@dataclass
class Case:
    id: str
    label: str
    goal: float
    kind: str                        # micro | create | scrape | memory | many | gil
    setup: Optional[Setup] = None    # lib -> (stmt, globals)
    floor_goal: Optional[float] = None
    param: Any = None
    batch: int = 1                   # micro: operations per execution of the statement


def micro(id, label, goal, stmt, build, floor_goal=None):
    return Case(id, label, goal, 'micro', lambda L: (stmt, {'m': build(L), 'w': build(L)}), floor_goal)


def _noop():
    pass


OBJECTIVES = {0.5: 0.05, 0.9: 0.01, 0.99: 0.001}
VARIED = [random.Random(16).random() for _ in range(4096)]


def varied(build):
    """`m.observe(...)` over 4,096 fixed pseudo-random values in [0, 1), the same for both."""
    return lambda L: ('m.observe(next(v))', {'m': build(L), 'v': itertools.cycle(VARIED)})


def fastprom_only(**kwargs):
    """The arguments for fastprom's metric; the reference's takes none of them."""
    return lambda L: kwargs if L.name == 'fastprom' else {}


INLINE = {
    'count_exceptions': 'try:\n    f()\nexcept Exception:\n    m.inc()\n    raise',
    'track_inprogress': 'm.inc()\ntry:\n    f()\nfinally:\n    m.dec()',
    'time': 't0 = perf_counter()\nf()\nm.observe(perf_counter() - t0)',
}


def decorated_vs_inline(method, cls):
    """fastprom's decorated `f()` against the same code written inline, also with fastprom:
    the prometheus_client column of these rows holds the inline code."""
    def setup(L):
        metric = make(FP, cls)
        if L.name == 'fastprom':
            return 'w()', {'w': getattr(metric, method)()(_noop)}
        return INLINE[method], {'m': metric, 'f': _noop, 'perf_counter': time.perf_counter}
    return setup


async def _anoop():
    pass


@types.coroutine
def _pause():
    yield


AWAITS = 100


def awaiting(body, names):
    """A coroutine that runs `body` (which awaits once) AWAITS times in a loop, then pauses:
    `c.send(None)` times AWAITS awaited calls with no event loop, each costing one loop
    iteration more than the code itself (as a timeit loop does for a call)."""
    namespace = dict(names, pause=_pause, calls=range(AWAITS))
    loop = 'for _ in calls:\n' + textwrap.indent(body, '    ') + '\nawait pause()'
    source = 'async def outer():\n    while True:\n' + textwrap.indent(loop, ' ' * 8)
    exec(source, namespace)
    coroutine = namespace['outer']()
    coroutine.send(None)
    return 'c.send(None)', {'c': coroutine}


def decorated_async(method, cls):
    """`await w()` of an `async def` decorated by `method()` of each library."""
    return lambda L: awaiting('await w()', {'w': getattr(make(L, cls), method)()(_anoop)})


def decorated_async_vs_inline(method, cls):
    """As decorated_vs_inline, awaited: the inline code awaits `f()` in place of calling it."""
    def setup(L):
        metric = make(FP, cls)
        if L.name == 'fastprom':
            return awaiting('await w()', {'w': getattr(metric, method)()(_anoop)})
        inline = INLINE[method].replace('f()', 'await f()')
        return awaiting(inline, {'m': metric, 'f': _anoop, 'perf_counter': time.perf_counter})
    return setup


DECORATORS = (('count_exceptions', 'Counter'), ('track_inprogress', 'Gauge'), ('time', 'Histogram'))


def hist(buckets=None):
    kw = {'buckets': buckets} if buckets else {}
    return lambda L: make(L, 'Histogram', **kw)


def new_children(cls):
    def setup(L, k):
        vals = [(f'v{i}', 'GET', '200') for i in range(k)]
        return 'for v in vals: m.labels(*v)', {'m': make(L, cls, LABELS), 'vals': vals}
    return setup


def scrape_case(fmt, n):
    def setup(L):
        reg, _ = scrape_registry(L.name, n)
        gen = L.mod.generate_latest if fmt == 'text' else L.om_generate
        return 'gen(reg)', {'gen': gen, 'reg': reg}
    name = 'generate_latest' if fmt == 'text' else 'openmetrics generate_latest'
    return Case(f'scrape_{fmt if fmt == "text" else "om"}_{n // 1000}k',
                f'{name}, {n // 1000}k series', 50, 'scrape', setup, param=n)


def counters_registry(lib: Lib, n: int):
    """A registry of one counter with n children (3 labels), as in scrape_registry."""
    reg = lib.mod.CollectorRegistry()
    counter = lib.mod.Counter('bench_requests', 'Requests served.', ['method', 'path', 'status'], registry=reg)
    for i in range(n):
        counter.labels(METHODS[i % 4], f'/api/v1/item/{i}', STATUSES[i % 5]).inc(i % 7 + 1)
    return reg


def get_sample_value_setup(L):
    reg, labels = scrape_registry(L.name, 10_000)
    return "reg.get_sample_value('bench_requests_total', labels)", {'reg': reg, 'labels': labels}


CASES: List[Case] = [
    micro('counter_inc', 'Counter.inc()', 15, 'm.inc()', lambda L: make(L, 'Counter'), floor_goal=1.5),
    micro('counter_inc_float', 'Counter.inc(2.5)', 10, 'm.inc(2.5)', lambda L: make(L, 'Counter')),
    micro('gauge_set', 'Gauge.set(3.7)', 10, 'm.set(3.7)', lambda L: make(L, 'Gauge'), floor_goal=1.5),
    micro('gauge_inc', 'Gauge.inc()', 10, 'm.inc()', lambda L: make(L, 'Gauge')),
    micro('hist15_first', 'Histogram.observe(0.001), 15 buckets', 15, 'm.observe(0.001)', hist()),
    micro('hist15_middle', 'Histogram.observe(0.3), 15 buckets', 15, 'm.observe(0.3)', hist()),
    micro('hist15_inf', 'Histogram.observe(100), 15 buckets', 15, 'm.observe(100)', hist()),
    micro('hist50_first', 'Histogram.observe(0.001), 50 buckets', 15, 'm.observe(0.001)', hist(HIST50)),
    micro('hist50_middle', 'Histogram.observe(2.55), 50 buckets', 15, 'm.observe(2.55)', hist(HIST50)),
    micro('hist50_inf', 'Histogram.observe(100), 50 buckets', 15, 'm.observe(100)', hist(HIST50)),
    micro('summary_observe', 'Summary.observe(1.5)', 15, 'm.observe(1.5)', lambda L: make(L, 'Summary')),
    micro('labels_pos', "labels('a','b','c').inc()", 12, "m.labels('a', 'b', 'c').inc()",
          lambda L: labelled(L, 'Counter')),
    micro('labels_kw', "labels(a='a',b='b',c='c').inc()", 8, "m.labels(a='a', b='b', c='c').inc()",
          lambda L: labelled(L, 'Counter')),
    micro('child_inc', 'cached child .inc()', 15, 'm.inc()',
          lambda L: labelled(L, 'Counter').labels('a', 'b', 'c'), floor_goal=1.5),
    micro('child_observe', 'cached child .observe(0.3)', 15, 'm.observe(0.3)',
          lambda L: labelled(L, 'Histogram').labels('a', 'b', 'c')),
    micro('hist_time', 'with hist.time(): pass', 5, 'with m.time():\n    pass', hist()),
    micro('deco_count_exceptions', '@c.count_exceptions() f()', 5, 'w()',
          lambda L: make(L, 'Counter').count_exceptions()(_noop)),
    micro('deco_track_inprogress', '@g.track_inprogress() f()', 5, 'w()',
          lambda L: make(L, 'Gauge').track_inprogress()(_noop)),
    micro('deco_time', '@h.time() f()', 5, 'w()', lambda L: hist()(L).time()(_noop)),
    *[Case(f'deco_{method}_vs_inline', f'@{method}() f() vs the same code inline (both fastprom)',
           round(1 / 1.5, 2), 'micro', decorated_vs_inline(method, cls))
      for method, cls in DECORATORS],
    *[Case(f'deco_async_{method}', f'@{method}() async f(), awaited', 5, 'micro',
           decorated_async(method, cls), batch=AWAITS)
      for method, cls in DECORATORS],
    *[Case(f'deco_async_{method}_vs_inline',
           f'@{method}() async f(), awaited, vs the same code inline (both fastprom)',
           round(1 / 1.5, 2), 'micro', decorated_async_vs_inline(method, cls), batch=AWAITS)
      for method, cls in DECORATORS],
    Case('summary_quantiles_observe', 'Summary.observe, 3 objectives (reference: no quantiles)', 5, 'micro',
         varied(lambda L: make(L, 'Summary', **fastprom_only(objectives=OBJECTIVES)(L)))),
    Case('native_histogram_observe', 'Histogram.observe, native buckets (reference: classic)', 15, 'micro',
         varied(lambda L: make(L, 'Histogram', **fastprom_only(native_histogram_bucket_factor=1.1)(L)))),
    Case('native_vs_classic_observe', 'native Histogram.observe vs classic (both fastprom)', round(1 / 1.5, 2),
         'micro', varied(lambda L: make(FP, 'Histogram',
                                        **fastprom_only(native_histogram_bucket_factor=1.1)(L)))),
    Case('labels_new_counter', 'labels(...) creating a Counter child', 20, 'create', new_children('Counter')),
    Case('labels_new_histogram', 'labels(...) creating a Histogram child', 20, 'create', new_children('Histogram')),
    Case('labels_new_counter_1k', 'labels(...) creating a Counter child, 10^3 children', 20, 'create',
         new_children('Counter'), param=1_000),
    Case('labels_new_counter_1m', 'labels(...) creating a Counter child, 10^6 children', 20, 'create',
         new_children('Counter'), param=1_000_000),
    Case('labels_new_scaling', 'labels(...) creating a Counter child: ns per child at 10^6 / at 10^3', 1.5,
         'create_scaling'),
    *[scrape_case(fmt, n) for fmt in ('text', 'om') for n in (1_000, 10_000, 100_000)],
    Case('scrape_created_lines', 'generate_latest, 100k counters: ns per _created line / ns per value line',
         1.25, 'created_lines', param=100_000),
    Case('get_sample_value_10k', 'get_sample_value(), 10k series', 100, 'lookup', get_sample_value_setup),
    Case('memory_counter_200k', 'RSS of 200k Counter children, 2 labels', 0.25, 'memory', param='Counter'),
    Case('memory_gauge_200k', 'RSS of 200k Gauge children, 2 labels', 0.25, 'memory', param='Gauge'),
    Case('memory_histogram_200k', 'RSS of 200k Histogram children, 2 labels', 0.15, 'memory', param='Histogram'),
    Case('scrape_text_1m_cpu', 'generate_latest, 1M series: CPU seconds of one scrape (fastprom only)', 0.5,
         'cpu_scrape', param=1_000_000),
    Case('get_sample_value_1m', 'get_sample_value(), 1M series / 10k series (fastprom only)', 1.5,
         'lookup_scaling'),
    Case('observe_many_10k', 'observe_many(list of 10k) vs observe loop', 50, 'many', param='list'),
    Case('parse_text_10k', 'parse Prometheus text, 10k series', 20, 'parse'),
    Case('parse_om_10k', 'parse OpenMetrics, 10k series', 20, 'parse'),
    Case('parse_text_100k', 'parse Prometheus text, 100k series', 20, 'parse'),
    Case('parse_om_100k', 'parse OpenMetrics, 100k series', 20, 'parse'),
    Case('observe_many_10k_numpy', 'observe_many(numpy 10k) vs observe loop', 50, 'many', param='numpy'),
    Case('scrape_gil', 'thread speed while scraping 100k series', 80, 'gil'),
    Case('http_gil', 'thread speed while a client scrapes 10k series over HTTP', 90, 'http_gil'),
    Case('mp_counter_inc', 'multiprocess Counter.inc()', 30, 'mp'),
    Case('mp_gauge_set', 'multiprocess Gauge.set(3.7)', 30, 'mp'),
    Case('mp_gauge_set_mostrecent', "multiprocess Gauge(multiprocess_mode='mostrecent').set(3.7)", 30, 'mp'),
    Case('mp_histogram_observe', 'multiprocess Histogram.observe(0.3)', 30, 'mp'),
    Case('mp_native_histogram_observe', 'multiprocess Histogram.observe, native buckets (reference: classic)',
         15, 'mp'),
    Case('mp_labels_inc', 'multiprocess labels(...).inc()', 15, 'mp'),
    Case('mp_summary_quantiles_observe', 'multiprocess Summary.observe, 3 objectives (reference: no quantiles)',
         15, 'mp'),
    Case('mp_scrape_16x1k', 'multiprocess scrape, 16 processes x 1k series', 20, 'mp'),
    Case('mp_scrape_dead', 'multiprocess scrape with 1000 dead processes (compacted) vs none', 1.5, 'mp'),
    Case('middleware_overhead', 'ServiceMetricsMiddleware overhead per request vs BentoML\'s middleware', 5,
         'middleware'),
]


# --------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------

def calibrate(timer: timeit.Timer, target: float) -> int:
    """Loop count so one timer.timeit(n) takes about `target` seconds."""
    n = 1
    while True:
        t = timer.timeit(n)
        if t >= target / 5 or n >= 10**8:
            return max(1, int(n * target / max(t, 1e-9)))
        n *= 10


def timed_rounds(variants: Dict[str, Tuple[str, dict]], rounds: int, target: float) -> Dict[str, List[float]]:
    """Per-call ns for each variant, `rounds` times, the order rotating every round."""
    timers = {k: timeit.Timer(stmt, globals=g) for k, (stmt, g) in variants.items()}
    numbers = {k: calibrate(t, target) for k, t in timers.items()}
    samples: Dict[str, List[float]] = {k: [] for k in timers}
    for r in range(rounds):
        for k in rotate(list(timers), r):
            gc.collect()
            samples[k].append(timers[k].timeit(numbers[k]) / numbers[k] * 1e9)
    return samples


def med(xs: List[float]) -> float:
    return statistics.median(xs)


# Every other kind: speed-up. 'ratio': fastprom / reference (or fastprom / itself at a smaller
# size) at most the goal; 'max': fastprom's own value at most the goal.
GOAL_TYPES = {'memory': 'ratio', 'gil': 'percent', 'http_gil': 'percent', 'create_scaling': 'ratio',
              'lookup_scaling': 'ratio', 'cpu_scrape': 'max', 'created_lines': 'ratio'}


def row(case: Case, unit: str, ref: Optional[float], fp: Optional[float], **extra) -> dict:
    """A result row; `ref`/`fp` are ns per op (or the unit's own value for memory/gil)."""
    r = {'id': case.id, 'label': case.label, 'kind': case.kind, 'unit': unit,
         'prometheus_client': ref, 'fastprom': fp, 'speedup': ref / fp if ref and fp else None,
         'goal': case.goal, 'goal_type': GOAL_TYPES.get(case.kind, 'speedup'), 'floor_goal': case.floor_goal,
         'x_floor': None, 'notes': '', 'met': None}
    r.update(extra)
    if r['goal_type'] == 'speedup' and r['speedup']:
        r.update(secondary_speedups(r['samples']))
    return r


def secondary_speedups(samples: Dict[str, List[float]]) -> dict:
    """Noise-resistant views of the same data, for the JSON only: the median of
    the per-round ratios (both libraries timed back to back) and the ratio of minima."""
    ref, fp = samples[REF.name], samples[FP.name]
    return {'speedup_paired': med([a / b for a, b in zip(ref, fp)]),
            'speedup_min': min(ref) / min(fp)}


# --------------------------------------------------------------------------
# Runners, one per kind
# --------------------------------------------------------------------------

def run_micro(case: Case, cfg: Config) -> dict:
    floor = FP.mod._native.Floor()
    variants = {FP.name: case.setup(FP), REF.name: case.setup(REF), 'floor': ('f.noop()', {'f': floor})}
    s = timed_rounds(variants, cfg.rounds, cfg.target)
    for name in (FP.name, REF.name):
        s[name] = [ns / case.batch for ns in s[name]]
    fp, ref, fl = med(s[FP.name]), med(s[REF.name]), med(s['floor'])
    return row(case, 'ns', ref, fp, x_floor=fp / fl, floor_ns=fl, samples=s)


def run_scrape(case: Case, cfg: Config) -> dict:
    n = case.param
    variants = {FP.name: case.setup(FP), REF.name: case.setup(REF)}
    outputs = {k: g['gen'](g['reg']) for k, (_, g) in variants.items()}
    lines = [sample_lines(outputs[k]) for k in (FP.name, REF.name)]
    total = sum(1 for l in outputs[REF.name].decode().splitlines() if l and not l.startswith('#'))
    notes = f'{total} sample lines'
    if lines[0] != lines[1]:
        notes += '; OUTPUT DIFFERS from prometheus_client'
    s = timed_rounds(variants, cfg.scrape_rounds[n], target=0.05)
    return row(case, 'ms', med(s[REF.name]), med(s[FP.name]), notes=notes, samples=s)


def run_lookup(case: Case, cfg: Config) -> dict:
    variants = {FP.name: case.setup(FP), REF.name: case.setup(REF)}
    values = {k: eval(stmt, g) for k, (stmt, g) in variants.items()}
    notes = '' if values[FP.name] == values[REF.name] else f'VALUES DIFFER: {values}'
    s = timed_rounds(variants, max(5, cfg.rounds // 2), cfg.target)
    return row(case, 'us', med(s[REF.name]), med(s[FP.name]), notes=notes, samples=s)


def create_rounds(k: int, cfg: Config) -> int:
    """Rounds of creating k children: more for small k (short, noisy loops), two for 10^6."""
    if k <= 1_000:
        return cfg.create_rounds * 5
    return cfg.create_rounds if k <= 100_000 else 2


def time_new_children(libs: List[Lib], setup: Setup, k: int, rounds: int) -> Dict[str, List[float]]:
    """ns per child of `labels()` creating k children on a fresh metric, per round (after a
    warm-up round of at most 10^4 children)."""
    s: Dict[str, List[float]] = {lib.name: [] for lib in libs}
    for r in range(rounds + 1):
        for lib in (libs if r % 2 == 0 else libs[::-1]):
            n = k if r else min(k, 10_000)
            stmt, g = setup(lib, n)
            gc.collect()
            t = timeit.Timer(stmt, globals=g).timeit(1)
            if r:
                s[lib.name].append(t / n * 1e9)
            del g
    return s


# fastprom's ns-per-child samples of the create rows run so far, by number of children.
_CREATE_SAMPLES: Dict[int, List[float]] = {}


def run_create(case: Case, cfg: Config) -> dict:
    k = case.param or cfg.children
    s = time_new_children([FP, REF], case.setup, k, create_rounds(k, cfg))
    if case.id.startswith('labels_new_counter'):
        _CREATE_SAMPLES[k] = s[FP.name]
    return row(case, 'ns', med(s[REF.name]), med(s[FP.name]), notes=f'{k} children per round', samples=s)


def run_create_scaling(case: Case, cfg: Config) -> dict:
    """fastprom's ns per new Counter child at 10^6 children over that at 10^3 (the rows
    labels_new_counter_1k/_1m when they ran, else measured here)."""
    per_child = {}
    for k in (1_000, 1_000_000):
        if k not in _CREATE_SAMPLES:
            _CREATE_SAMPLES[k] = time_new_children([FP], new_children('Counter'), k, create_rounds(k, cfg))[FP.name]
        per_child[k] = med(_CREATE_SAMPLES[k])
    ratio = per_child[1_000_000] / per_child[1_000]
    notes = f'fastprom {per_child[1_000]:.0f} ns per child at 10^3, {per_child[1_000_000]:.0f} ns at 10^6'
    return row(case, 'ns', None, per_child[1_000_000], ratio=ratio, notes=notes,
               samples={FP.name: _CREATE_SAMPLES[1_000_000]})


def run_cpu_scrape(case: Case, cfg: Config) -> dict:
    """CPU seconds (every thread of the process) of one text scrape of about `param` lines."""
    reg, _ = scrape_registry(FP.name, case.param)
    FP.mod.generate_latest(reg)       # warm-up
    seconds = []
    for _ in range(3):
        gc.collect()
        start = time.process_time()
        FP.mod.generate_latest(reg)
        seconds.append(time.process_time() - start)
    return row(case, 's', None, med(seconds), notes=f'{case.param} sample lines, median of 3 scrapes',
               samples={FP.name: seconds})


def created_line_costs(lib: Lib, n: int, rounds: int) -> Tuple[List[float], List[float]]:
    """CPU ns per sample line of text scrapes of n counters with their _created series and
    without them (`disable_created_metrics()`), interleaved round by round. CPU time: the
    difference of two scrapes is small against the noise of a loaded machine's wall clock."""
    reg = counters_registry(lib, n)
    samples: Dict[bool, List[float]] = {True: [], False: []}
    try:
        for r in range(rounds + 1):
            for created in rotate([True, False], r):
                (lib.mod.enable_created_metrics if created else lib.mod.disable_created_metrics)()
                gc.collect()
                start = time.process_time()
                lib.mod.generate_latest(reg)
                if r:       # the first round warms up
                    samples[created].append((time.process_time() - start) / n * 1e9)
    finally:
        lib.mod.enable_created_metrics()
    return samples[True], samples[False]


def run_created_lines(case: Case, cfg: Config) -> dict:
    """ns per _created line over ns per value line: the scrape with created series less the one
    without in the same round (median over rounds), over the one without (each has one value
    line per counter). The reference's
    figures, measured the same way, are in the notes."""
    n, rounds = case.param, 2 * cfg.scrape_rounds[100_000]
    costs = {}
    for lib in (FP, REF):
        with_created, without = created_line_costs(lib, n, rounds)
        # Differences of the scrapes of one round: the load of the machine drifts less in one.
        created_ns = med([w - wo for w, wo in zip(with_created, without)])
        costs[lib.name] = (med(without), created_ns, with_created, without)
    value_ns, created_ns, with_created, without = costs[FP.name]
    ref_value, ref_created = costs[REF.name][:2]
    notes = (f'fastprom {value_ns:.0f} ns per value line, {created_ns:.0f} ns per _created line; '
             f'prometheus_client {ref_value:.0f} and {ref_created:.0f} ns (ratio {ref_created / ref_value:.2f})')
    result = row(case, 'ns', None, created_ns, ratio=created_ns / value_ns, notes=notes,
                 samples={FP.name: with_created, f'{FP.name} without created': without})
    result['goal_text'] = f'<= {case.goal:g}x a value line'
    return result


def run_lookup_scaling(case: Case, cfg: Config) -> dict:
    """fastprom's get_sample_value on the 1M-line registry over the same on the 10k one."""
    variants = {}
    for n in (10_000, 1_000_000):
        reg, labels = scrape_registry(FP.name, n)
        variants[str(n)] = ("reg.get_sample_value('bench_requests_total', labels)", {'reg': reg, 'labels': labels})
    s = timed_rounds(variants, max(5, cfg.rounds // 2), cfg.target)
    small, large = med(s['10000']), med(s['1000000'])
    return row(case, 'ns', None, large, ratio=large / small,
               notes=f'fastprom {small:.0f} ns at 10k series, {large:.0f} ns at 1M', samples=s)


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def memory_child(libname: str, cls: str, n: int, labels: int) -> None:
    """Runs in a fresh subprocess: prints the RSS growth of creating n children with `labels`
    label values each."""
    lib = load_lib(libname)
    metric = make(lib, cls, LABELS[:labels])
    values = ['GET', '200', 'x'][:labels - 1]
    metric.labels('warm', *values)
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        metric.labels(f'v{i}', *values)
    gc.collect()
    after = rss_bytes()
    print(json.dumps({'bytes': after - before}))


def memory_subprocess(libname: str, cls: str, n: int, labels: int, tries: int = 3) -> int:
    """RSS growth in bytes, measured by a fresh `run.py --memory-child` process.
    Retried a few times: fastprom may be in the middle of a rebuild."""
    cmd = [sys.executable, str(Path(__file__).resolve()), '--memory-child', libname, cls, str(n), str(labels)]
    for attempt in range(tries):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])['bytes']
        print(f'# memory child {libname} {cls} exited {proc.returncode}: {proc.stderr.strip()[-500:]}',
              file=sys.stderr)
        time.sleep(10)
    raise RuntimeError(f'memory child {libname} {cls} failed {tries} times')


def run_memory(case: Case, cfg: Config) -> dict:
    s: Dict[str, List[float]] = {FP.name: [], REF.name: []}
    for r in range(cfg.mem_reps):
        for lib in both(r):
            s[lib.name].append(memory_subprocess(lib.name, case.param, cfg.mem_children, cfg.mem_labels) / 2**20)
    ref, fp = med(s[REF.name]), med(s[FP.name])
    return row(case, 'MiB', ref, fp, speedup=ref / fp if fp > 0 else None,
               ratio=fp / ref if ref > 0 else None,
               notes=f'{cfg.mem_children} children, {cfg.mem_labels} labels, fresh process per library', samples=s)


def run_many(case: Case, cfg: Config) -> dict:
    n = 10_000
    rnd = random.Random(42)
    values = [rnd.expovariate(4.0) for _ in range(n)]
    if case.param == 'numpy':
        try:
            np = importlib.import_module('numpy')
        except ImportError:
            return row(case, 'ms', None, None, status='numpy not installed', notes='numpy not installed')
        data = np.asarray(values, dtype=np.float64)
    else:
        data = values
    loop = 'for v in vals: h.observe(v)'
    variants = {REF.name: (loop, {'h': make(REF, 'Histogram'), 'vals': values}),
                'fastprom_loop': (loop, {'h': make(FP, 'Histogram'), 'vals': values})}
    implemented = hasattr(FP.mod.Histogram, 'observe_many')
    notes = ''
    if implemented:
        variants[FP.name] = ('h.observe_many(vals)', {'h': make(FP, 'Histogram'), 'vals': data})
        notes = check_observe_many(data, values)
    s = timed_rounds(variants, cfg.many_rounds, cfg.target)
    fp_loop = med(s['fastprom_loop'])
    notes = f'fastprom observe loop {fp_loop / 1e6:.3f} ms' + (f'; {notes}' if notes else '')
    if not implemented:
        return row(case, 'ms', med(s[REF.name]), None, status='not implemented', notes=notes, samples=s)
    return row(case, 'ms', med(s[REF.name]), med(s[FP.name]), notes=notes, samples=s)


def check_observe_many(data, values) -> str:
    """observe_many must leave the histogram as the observe loop does."""
    regs = [FP.mod.CollectorRegistry() for _ in range(2)]
    a, b = (FP.mod.Histogram('bench_metric', 'Benchmark metric.', registry=reg) for reg in regs)
    a.observe_many(data)
    for v in values:
        b.observe(v)
    out = [sample_lines(FP.mod.generate_latest(reg)) for reg in regs]
    return '' if out[0] == out[1] else 'RESULT DIFFERS from the observe loop'


def spin_rate(seconds: float, work: Optional[Callable[[], None]]) -> Tuple[float, int]:
    """Counting loop in a thread for `seconds`; the main thread sleeps or calls
    `work` back to back. Returns (thread iterations per second, work calls)."""
    flag, out = [True], []

    def spin():
        n = 0
        while flag[0]:
            n += 1
        out.append(n)

    thread = threading.Thread(target=spin)
    calls = 0
    t0 = time.perf_counter()
    thread.start()
    if work is None:
        time.sleep(seconds)
    else:
        while time.perf_counter() - t0 < seconds:
            work()
            calls += 1
    flag[0] = False
    elapsed = time.perf_counter() - t0
    thread.join()
    return out[0] / elapsed, calls


def gil_free_ceiling(seconds: float) -> float:
    """The thread's speed, in % of solo, while the main thread runs C code that holds no GIL
    (hashlib on 32 MiB): what two busy threads get on this machine's cores at best."""
    import hashlib
    data = b'x' * (32 << 20)
    solo, _ = spin_rate(seconds, None)
    busy, _ = spin_rate(seconds, lambda: hashlib.sha256(data).digest())
    return 100 * busy / solo


def run_gil(case: Case, cfg: Config) -> dict:
    pct: Dict[str, List[float]] = {FP.name: [], REF.name: []}
    scrapes: Dict[str, List[int]] = {FP.name: [], REF.name: []}
    for r in range(cfg.gil_reps):
        for lib in both(r):
            reg, _ = scrape_registry(lib.name, 100_000)
            solo, _ = spin_rate(cfg.gil_seconds, None)
            busy, calls = spin_rate(cfg.gil_seconds, lambda: lib.mod.generate_latest(reg))
            pct[lib.name].append(100 * busy / solo)
            scrapes[lib.name].append(calls)
    ref, fp = med(pct[REF.name]), med(pct[FP.name])
    ceiling = gil_free_ceiling(cfg.gil_seconds)
    notes = (f'scrapes in {cfg.gil_seconds:g} s: prometheus_client {med(scrapes[REF.name]):g}, '
             f'fastprom {med(scrapes[FP.name]):g}; ceiling here {ceiling:.0f}% (thread speed while the '
             f'main thread hashes with the GIL released)')
    return row(case, '%', ref, fp, speedup=None, notes=notes, samples=pct)


# A client in its own process: keep-alive GETs of the metrics page, back to back, until killed.
SCRAPE_CLIENT = '''
import http.client, sys, time
conn = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    conn.request('GET', '/metrics')
    conn.getresponse().read()
    n += 1
print(n)
'''


def run_http_gil(case: Case, cfg: Config) -> dict:
    """The busy thread's speed while another process scrapes `start_http_server` in a loop."""
    pct: Dict[str, List[float]] = {FP.name: [], REF.name: []}
    scrapes: Dict[str, List[int]] = {FP.name: [], REF.name: []}
    for r in range(cfg.gil_reps):
        for lib in both(r):
            reg, _ = scrape_registry(lib.name, 10_000)
            server, thread = lib.mod.start_http_server(0, addr='127.0.0.1', registry=reg)
            try:
                solo, _ = spin_rate(cfg.gil_seconds, None)
                client = subprocess.Popen(
                    [sys.executable, '-c', SCRAPE_CLIENT, str(server.server_port), str(cfg.gil_seconds + 0.5)],
                    stdout=subprocess.PIPE, text=True)
                time.sleep(0.25)  # the client is up and scraping
                busy, _ = spin_rate(cfg.gil_seconds, None)
                scrapes[lib.name].append(int(client.communicate(timeout=60)[0]))
            finally:
                server.shutdown()
                server.server_close()
            pct[lib.name].append(100 * busy / solo)
    ref, fp = med(pct[REF.name]), med(pct[FP.name])
    notes = (f'scrapes in {cfg.gil_seconds + 0.5:g} s: prometheus_client {med(scrapes[REF.name]):g}, '
             f'fastprom {med(scrapes[FP.name]):g}; client in its own process, server from start_http_server')
    return row(case, '%', ref, fp, speedup=None, notes=notes, samples=pct)


_PARSE_ROWS: Dict[str, dict] = {}
_MP_ROWS: Dict[str, dict] = {}


def run_middleware(case: Case, cfg: Config) -> dict:
    """Measured by benches/middleware.py (each library in subprocesses of its own)."""
    sys.path.insert(0, str(HERE))
    import middleware
    r = next(r for r in middleware.run(quick=cfg is QUICK) if r['id'] == case.id)
    samples = {REF.name: [v * 1e3 for v in r['samples']['prometheus_client']],
               FP.name: [v * 1e3 for v in r['samples']['fastprom']]}
    return row(case, 'us', r['ref'] * 1e3, r['fast'] * 1e3, notes=r['notes'], samples=samples)


def run_mp(case: Case, cfg: Config) -> dict:
    """The multiprocess rows, measured by benches/multiprocess.py in a process of its own
    (all of them at the first)."""
    if not _MP_ROWS:
        sys.path.insert(0, str(HERE))
        import multiprocess as mp_bench
        _MP_ROWS.update((r['id'], r) for r in mp_bench.run(quick=cfg is QUICK))
    r = _MP_ROWS[case.id]
    samples = {REF.name: r['samples']['prometheus_client'], FP.name: r['samples']['fastprom']}
    unit = 'ms' if case.id.startswith('mp_scrape') else 'ns'
    if r['unit'] == 'ratio':
        result = row(case, unit, r['ref'], r['fast'], speedup=None, notes=r['notes'], samples=samples)
        result.update(goal_type='ratio', ratio=r['ratio'], goal_text=f"<= {case.goal:g}x its time without them")
        return result
    return row(case, unit, r['ref'], r['fast'], samples=samples)


def run_parse(case: Case, cfg: Config) -> dict:
    """The parser rows, measured by benches/parsers.py (all four at the first of them)."""
    if not _PARSE_ROWS:
        sys.path.insert(0, str(HERE))
        import parsers
        _PARSE_ROWS.update((r['id'], r) for r in parsers.run(quick=cfg is QUICK))
    r = _PARSE_ROWS[case.id]
    ref_ns, fp_ns = r['ref_ms'] * 1e6, r['fast_ms'] * 1e6
    samples = {REF.name: [ref_ns], FP.name: [fp_ns]}
    notes = f"{r['series']} sample lines, {r['rounds']} rounds"
    return row(case, 'ms', ref_ns, fp_ns, notes=notes, samples=samples)


RUNNERS = {'parse': run_parse, 'micro': run_micro, 'create': run_create, 'scrape': run_scrape, 'lookup': run_lookup,
           'memory': run_memory, 'many': run_many, 'gil': run_gil, 'http_gil': run_http_gil, 'mp': run_mp,
           'middleware': run_middleware, 'create_scaling': run_create_scaling, 'cpu_scrape': run_cpu_scrape,
           'lookup_scaling': run_lookup_scaling, 'created_lines': run_created_lines}


# --------------------------------------------------------------------------
# Goals and formatting
# --------------------------------------------------------------------------

def judge(r: dict) -> Optional[bool]:
    if r.get('status'):
        return None
    if r['goal_type'] == 'ratio':
        return r['ratio'] is not None and r['ratio'] <= r['goal']
    if r['goal_type'] == 'percent':
        return r['fastprom'] >= r['goal']
    if r['goal_type'] == 'max':
        return r['fastprom'] is not None and r['fastprom'] <= r['goal']
    ok = r['speedup'] is not None and r['speedup'] >= r['goal']
    if r.get('floor_goal') is not None:
        ok = ok and r['x_floor'] <= r['floor_goal']
    return ok


def goal_text(r: dict) -> str:
    if r.get('goal_text'):
        return r['goal_text']
    if r['goal_type'] == 'ratio':
        return f"<= {r['goal']:g} (fastprom/ref)" if r['prometheus_client'] is not None else f"<= {r['goal']:g}x"
    if r['goal_type'] == 'max':
        return f"<= {r['goal']:g} {r['unit']}"
    if r['goal_type'] == 'percent':
        return f">= {r['goal']:g}% (fastprom)"
    text = f">= {r['goal']:g}x"
    if r.get('floor_goal') is not None:
        text += f", <= {r['floor_goal']:g}x floor"
    return text


def fmt_value(v: Optional[float], unit: str) -> str:
    if v is None:
        return '-'
    if unit == 'ns':
        return f'{v:.1f} ns'
    if unit == 'us':
        return f'{v / 1e3:.2f} µs'
    if unit == 'ms':
        return f'{v / 1e6:.3f} ms'
    if unit == 'MiB':
        return f'{v:.1f} MiB'
    if unit == 's':
        return f'{v:.3f} s'
    return f'{v:.0f}%'


def table_rows(rows: List[dict]) -> List[List[str]]:
    out = []
    for r in rows:
        met = {True: 'met', False: 'not met', None: 'n/a'}[r['met']]
        if r['goal_type'] == 'ratio':
            speed = f"ratio {r['ratio']:.2f}" if r.get('ratio') is not None else '-'
        elif r['speedup'] is not None:
            speed = f"{r['speedup']:.1f}x"
        else:
            speed = '-'
        fp = r.get('status') or fmt_value(r['fastprom'], r['unit'])
        out.append([r['id'], r['label'], fmt_value(r['prometheus_client'], r['unit']), fp, speed,
                    goal_text(r) if r['kind'] != 'floor' else '-', met if r['kind'] != 'floor' else '-',
                    f"{r['x_floor']:.2f}x" if r.get('x_floor') is not None else '', r.get('notes', '')])
    return out


HEADER = ['id', 'operation', 'prometheus_client', 'fastprom', 'speed-up', 'goal', 'met', 'x floor', 'notes']


def markdown_table(rows: List[dict]) -> str:
    def line(cells):
        return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'
    return '\n'.join([line(HEADER), line(['---'] * len(HEADER))] + [line(c) for c in table_rows(rows)])


def floor_row(rows: List[dict]) -> Optional[dict]:
    floors = [r['floor_ns'] for r in rows if 'floor_ns' in r]
    if not floors:
        return None
    return {'id': 'floor', 'label': 'Floor().noop() (empty native call)', 'kind': 'floor', 'unit': 'ns',
            'prometheus_client': None, 'fastprom': med(floors), 'speedup': None, 'goal': None,
            'goal_type': 'none', 'x_floor': 1.0, 'met': None,
            'notes': f'median over the {len(floors)} micro rows'}


# --------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------

def chart(rows: List[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('# matplotlib is not installed: no chart', file=sys.stderr)
        return False
    bars = []
    for r in rows:
        if r['goal_type'] == 'speedup' and r['speedup']:
            bars.append((r['id'], r['speedup'], r['goal'], r['met']))
        elif r['goal_type'] == 'ratio' and r['speedup']:
            bars.append((r['id'] + ' (ref/fp RSS)', r['speedup'], 1 / r['goal'], r['met']))
    if not bars:
        return False
    bars.reverse()
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(bars) + 1.5))
    ys = range(len(bars))
    ax.barh(ys, [b[1] for b in bars], color=['#3a9a4a' if b[3] else '#c8553d' for b in bars])
    ax.scatter([b[2] for b in bars], ys, marker='|', s=300, color='black', zorder=3, label='goal')
    for y, b in zip(ys, bars):
        ax.text(max(b[1], b[2]) * 1.12, y, f'{b[1]:.1f}x', va='center', fontsize=7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.set_xscale('log')
    ax.set_xlim(min(0.5, min(b[1] for b in bars) / 2), max(max(b[1], b[2]) for b in bars) * 4)
    ax.axvline(1, color='grey', lw=0.8)
    ax.set_xlabel('speed-up over prometheus_client (log scale); green = goal met')
    ax.set_title('fastprom vs prometheus_client')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'platform': platform.platform(),
            'python': platform.python_version(), 'fastprom': getattr(FP.mod._native, '__version__', '?'),
            'fastprom_build': getattr(FP.mod._native, 'build_profile', '?'),
            'prometheus_client': importlib.metadata.version('prometheus_client'),
            'loadavg_start': os.getloadavg()[0]}


def info_line(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['platform']}; Python {info['python']}; "
            f"fastprom {info['fastprom']} ({info['fastprom_build']}); prometheus_client {info['prometheus_client']}; "
            f"load {info['loadavg_start']:.2f} at start, {info.get('loadavg_end', 0):.2f} at end; "
            f"{info.get('seconds', 0):.0f} s")


def selected(cases: List[Case], only: Optional[str]) -> List[Case]:
    if not only:
        return cases
    globs = [g.strip() for g in only.split(',') if g.strip()]
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, g) for g in globs)]


def write_outputs(out: Path, rows: List[dict], info: dict, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    md = (f'# fastprom benchmarks\n\n{info_line(info)}\n\nCommand: `{command}`\n\n{table}\n\n'
          '![speed-ups](speedups.png)\n')
    (out / 'results.md').write_text(md)
    (out / 'results.json').write_text(json.dumps({'info': info, 'command': command, 'rows': rows}, indent=1))
    chart(rows, out / 'speedups.png')


def update_readme(readme: Path, rows: List[dict], info: dict, command: str, out: Path) -> None:
    """Replace the table of this Python version in the README (between its bench-table markers;
    a version without a table yet gets one after the last table)."""
    version = '.'.join(platform.python_version_tuple()[:2])
    start, end = f'<!-- bench-table {version} -->', f'<!-- /bench-table {version} -->'
    text = readme.read_text()
    root, out = readme.parent.resolve(), out.resolve()
    picture = f'\n![speed-ups]({out.relative_to(root)}/speedups.png)\n' if out.is_relative_to(root) else '\n'
    section = (f'{start}\n#### Python {version}\n\n{info_line(info)}\n\nCommand: `{command}`\n\n'
               f'{markdown_table(rows)}\n{picture}{end}')
    if start in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
    else:
        last_end = text.rindex('<!-- /bench-table')
        cut = text.index('-->', last_end) + len('-->')
        before, after = text[:cut] + '\n\n', text[cut:]
    readme.write_text(before + section + after)


MAIN_PYTHON = (3, 11)   # the Python of the project's CI run and of benches/results/ itself


def default_out() -> Path:
    if sys.version_info[:2] == MAIN_PYTHON:
        return HERE / 'results'
    return HERE / 'results' / f'py{sys.version_info[0]}.{sys.version_info[1]}'


def without_python_flag(argv: List[str]) -> List[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == '--python':
            skip = True
        elif not a.startswith('--python='):
            out.append(a)
    return out


def bench_venv(python: str) -> Path:
    """A venv for `python` with prometheus_client 0.26.0 and a fresh release wheel of fastprom
    built for that interpreter (cargo rebuilds only what changed)."""
    version = subprocess.run([python, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    venv = HERE / '.venvs' / f'py{version}'
    pip = [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q']
    if not (venv / 'bin' / 'python').exists():
        subprocess.run([python, '-m', 'venv', str(venv)], check=True)
        subprocess.run(pip + ['prometheus_client==0.26.0'], check=True)
    wheels = venv / 'wheels'
    for old in wheels.glob('*.whl'):
        old.unlink()
    subprocess.run(['maturin', 'build', '--release', '-q', '-i', python, '-o', str(wheels)],
                   cwd=HERE.parent, check=True)
    subprocess.run(pip + ['--force-reinstall', '--no-deps', *map(str, wheels.glob('*.whl'))], check=True)
    return venv


def run_under(python: str, argv: List[str]) -> int:
    """This script with `argv`, under `python` (see bench_venv)."""
    venv = bench_venv(python)
    return subprocess.run([str(venv / 'bin' / 'python'), str(Path(__file__).resolve()), *argv]).returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='fewer iterations (about 2 minutes)')
    p.add_argument('--only', help='comma-separated globs of row ids, e.g. "counter_inc,hist15_*"')
    p.add_argument('--out', default=str(default_out()),
                   help='output directory (default benches/results/, benches/results/pyX.Y/ on Pythons but 3.11)')
    p.add_argument('--readme', action='store_true', help="also put the table in README.md's bench-table section")
    p.add_argument('--python', metavar='PATH',
                   help='run under this interpreter, in a venv of its own (benches/.venvs/) with a release '
                        'wheel of fastprom built for it and prometheus_client 0.26.0')
    p.add_argument('--memory-child', nargs=4, metavar=('LIB', 'CLASS', 'N', 'LABELS'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.memory_child:
        lib, cls, n, labels = args.memory_child
        memory_child(lib, cls, int(n), int(labels))
        return 0
    if args.python:
        return run_under(args.python, without_python_flag(argv if argv is not None else sys.argv[1:]))

    load_libs()
    cfg = QUICK if args.quick else FULL
    cases = selected(CASES, args.only)
    if not cases:
        p.error(f'--only {args.only!r} matches no row; ids: ' + ', '.join(c.id for c in CASES))
    command = ' '.join(['python benches/run.py'] + [shlex.quote(a) for a in (argv or sys.argv[1:])])
    info = machine_info()
    start = time.monotonic()
    rows = []
    print('| ' + ' | '.join(HEADER) + ' |', flush=True)
    errors = 0
    for case in cases:
        try:
            r = RUNNERS[case.kind](case, cfg)
        except Exception as exc:       # report it, keep measuring the other rows
            traceback.print_exc()
            errors += 1
            r = row(case, 'ns', None, None, status='error', notes=f'{type(exc).__name__}: {exc}'[:200])
        r['met'] = judge(r)
        rows.append(r)
        print('| ' + ' | '.join(table_rows([r])[0]) + ' |', flush=True)
    fl = floor_row(rows)
    if fl:
        rows.insert(0, fl)
        print('| ' + ' | '.join(table_rows([fl])[0]) + ' |', flush=True)
    info['loadavg_end'] = os.getloadavg()[0]
    info['seconds'] = time.monotonic() - start
    write_outputs(Path(args.out), rows, info, command)
    print(f'\n{info_line(info)}\nwrote {args.out}/results.md, results.json, speedups.png')
    if args.readme:
        update_readme(HERE.parent / 'README.md', rows, info, command, Path(args.out))
    if errors:
        print(f'{errors} row(s) failed: see "error" in the table', file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
