#!/usr/bin/env python3
"""Parse speed: fastprom's parsers vs prometheus_client's.

    python benches/parsers.py [--quick]

Inputs are expositions of 10k and 100k series (gauges and counters with two labels, histograms
with a label and 10 buckets), written once by prometheus_client's writers, in the Prometheus
text format and in OpenMetrics. Each round times one full iteration of
`text_string_to_metric_families` for both libraries (interleaved, order alternating); the table
shows the medians. `run(quick)` returns the rows for the main benchmark runner.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Callable, Dict, List

import prometheus_client
import prometheus_client.openmetrics.exposition as ref_om_expo
import prometheus_client.openmetrics.parser as ref_om
import prometheus_client.parser as ref_text

import fastprom.openmetrics.parser as fast_om
import fastprom.parser as fast_text

GOAL = 20.0


def exposition(series: int, openmetrics: bool) -> str:
    """An exposition with about `series` sample lines."""
    r = prometheus_client.CollectorRegistry()
    g = prometheus_client.Gauge('app_queue_depth', 'Items waiting in a queue.', ['host', 'queue'],
                                registry=r)
    c = prometheus_client.Counter('app_requests', 'Requests served.', ['method', 'path'],
                                  registry=r)
    h = prometheus_client.Histogram('app_request_duration_seconds', 'Request latency.', ['route'],
                                    registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5))
    # Lines per child: gauge 1, counter 2 (_total, _created), histogram 13.
    unit = series // 100
    for i in range(unit * 40):
        g.labels(f'host-{i % 97}.example.com', f'q{i}').set(i * 0.37)
    for i in range(unit * 15):
        c.labels(('GET', 'POST', 'PUT')[i % 3], f'/api/v1/items/{i}').inc(i % 13 + 1)
    for i in range(unit * 2):
        child = h.labels(f'/route/{i}')
        for k in range(20):
            child.observe((i * 7 + k) % 100 / 37.0)
    if openmetrics:
        return ref_om_expo.generate_latest(r).decode()
    return prometheus_client.generate_latest(r).decode()


def consume(parse: Callable, text: str) -> int:
    n = 0
    for m in parse(text):
        n += len(m.samples)
    return n


def measure(ref: Callable, fast: Callable, text: str, rounds: int) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {'ref': [], 'fast': []}
    assert consume(ref, text) == consume(fast, text)
    for i in range(rounds):
        order = [('ref', ref), ('fast', fast)]
        if i % 2:
            order.reverse()
        for key, fn in order:
            gc.collect()
            t0 = time.perf_counter()
            consume(fn, text)
            times[key].append((time.perf_counter() - t0) * 1000)
    return times


CASES = [
    ('parse_text_10k', 'parse Prometheus text, 10k series', 10_000, False),
    ('parse_om_10k', 'parse OpenMetrics, 10k series', 10_000, True),
    ('parse_text_100k', 'parse Prometheus text, 100k series', 100_000, False),
    ('parse_om_100k', 'parse OpenMetrics, 100k series', 100_000, True),
]


def run(quick: bool = False) -> List[dict]:
    """The benchmark rows: id, label, ref_ms, fast_ms, speedup, goal (plus series, rounds)."""
    rows = []
    for cid, label, series, om in CASES:
        text = exposition(series, om)
        lines = sum(1 for line in text.splitlines() if line and not line.startswith('#'))
        rounds = (3 if quick else 9) if series <= 10_000 else (1 if quick else 3)
        ref, fast = (ref_om, fast_om) if om else (ref_text, fast_text)
        t = measure(ref.text_string_to_metric_families, fast.text_string_to_metric_families,
                    text, rounds)
        ref_ms, fast_ms = statistics.median(t['ref']), statistics.median(t['fast'])
        rows.append({'id': cid, 'label': label, 'ref_ms': ref_ms, 'fast_ms': fast_ms,
                     'speedup': ref_ms / fast_ms, 'goal': GOAL, 'series': lines,
                     'rounds': rounds})
    return rows


def table(rows: List[dict]) -> str:
    out = ['| case | series | prometheus_client ms | fastprom ms | speed-up | goal |',
           '|---|---:|---:|---:|---:|---:|']
    for r in rows:
        ok = 'ok' if r['speedup'] >= r['goal'] else 'MISSED'
        out.append(f"| {r['label']} | {r['series']} | {r['ref_ms']:.1f} | {r['fast_ms']:.2f} | "
                   f"{r['speedup']:.1f}x | >= {r['goal']:.0f}x {ok} |")
    return '\n'.join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='fewer rounds')
    args = ap.parse_args(argv)
    print(table(run(args.quick)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
