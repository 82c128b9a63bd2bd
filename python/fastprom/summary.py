"""A Summary with quantiles by default, for users of the prometheus-summary package:
`from fastprom.summary import Summary` in place of `from prometheus_summary import Summary`.

It takes that package's arguments (`invariants`, `max_age_seconds`, `age_buckets`) with its
defaults: quantiles 0.5, 0.9 and 0.99 (errors 0.05, 0.01, 0.001) over 10 minutes in 5 steps.
"""

from typing import Iterable, Optional, Sequence, Tuple

from . import metrics
from .registry import CollectorRegistry, REGISTRY

DEFAULT_INVARIANTS = ((0.50, 0.05), (0.90, 0.01), (0.99, 0.001))


class Summary(metrics.Summary):
    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 invariants: Sequence[Tuple[float, float]] = DEFAULT_INVARIANTS,
                 max_age_seconds: float = 10 * 60, age_buckets: int = 5, **kwargs):
        metrics.Summary.__init__(self, name, documentation, labelnames, namespace, subsystem, unit,
                                 registry, _labelvalues, invariants=invariants,
                                 max_age_seconds=max_age_seconds, age_buckets=age_buckets, **kwargs)
