"""Collector registries."""

import copy
from threading import Lock
from typing import Dict, Iterable, List, Optional, Protocol, Set

from . import _native
from .metrics_core import Metric


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]:
        """Collect metrics."""


class _EmptyCollector:
    def collect(self) -> Iterable[Metric]:
        return []


class DuplicateTimeseries(ValueError):
    def __init__(self, duplicates: Set[str]):
        msg = 'Duplicated timeseries in CollectorRegistry: {}'.format(duplicates)
        super().__init__(msg)
        self.duplicates: Set[str] = duplicates


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
    """Metric collector registry.

    Collectors must have a no-argument method 'collect' that returns a list of
    Metric objects. The returned metrics should be consistent with the Prometheus
    exposition formats.
    """

    def __init__(self, auto_describe: bool = False, target_info: Optional[Dict[str, str]] = None,
                 support_collectors_without_names: bool = False):
        self._collector_to_names: Dict[Collector, List[str]] = {}
        self._names_to_collectors: Dict[str, Collector] = {}
        self._auto_describe = auto_describe
        self._lock = Lock()
        self._target_info: Optional[Dict[str, str]] = {}
        self._support_collectors_without_names = support_collectors_without_names
        self._collectors_without_names: List[Collector] = []
        # Bumped on every change, so the native HTTP server knows its render plan is stale.
        self._generation = _native.Generation()
        self.set_target_info(target_info)

    def register(self, collector: Collector) -> None:
        """Add a collector to the registry."""
        with self._lock:
            names = self._get_names(collector)
            duplicates = set(self._names_to_collectors).intersection(names)
            if duplicates:
                raise DuplicateTimeseries(duplicates)
            for name in names:
                self._names_to_collectors[name] = collector
            self._collector_to_names[collector] = names
            if self._support_collectors_without_names and not names:
                self._collectors_without_names.append(collector)
            self._generation.bump()

    def unregister(self, collector: Collector) -> None:
        """Remove a collector from the registry."""
        with self._lock:
            for name in self._collector_to_names[collector]:
                del self._names_to_collectors[name]
            del self._collector_to_names[collector]
            if collector in self._collectors_without_names:
                self._collectors_without_names.remove(collector)
            self._generation.bump()

    def _get_names(self, collector):
        """Get names of timeseries the collector produces and clashes with."""
        desc_func = None
        try:
            desc_func = collector.describe
        except AttributeError:
            pass
        if not desc_func and self._auto_describe:
            desc_func = collector.collect

        if not desc_func:
            return []

        result = []
        for metric in desc_func():
            result.append(metric.name)
            for suffix in _TYPE_SUFFIXES.get(metric.type, []):
                result.append(metric.name + suffix)
        return result

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
        """Returns an object whose collect() returns only samples with the given names.

            generate_latest(REGISTRY.restricted_registry(['a_timeseries']), escaping)

        Experimental."""
        names = set(names)
        return RestrictedRegistry(names, self)

    def set_target_info(self, labels: Optional[Dict[str, str]]) -> None:
        with self._lock:
            if labels:
                if not self._target_info and 'target_info' in self._names_to_collectors:
                    raise ValueError('CollectorRegistry already contains a target_info metric')
                self._names_to_collectors['target_info'] = _EmptyCollector()
            elif self._target_info:
                self._names_to_collectors.pop('target_info', None)
            self._target_info = labels
            self._generation.bump()

    def get_target_info(self) -> Optional[Dict[str, str]]:
        with self._lock:
            return self._target_info

    def _target_info_metric(self):
        m = Metric('target', 'Target metadata', 'info')
        m.add_sample('target_info', self._target_info, 1)
        return m

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


class RestrictedRegistry:
    def __init__(self, names: Iterable[str], registry: CollectorRegistry):
        self._name_set = set(names)
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        collectors = set(self._registry._collectors_without_names)
        target_info_metric = None
        with self._registry._lock:
            if 'target_info' in self._name_set and self._registry._target_info:
                target_info_metric = self._registry._target_info_metric()
            for name in self._name_set:
                if name != 'target_info' and name in self._registry._names_to_collectors:
                    collectors.add(self._registry._names_to_collectors[name])
        if target_info_metric:
            yield target_info_metric
        for collector in collectors:
            for metric in collector.collect():
                m = metric._restricted_metric(self._name_set)
                if m:
                    yield m


REGISTRY = CollectorRegistry(auto_describe=True)
