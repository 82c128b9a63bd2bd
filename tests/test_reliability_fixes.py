"""Regression tests for issue 18's small fixes (label-name scaling)."""

import time

import prometheus_client
import pytest

import fastprom


def _creation_seconds(module, n):
    names = ['l%d' % i for i in range(n)]
    best = float('inf')
    for _ in range(3):
        start = time.perf_counter()
        module.Counter('m', 'd', names, registry=None)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize('module', [fastprom, prometheus_client])
def test_label_name_validation_scales_linearly(module):
    # Quadratic validation makes 4x the names cost ~16x; linear ~4x. Allow generous noise.
    small = _creation_seconds(module, 10_000)
    large = _creation_seconds(module, 40_000)
    assert large / max(small, 1e-4) < 8


def test_many_label_names_create_and_render_like_the_reference():
    names = ['l%d' % i for i in range(2000)] + ['l5']
    outputs = []
    for module in (fastprom, prometheus_client):
        registry = module.CollectorRegistry()
        counter = module.Counter('m', 'd', names, registry=registry)
        counter.labels(*[str(i) for i in range(len(names))]).inc()
        outputs.append(b'\n'.join(l for l in module.generate_latest(registry).splitlines()
                                  if b'_created' not in l))
    assert outputs[0] == outputs[1]



@pytest.mark.parametrize('unit', [None, ''])
@pytest.mark.parametrize('kind', ['Counter', 'Gauge', 'Histogram', 'Summary'])
def test_a_false_unit_writes_no_unit_line_as_the_reference(kind, unit):
    from fastprom.openmetrics.exposition import generate_latest as fastprom_om
    from prometheus_client.openmetrics.exposition import generate_latest as reference_om

    outputs = []
    for module, render in ((fastprom, fastprom_om), (prometheus_client, reference_om)):
        registry = module.CollectorRegistry()
        metric = getattr(module, kind)('m', 'd', unit=unit, registry=registry)
        outputs.append((metric._unit, metric._name, [l for l in render(registry).splitlines()
                                                     if b'_created' not in l]))
    assert outputs[0] == outputs[1]
    assert not any(l.startswith(b'# UNIT') for l in outputs[0][2])


def test_numpy_scalars_land_in_the_reference_buckets():
    np = pytest.importorskip('numpy')
    values = [np.float32(0.1), np.float16(0.01), np.float32(2.5), np.float32('nan'), np.int64(3),
              np.float32(1e30), np.float64(0.1)]
    outputs = []
    for module in (fastprom, prometheus_client):
        registry = module.CollectorRegistry()
        histogram = module.Histogram('h', 'd', registry=registry)
        for value in values:
            histogram.observe(value)
        outputs.append([l for l in module.generate_latest(registry).splitlines()
                        if b'_created' not in l])
    assert outputs[0] == outputs[1]
