"""Collector for Python garbage collection statistics."""

import gc
import platform
from typing import Iterable

from .metrics_core import CounterMetricFamily, Metric
from .registry import Collector, CollectorRegistry, REGISTRY

# (metric name, help text, key in gc.get_stats() entries)
_GC_COUNTERS = (
    ('python_gc_objects_collected', 'Objects collected during gc', 'collected'),
    ('python_gc_objects_uncollectable', 'Uncollectable objects found during GC', 'uncollectable'),
    ('python_gc_collections', 'Number of times this generation was collected', 'collections'),
)


def _has_gc_stats() -> bool:
    # Only CPython provides meaningful gc.get_stats().
    return platform.python_implementation() == 'CPython' and hasattr(gc, 'get_stats')


class GCCollector(Collector):
    """Collector for Garbage collection statistics."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        if _has_gc_stats():
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        families = [
            CounterMetricFamily(name, documentation, labels=['generation'])
            for name, documentation, _ in _GC_COUNTERS
        ]
        for generation, stats in enumerate(gc.get_stats()):
            for family, (_, _, key) in zip(families, _GC_COUNTERS):
                family.add_metric([str(generation)], value=stats[key])
        return families


GC_COLLECTOR = GCCollector()
"""Default GCCollector in default Registry REGISTRY."""
