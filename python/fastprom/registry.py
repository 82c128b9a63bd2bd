"""Collector registries."""

import copy
from contextlib import contextmanager
from threading import Lock
from typing import Dict, Iterable, List, Optional, Protocol, Set

from . import _native
from .metrics_core import Metric
from .samples import Sample


class DuplicateTimeseries(ValueError):
    """Raised by register() when a collector's names are already taken; .duplicates holds them."""

    def __init__(self, duplicates: Set[str]):
        super().__init__(f'Duplicated timeseries in CollectorRegistry: {duplicates}')
        self.duplicates: Set[str] = duplicates


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]:
        """Collect metrics."""


class _EmptyCollector:
    """Holds the name 'target_info' in a registry with target info: it has no samples of its own."""

    def collect(self) -> Iterable[Metric]:
        return []


_TYPE_SUFFIXES = {
    'counter': ['_total', '_created'],
    'summary': ['_sum', '_count', '_created'],
    'histogram': ['_bucket', '_sum', '_count', '_created'],
    'gaugehistogram': ['_bucket', '_gsum', '_gcount'],
    'info': ['_info'],
}

# Metric classes whose samples the native writer can produce itself: those that do not
# override how a fastprom metric collects. Filled on first sight of each class.
_NATIVE_RENDER: Dict[type, bool] = {}


def _merges_natively(collector) -> bool:
    """A MultiProcessCollector (not a subclass with its own collect) hands the writers its
    merged families directly."""
    if getattr(type(collector), '_merged_families', None) is None:
        return False  # every other collector: no import on the scrape path
    from .multiprocess import MultiProcessCollector
    return type(collector).collect is MultiProcessCollector.collect


def _renders_natively(collector) -> bool:
    cls = type(collector)
    known = _NATIVE_RENDER.get(cls)
    if known is None:
        natives = (_native.Counter, _native.Gauge, _native.Summary, _native.Histogram)
        native = next((c for c in cls.__mro__ if c in natives), None)
        known = native is not None and all(
            getattr(cls, name) is getattr(native, name)
            for name in ('collect', '_samples', '_multi_samples', '_child_samples')
        )
        _NATIVE_RENDER[cls] = known
    return known


class CollectorRegistry:
    """A registry of collectors, whose metrics it collects in registration order.

    A collector is any object with a collect() method, taking no argument, that returns
    Metric objects (consistent with the Prometheus exposition formats).
    """

    def __init__(self, auto_describe: bool = False, target_info: Optional[Dict[str, str]] = None,
                 support_collectors_without_names: bool = False):
        self._lock = Lock()
        # Bumped on every change, so the native HTTP server knows its render plan is stale.
        self._generation = _native.Generation()
        # Both directions of "collector produces (and owns) these sample names".
        self._names_to_collectors: Dict[str, Collector] = {}
        self._collector_to_names: Dict[Collector, List[str]] = {}
        # With auto_describe, a collector without describe() is described by a first collect().
        self._auto_describe = auto_describe
        # Collectors naming nothing; a restricted registry asks them all when this is on.
        self._support_collectors_without_names = support_collectors_without_names
        self._collectors_without_names: List[Collector] = []
        self._target_info: Optional[Dict[str, str]] = {}
        self.set_target_info(target_info)

    @contextmanager
    def _changing(self):
        """Hold the lock for a change; a change that completes moves the generation."""
        with self._lock:
            yield
            self._generation.bump()

    def register(self, collector: Collector) -> None:
        """Add a collector to the registry."""
        with self._changing():
            names = self._get_names(collector)
            taken = {name for name in names if name in self._names_to_collectors}
            if taken:
                raise DuplicateTimeseries(taken)
            self._names_to_collectors.update(dict.fromkeys(names, collector))
            self._collector_to_names[collector] = names
            if not names and self._support_collectors_without_names:
                self._collectors_without_names.append(collector)

    def unregister(self, collector: Collector) -> None:
        """Remove a collector from the registry."""
        with self._changing():
            owned = self._collector_to_names[collector]
            for name in owned:
                del self._names_to_collectors[name]
            del self._collector_to_names[collector]
            self._forget_nameless(collector)

    def _forget_nameless(self, collector) -> None:
        if collector in self._collectors_without_names:
            self._collectors_without_names.remove(collector)

    def _describer(self, collector):
        """What lists the collector's metrics for registration: describe(), else collect()
        when auto-describing, else nothing."""
        describe = getattr(collector, 'describe', None)
        if describe:
            return describe
        return collector.collect if self._auto_describe else None

    def _get_names(self, collector):
        """Get names of timeseries the collector produces and clashes with."""
        describe = self._describer(collector)
        if not describe:
            return []
        return [name for metric in describe() for name in _series_names(metric)]

    def _snapshot(self):
        with self._lock:
            collectors = copy.copy(self._collector_to_names)
            target_info = self._target_info_metric() if self._target_info else None
        return target_info, collectors

    def collect(self) -> Iterable[Metric]:
        """Yields metrics from the collectors in the registry."""
        target_info, collectors = self._snapshot()
        if target_info:
            yield target_info
        for collector in collectors:
            yield from collector.collect()

    def _render_plan(self) -> list:
        """What the native writer renders, in order: fastprom metrics as they are (it reads their
        cells directly), the metrics of every other collector already collected."""
        target_info, collectors = self._snapshot()
        plan: list = [target_info] if target_info else []
        for collector in collectors:
            if _renders_natively(collector):
                plan.append(collector)
            elif _merges_natively(collector):
                plan.append(collector._merged_families())
            else:
                plan.extend(collector.collect())
        return plan

    def restricted_registry(self, names: Iterable[str]) -> "RestrictedRegistry":
        """A view of this registry whose collect() returns only the samples named in names,
        for instance generate_latest(REGISTRY.restricted_registry(['a_timeseries']), escaping).

        Experimental."""
        return RestrictedRegistry(set(names), self)

    def set_target_info(self, labels: Optional[Dict[str, str]]) -> None:
        with self._changing():
            # While there is target info, the registry itself owns the name 'target_info'.
            owns_name = bool(self._target_info)
            if labels and not owns_name and 'target_info' in self._names_to_collectors:
                raise ValueError('CollectorRegistry already contains a target_info metric')
            if labels:
                self._names_to_collectors['target_info'] = _EmptyCollector()
            elif owns_name:
                self._names_to_collectors.pop('target_info', None)
            self._target_info = labels

    def get_target_info(self) -> Optional[Dict[str, str]]:
        with self._lock:
            return self._target_info

    def _target_info_metric(self) -> Metric:
        target = Metric('target', 'Target metadata', 'info')
        target.samples.append(Sample('target_info', self._target_info, 1))
        return target

    def get_sample_value(self, name: str, labels: Optional[Dict[str, str]] = None) -> Optional[float]:
        """Returns the sample value, or None if not found.

        Intended for use in unit tests.
        """
        if labels is None:
            labels = {}
        if type(self).collect is not CollectorRegistry.collect or type(labels) is not dict:
            return _find_sample(self.collect(), name, labels, None)
        target_info, collectors = self._snapshot()
        if target_info:
            value = _find_sample([target_info], name, labels, _NOT_FOUND)
            if value is not _NOT_FOUND:
                return value
        for collector in collectors:
            if _renders_natively(collector):
                # fastprom metrics answer from their cells without building samples.
                found, value = collector._sample_value(name, labels)
                if found is not None:
                    if found:
                        return value
                    continue
            value = _find_sample(collector.collect(), name, labels, _NOT_FOUND)
            if value is not _NOT_FOUND:
                return value
        return None


_NOT_FOUND = object()


def _find_sample(metrics, name, labels, default):
    """The value of the first sample named `name` with exactly `labels` (None is a value)."""
    for metric in metrics:
        for s in metric.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return default


def _series_names(metric) -> List[str]:
    """The family's name and the sample names its type adds to it."""
    name = metric.name
    return [name] + [name + suffix for suffix in _TYPE_SUFFIXES.get(metric.type, ())]


class RestrictedRegistry:
    """What restricted_registry() returns: the samples of a registry whose names are in a set."""

    def __init__(self, names: Iterable[str], registry: CollectorRegistry):
        self._name_set = set(names)
        self._registry = registry

    def _sources(self):
        """(the target info metric if asked for, the collectors that may have the names)."""
        registry, wanted = self._registry, self._name_set
        # Nameless collectors may produce anything, so they are always asked.
        sources = set(registry._collectors_without_names)
        with registry._lock:
            by_name = registry._names_to_collectors
            info = registry._target_info_metric() if 'target_info' in wanted and registry._target_info else None
            sources.update(by_name[n] for n in wanted if n != 'target_info' and n in by_name)
        return info, sources

    def collect(self) -> Iterable[Metric]:
        info, sources = self._sources()
        if info:
            yield info
        for collector in sources:
            restricted = (metric._restricted_metric(self._name_set) for metric in collector.collect())
            yield from filter(None, restricted)


REGISTRY = CollectorRegistry(auto_describe=True)
