"""Summary quantiles in multiprocess mode (issue 16): real processes write sketches to one
directory, fastprom's collector merges them within 1% of the exact quantiles' values."""

import math
import os
import subprocess
import sys
import textwrap
import time

import prometheus_client
import prometheus_client.multiprocess
from prometheus_client.openmetrics import exposition as ref_openmetrics
import pytest

import fastprom
from fastprom import multiprocess
from fastprom.openmetrics import exposition as fp_openmetrics

from test_summary_quantiles import _replayed_in_the_reference

# Executed by the writers and by the test, so both draw the same values.
VALUES = textwrap.dedent('''
    import random
    DISTRIBUTIONS = {
        'uniform': lambda r: r.random(),
        'exponential': lambda r: r.expovariate(3.0),
        'lognormal': lambda r: r.lognormvariate(0, 2),
        'normal': lambda r: r.gauss(0, 1),
        'bimodal': lambda r: r.gauss(0.05, 0.01) if r.random() < 0.8 else r.gauss(3.0, 0.5),
        'discrete': lambda r: float(r.randrange(5)),
    }

    def values(distribution, seed, n):
        rng = random.Random(f'{distribution}-{seed}')
        draw = DISTRIBUTIONS[distribution]
        return [draw(rng) for _ in range(n)]
''')
exec(VALUES)

OBJECTIVES = {0.01: 0.001, 0.1: 0.01, 0.5: 0.05, 0.9: 0.01, 0.99: 0.001, 0.999: 0.0001}

WRITER = VALUES + textwrap.dedent('''
    import sys
    from fastprom import Summary
    seed, n = int(sys.argv[1]), int(sys.argv[2])
    objectives = eval(sys.argv[3])
    s = Summary('job_seconds', 'Job time.', ['dist'], objectives=objectives, max_age=float(sys.argv[4]),
                age_buckets=int(sys.argv[5]))
    for distribution in sys.argv[6:]:
        child = s.labels(distribution)
        drawn = values(distribution, seed, n)
        child.observe_many(drawn[:n // 2])
        for v in drawn[n // 2:]:
            child.observe(v)
''')


def run_writers(path, seeds, n, distributions, max_age=600.0, age_buckets=5, objectives=OBJECTIVES):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(path))
    args = [str(n), repr(objectives), str(max_age), str(age_buckets), *distributions]
    procs = [subprocess.Popen([sys.executable, '-c', WRITER, str(seed), *args], env=env) for seed in seeds]
    for p in procs:
        assert p.wait() == 0
    return [p.pid for p in procs]


def fastprom_registry(path):
    registry = fastprom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    return registry


def reference_registry(path):
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.multiprocess.MultiProcessCollector(registry, path=str(path))
    return registry


def quantiles(registry, distribution):
    return {q: registry.get_sample_value('job_seconds', {'dist': distribution, 'quantile': str(q)})
            for q in OBJECTIVES}


def exact_quantile(ordered, q):
    """The value of the observation of rank ceil(q n) (1-based), which the sketch answers for."""
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def test_quantiles_merged_across_processes_are_within_one_percent_of_the_value(tmp_path):
    seeds, n = range(1, 5), 40_000
    run_writers(tmp_path, seeds, n, DISTRIBUTIONS)
    registry = fastprom_registry(tmp_path)
    for distribution in DISTRIBUTIONS:
        ordered = sorted(v for seed in seeds for v in values(distribution, seed, n))
        labels = {'dist': distribution}
        assert registry.get_sample_value('job_seconds_count', labels) == len(ordered)
        estimates = quantiles(registry, distribution)
        for q, estimate in estimates.items():
            exact = exact_quantile(ordered, q)
            assert abs(estimate - exact) <= 0.01 * abs(exact), (distribution, q, estimate, exact)


def text_without_quantiles(text):
    return b''.join(line for line in text.splitlines(keepends=True) if b'quantile=' not in line)


def test_reference_collector_reads_the_directory_and_sees_count_and_sum(tmp_path):
    pids = run_writers(tmp_path, [7, 8, 9], 1000, ['lognormal', 'discrete'])
    assert {p.suffix for p in tmp_path.iterdir()} >= {'.db', '.fps'}
    for _ in range(2):
        ours = fastprom.generate_latest(fastprom_registry(tmp_path))
        theirs = prometheus_client.generate_latest(reference_registry(tmp_path))
        assert b'quantile=' in ours and b'quantile=' not in theirs
        assert text_without_quantiles(ours) == theirs
        # And again with the dead processes' files folded into the archives.
        multiprocess.mark_process_dead(pids[0], str(tmp_path))
        multiprocess.compact(str(tmp_path))


def test_quantile_samples_come_before_count_and_sum_in_text_and_openmetrics(tmp_path):
    objectives = {0.5: 0.05, 0.9: 0.01}
    run_writers(tmp_path, [1, 2], 500, ['uniform', 'exponential'], objectives=objectives)
    registry = fastprom_registry(tmp_path)
    reference = _replayed_in_the_reference(registry)
    text = fastprom.generate_latest(registry)
    assert text == prometheus_client.generate_latest(reference)
    assert fp_openmetrics.generate_latest(registry) == ref_openmetrics.generate_latest(reference)
    lines = text.decode().splitlines()
    for distribution in ('uniform', 'exponential'):
        series = [line for line in lines if f'dist="{distribution}"' in line]
        assert [line.split(' ')[0] for line in series] == [
            f'job_seconds{{dist="{distribution}",quantile="0.5"}}',
            f'job_seconds{{dist="{distribution}",quantile="0.9"}}',
            f'job_seconds_count{{dist="{distribution}"}}',
            f'job_seconds_sum{{dist="{distribution}"}}',
        ]
    # MultiProcessCollector.collect() (Metric objects) has them in the same order.
    [family] = [f for f in multiprocess.MultiProcessCollector(None, str(tmp_path)).collect()
                if f.name == 'job_seconds']
    assert [s.labels.get('quantile') for s in family.samples[:4]] == ['0.5', '0.9', None, None]


def test_the_window_ages_out_on_time_and_survives_compaction(tmp_path):
    # Windows of one second; an observation stays for two or three of them.
    [pid] = run_writers(tmp_path, [3], 100, ['uniform'], max_age=2, age_buckets=2)
    written = time.time()
    registry = fastprom_registry(tmp_path)
    assert not any(math.isnan(v) for v in quantiles(registry, 'uniform').values())
    multiprocess.mark_process_dead(pid, str(tmp_path))
    assert not (tmp_path / f'summary_sketch_{pid}.fps').exists()
    assert (tmp_path / 'summary_sketch_archive.fps').exists()
    folded = quantiles(fastprom_registry(tmp_path), 'uniform')
    assert folded == quantiles(registry, 'uniform')
    time.sleep(max(0.0, math.floor(written) + 3.05 - time.time()))
    after = fastprom_registry(tmp_path)
    assert all(math.isnan(v) for v in quantiles(after, 'uniform').values())
    assert after.get_sample_value('job_seconds_count', {'dist': 'uniform'}) == 100


FORKING_WRITER = textwrap.dedent('''
    import os
    from fastprom import Summary
    s = Summary('forked_seconds', 'Forked.', objectives={0.5: 0.05})
    for _ in range(100):
        s.observe(1.0)
    child = os.fork()
    if child == 0:
        for _ in range(300):
            s.observe(100.0)
        os._exit(0)
    os.waitpid(child, 0)
''')


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='fork')
def test_a_forked_child_writes_its_own_sketch(tmp_path):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    subprocess.run([sys.executable, '-c', FORKING_WRITER], env=env, check=True)
    assert len(list(tmp_path.glob('summary_sketch_*.fps'))) == 2
    registry = fastprom_registry(tmp_path)
    assert registry.get_sample_value('forked_seconds_count') == 400
    median = registry.get_sample_value('forked_seconds', {'quantile': '0.5'})
    assert abs(median - 100.0) <= 1.0


REMOVING_WRITER = textwrap.dedent('''
    from fastprom import Summary
    s = Summary('removed_seconds', 'Removed.', ['route'], objectives={0.5: 0.05})
    kept = s.labels('/a')
    for _ in range(10):
        kept.observe(100.0)
    s.remove('/a')
    kept.observe(100.0)        # a handle kept on a removed child is no longer exported
    for _ in range(3):
        s.labels('/a').observe(1.0)
''')


def test_a_removed_series_starts_again_without_its_old_observations(tmp_path):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    subprocess.run([sys.executable, '-c', REMOVING_WRITER], env=env, check=True)
    registry = fastprom_registry(tmp_path)
    assert registry.get_sample_value('removed_seconds_count', {'route': '/a'}) == 3
    assert registry.get_sample_value('removed_seconds', {'route': '/a', 'quantile': '0.5'}) == pytest.approx(1, rel=0.01)


def test_no_warning_in_multiprocess_mode(tmp_path):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    program = ("import warnings; warnings.simplefilter('error'); from fastprom import Summary; "
               "Summary('s', 's', objectives={0.5: 0.05}).observe(1)")
    subprocess.run([sys.executable, '-c', program], env=env, check=True)


NAMED_WRITER = textwrap.dedent('''
    import sys
    from fastprom import Summary, values
    values.ValueClass = values.MultiProcessValue(lambda: 'worker' + sys.argv[1])
    s = Summary('named_seconds', 'Named.', objectives={0.5: 0.05})
    for _ in range(int(sys.argv[2])):
        s.observe(float(sys.argv[3]))
''')


def test_workers_named_by_a_process_identifier_write_their_own_sketches(tmp_path):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for worker, count, value in (('1', '10', '2.0'), ('2', '30', '50.0')):
        subprocess.run([sys.executable, '-c', NAMED_WRITER, worker, count, value], env=env, check=True)
    assert sorted(p.name for p in tmp_path.glob('*.fps')) == ['summary_sketch_worker1.fps',
                                                             'summary_sketch_worker2.fps']
    registry = fastprom_registry(tmp_path)
    assert registry.get_sample_value('named_seconds_count') == 40
    assert registry.get_sample_value('named_seconds', {'quantile': '0.5'}) == pytest.approx(50, rel=0.01)
