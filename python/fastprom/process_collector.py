"""Collector for process CPU, memory, start time and file descriptors, read from /proc."""

import os
from typing import Callable, Iterable, List, Optional, Union

from .metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from .registry import Collector, CollectorRegistry, REGISTRY


def _page_size() -> int:
    try:
        import resource
    except ImportError:  # not a Unix
        return 4096
    return resource.getpagesize()


_PAGESIZE = _page_size()


def _clock_ticks() -> float:
    """Clock ticks per second, the unit of the times in /proc/<pid>/stat (100 if unknown)."""
    try:
        return os.sysconf('SC_CLK_TCK')
    except (ValueError, TypeError, AttributeError, OSError):
        return 100.0


def _read_btime(proc: str) -> Optional[float]:
    """The boot time in <proc>/stat, None when the file has no btime line."""
    with open(os.path.join(proc, 'stat'), 'rb') as f:
        btime = [line for line in f if line.startswith(b'btime ')]
    return float(btime[0].split()[1]) if btime else None


# Fields of /proc/<pid>/stat, counted after the parenthesised command name (which may contain
# spaces and parentheses) and the state field at index 0.
_UTIME, _STIME, _STARTTIME, _VSIZE, _RSS = 11, 12, 19, 20, 21


class ProcessCollector(Collector):
    """Collector for Standard Exports such as cpu and memory."""

    def __init__(self, namespace: str = '', pid: Callable[[], Union[int, str]] = lambda: 'self',
                 proc: str = '/proc', registry: Optional[CollectorRegistry] = REGISTRY):
        self._namespace, self._pid, self._proc = namespace, pid, proc
        self._prefix = f'{namespace}_process_' if namespace else 'process_'
        self._ticks = _clock_ticks()
        self._pagesize = _PAGESIZE
        # 0 when /proc cannot be read (collect() then returns nothing), None without a btime line.
        try:
            self._btime = _read_btime(proc)
        except OSError:
            self._btime = 0
        if registry:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        if not self._btime:
            return []
        pid_dir = os.path.join(self._proc, str(self._pid()).strip())
        families: List[Metric] = []
        # Each group is left out on its own when its files cannot be read.
        for group in (self._from_stat, self._from_fds):
            try:
                families += group(pid_dir)
            except OSError:
                pass
        return families

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._prefix + name, doc, value=value)

    def _from_stat(self, pid_dir: str) -> List[Metric]:
        with open(os.path.join(pid_dir, 'stat'), 'rb') as f:
            fields = f.read().rsplit(b')', 1)[-1].split()

        def seconds(index):
            return float(fields[index]) / self._ticks

        # Built in the reference's order, so a malformed file fails on the same field.
        return [
            self._gauge('virtual_memory_bytes', 'Virtual memory size in bytes.', float(fields[_VSIZE])),
            self._gauge('resident_memory_bytes', 'Resident memory size in bytes.',
                        float(fields[_RSS]) * self._pagesize),
            self._gauge('start_time_seconds', 'Start time of the process since unix epoch in seconds.',
                        seconds(_STARTTIME) + self._btime),
            CounterMetricFamily(self._prefix + 'cpu_seconds_total',
                                'Total user and system CPU time spent in seconds.',
                                value=seconds(_UTIME) + seconds(_STIME)),
        ]

    def _from_fds(self, pid_dir: str) -> List[Metric]:
        with open(os.path.join(pid_dir, 'limits'), 'rb') as f:
            limit = next((line for line in f if line.startswith(b'Max open file')), None)
        if limit is not None:
            max_fds = self._gauge('max_fds', 'Maximum number of open file descriptors.',
                                  float(limit.split()[3]))
        open_fds = self._gauge('open_fds', 'Number of open file descriptors.',
                               len(os.listdir(os.path.join(pid_dir, 'fd'))))
        # Like the reference, limits without that line raise UnboundLocalError here.
        return [open_fds, max_fds]


PROCESS_COLLECTOR = ProcessCollector()
"""Default ProcessCollector in default Registry REGISTRY."""
