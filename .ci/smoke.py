"""Smoke test for an installed fastprom wheel: run from outside the source tree by .ci/wheels.

Single-process: every metric type through a private registry and both exposition formats.
Multiprocess: worker processes write their files into a temporary directory, and a
MultiProcessCollector in a fresh process sums them.
"""

import os
import subprocess
import sys
import tempfile

import fastprom
from fastprom import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from fastprom.openmetrics.exposition import generate_latest as generate_openmetrics

here = os.path.dirname(os.path.abspath(fastprom.__file__))
assert "site-packages" in here, f"fastprom imported from {here}, not from the installed wheel"


def single_process():
    registry = CollectorRegistry()
    requests = Counter("smoke_requests", "Requests.", ["method"], registry=registry)
    requests.labels("get").inc(3)
    requests.labels(method="post").inc()
    Gauge("smoke_temperature", "Temperature.", registry=registry).set(21.5)
    latency = Histogram("smoke_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.5, 5):
        latency.observe(value)
    Summary("smoke_size_bytes", "Size.", registry=registry).observe(512)

    text = generate_latest(registry).decode()
    for line in (
        'smoke_requests_total{method="get"} 3.0',
        'smoke_requests_total{method="post"} 1.0',
        "smoke_temperature 21.5",
        'smoke_latency_seconds_bucket{le="0.1"} 1.0',
        'smoke_latency_seconds_bucket{le="1.0"} 2.0',
        'smoke_latency_seconds_bucket{le="+Inf"} 3.0',
        "smoke_latency_seconds_sum 5.55",
        "smoke_size_bytes_count 1.0",
        "smoke_size_bytes_sum 512.0",
    ):
        assert line in text.splitlines(), f"{line!r} missing from:\n{text}"
    om = generate_openmetrics(registry).decode()
    assert om.endswith("# EOF\n") and 'smoke_requests_total{method="get"} 3.0' in om, om


WORKER = """
import sys
from fastprom import Counter, Gauge, Histogram
n = int(sys.argv[1])
Counter("mp_jobs", "Jobs.", ["queue"]).labels("a").inc(n)
Gauge("mp_workers", "Workers.", multiprocess_mode="livesum").inc()
Histogram("mp_wait_seconds", "Wait.", buckets=(1.0,)).observe(n)
"""

COLLECT = """
from fastprom import CollectorRegistry, generate_latest
from fastprom.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def multi_process():
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
        for n in (1, 2, 4):
            subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True)
        files = sorted(os.listdir(directory))
        assert len(files) == 9 and all(f.endswith(".db") for f in files), files
        out = subprocess.run(
            [sys.executable, "-c", COLLECT], env=env, check=True, capture_output=True, text=True
        ).stdout
        lines = out.splitlines()
        for line in (
            'mp_jobs_total{queue="a"} 7.0',
            'mp_wait_seconds_bucket{le="1.0"} 1.0',
            'mp_wait_seconds_bucket{le="+Inf"} 3.0',
            "mp_wait_seconds_sum 7.0",
        ):
            assert line in lines, f"{line!r} missing from:\n{out}"
        # livesum drops a process's value only when it is marked dead; the exited workers were
        # not, so each still counts its 1.
        assert "mp_workers 3.0" in lines, out


single_process()
multi_process()
print(f"smoke: fastprom on Python {sys.version.split()[0]} from {here}: ok")
