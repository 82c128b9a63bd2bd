"""Multiprocess mode: every process writes its metrics to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's file format), and a collector merges them.

The merge, the file reading and the compaction of dead processes' files are native."""
import glob
import os
import warnings

from . import _native, values
# Importable from here, as from the reference's module.
from .metrics import Gauge  # noqa: F401
from .metrics_core import Metric  # noqa: F401
from .mmap_dict import MmapedDict  # noqa: F401
from .samples import Sample  # noqa: F401
from .utils import floatToGoString  # noqa: F401

__all__ = ['MultiProcessCollector', 'mark_process_dead', 'compact']


def _directory_from_env():
    values._adopt_legacy_directory()
    return os.environ.get('PROMETHEUS_MULTIPROC_DIR')


def _warn_skipped(skipped):
    for path, reason in skipped:
        warnings.warn(f'multiprocess file {path} skipped: {reason}', UserWarning)


class MultiProcessCollector:
    """Collector for files for multi-process mode."""

    def __init__(self, registry, path=None):
        if path is None:
            path = _directory_from_env()
        if not path or not os.path.isdir(path):
            raise ValueError('env PROMETHEUS_MULTIPROC_DIR is not set or not a directory')
        self._path = path
        # Remembers the keys of entries already read: files only grow.
        self._reader = _native.MultiProcessReader(os.path.abspath(path))
        if registry:
            registry.register(self)

    @staticmethod
    def merge(files, accumulate=True):
        """The metrics merged from the given multiprocess (mmap) files.

        Histogram buckets come out cumulative (accumulate=True), as the exposition formats
        want them; pass accumulate=False when the result is written back to files, so that
        buckets are not accumulated twice. Summary sketch side files (summary_sketch_*.fps)
        among the files add their summaries' quantiles, with accumulate=True only.
        """
        metrics, skipped = _native.MultiProcessReader().merge(list(files), accumulate)
        _warn_skipped(skipped)
        return metrics

    def _read_directory(self, read, patterns=('*.db', 'summary_sketch_*.fps')):
        """`read(files)` on the directory's files, under the lock compactions take; files that
        could not be read are reported as warnings."""
        with _native.SharedDirectoryLock(self._path):
            files = [f for p in patterns for f in glob.glob(os.path.join(self._path, p))]
            result, skipped = read(files)
        _warn_skipped(skipped)
        return result

    def collect(self):
        return self._read_directory(lambda files: self._reader.merge(files, True))

    def _merged_families(self):
        """The merged families as a native object the exposition writers render directly,
        with the native histograms of the side files (`*.fpn`) for the protobuf format."""
        return self._read_directory(self._reader.families, ('*.db', 'summary_sketch_*.fps', '*.fpn'))


def mark_process_dead(pid, path=None):
    """Do bookkeeping for when one process dies in a multi-process setup.

    As in the reference, the live gauges' files of the process are deleted. Then its counter,
    histogram and summary files (and min/max/sum/mostrecent gauges) are folded into the
    directory's archive files and deleted, so dead processes do not slow scrapes down; totals
    never go backwards."""
    if path is None:
        path = os.environ.get('PROMETHEUS_MULTIPROC_DIR', os.environ.get('prometheus_multiproc_dir'))
    # The compaction deletes the live gauges' files too. No path: the reference's TypeError.
    _native.compact_directory(os.fspath(path), [int(pid)])


def compact(path=None):
    """Fold the files of every process that is no longer running into the archive files.

    Call it at startup, or periodically (a gunicorn ``child_exit`` hook that calls
    ``mark_process_dead`` does it for one process). Safe against concurrent compactions and
    scrapes by fastprom's collector (a lock file; archives are replaced by atomic rename).
    Returns the number of files folded or deleted."""
    if path is None:
        path = _directory_from_env()
    if not path or not os.path.isdir(path):
        raise ValueError('env PROMETHEUS_MULTIPROC_DIR is not set or not a directory')
    return _native.compact_directory(path, None)
