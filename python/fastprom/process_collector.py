"""Collector for process CPU, memory, start time and file descriptors, read from /proc."""

import os
from typing import Callable, Iterable, Optional, Union

from .metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from .registry import Collector, CollectorRegistry, REGISTRY

try:
    import resource

    _PAGESIZE = resource.getpagesize()
except ImportError:
    # Not Unix
    _PAGESIZE = 4096


class ProcessCollector(Collector):
    """Collector for Standard Exports such as cpu and memory."""

    def __init__(self,
                 namespace: str = '',
                 pid: Callable[[], Union[int, str]] = lambda: 'self',
                 proc: str = '/proc',
                 registry: Optional[CollectorRegistry] = REGISTRY):
        self._namespace = namespace
        self._pid = pid
        self._proc = proc
        self._prefix = namespace + '_process_' if namespace else 'process_'
        self._ticks = 100.0
        try:
            self._ticks = os.sysconf('SC_CLK_TCK')
        except (ValueError, TypeError, AttributeError, OSError):
            pass
        self._pagesize = _PAGESIZE

        # Also tells whether /proc is readable at all; collect() returns [] if not.
        self._btime = 0
        try:
            self._btime = self._boot_time()
        except OSError:
            pass
        if registry:
            registry.register(self)

    def _boot_time(self):
        with open(os.path.join(self._proc, 'stat'), 'rb') as stat:
            for line in stat:
                if line.startswith(b'btime '):
                    return float(line.split()[1])

    def collect(self) -> Iterable[Metric]:
        if not self._btime:
            return []

        pid_dir = os.path.join(self._proc, str(self._pid()).strip())
        result = []
        try:
            result.extend(self._stat_metrics(pid_dir))
        except OSError:
            pass
        try:
            result.extend(self._fd_metrics(pid_dir))
        except OSError:
            pass
        return result

    def _stat_metrics(self, pid_dir):
        with open(os.path.join(pid_dir, 'stat'), 'rb') as stat:
            # Fields after the parenthesised command name (which may contain spaces).
            parts = stat.read().split(b')')[-1].split()
        prefix = self._prefix
        vmem = GaugeMetricFamily(prefix + 'virtual_memory_bytes',
                                 'Virtual memory size in bytes.', value=float(parts[20]))
        rss = GaugeMetricFamily(prefix + 'resident_memory_bytes', 'Resident memory size in bytes.',
                                value=float(parts[21]) * self._pagesize)
        start_time_secs = float(parts[19]) / self._ticks
        start_time = GaugeMetricFamily(prefix + 'start_time_seconds',
                                       'Start time of the process since unix epoch in seconds.',
                                       value=start_time_secs + self._btime)
        utime = float(parts[11]) / self._ticks
        stime = float(parts[12]) / self._ticks
        cpu = CounterMetricFamily(prefix + 'cpu_seconds_total',
                                  'Total user and system CPU time spent in seconds.',
                                  value=utime + stime)
        return [vmem, rss, start_time, cpu]

    def _fd_metrics(self, pid_dir):
        with open(os.path.join(pid_dir, 'limits'), 'rb') as limits:
            for line in limits:
                if line.startswith(b'Max open file'):
                    max_fds = GaugeMetricFamily(self._prefix + 'max_fds',
                                                'Maximum number of open file descriptors.',
                                                value=float(line.split()[3]))
                    break
        open_fds = GaugeMetricFamily(self._prefix + 'open_fds',
                                     'Number of open file descriptors.',
                                     len(os.listdir(os.path.join(pid_dir, 'fd'))))
        # Like the reference, a limits file without the line raises UnboundLocalError here.
        return [open_fds, max_fds]


PROCESS_COLLECTOR = ProcessCollector()
"""Default ProcessCollector in default Registry REGISTRY."""
