"""Collector for Python platform information (python_info)."""

import platform as pf
from typing import Any, Dict, Iterable, Optional

from .metrics_core import GaugeMetricFamily, Metric
from .registry import Collector, CollectorRegistry, REGISTRY


def _python_labels(p: Any) -> Dict[str, str]:
    major, minor, patchlevel = p.python_version_tuple()
    labels = {'version': p.python_version(), 'implementation': p.python_implementation()}
    labels.update(zip(('major', 'minor', 'patchlevel'), (major, minor, patchlevel)))
    return labels


def _jvm_labels(p: Any) -> Dict[str, str]:
    # java_ver() is (release, vendor, (vm_name, vm_release, vm_vendor), os_info).
    release, _vendor, (vm_name, vm_release, vm_vendor), _os = p.java_ver()
    return {'jvm_version': release, 'jvm_release': vm_release, 'jvm_vendor': vm_vendor, 'jvm_name': vm_name}


class PlatformCollector(Collector):
    """Collector for python platform information"""

    def __init__(self, registry: Optional[CollectorRegistry] = REGISTRY, platform: Optional[Any] = None):
        self._platform = platform if platform is not None else pf
        labels = _python_labels(self._platform)
        if self._platform.system() == "Java":
            labels.update(_jvm_labels(self._platform))
        # Platform facts do not change: one family, built once, returned by every collect().
        info = GaugeMetricFamily("python_info", "Python platform information", labels=list(labels))
        info.add_metric(list(labels.values()), 1)
        self._metrics = [info]
        if registry:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return self._metrics


PLATFORM_COLLECTOR = PlatformCollector()
"""PlatformCollector in default Registry REGISTRY"""
