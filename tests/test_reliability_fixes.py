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

