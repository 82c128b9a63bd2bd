"""Value objects of the reference's Python API.

fastprom's metrics keep their values in Rust cells (see `metric._value`, a native view with the
same `inc`/`set`/`get`/`set_exemplar`/`get_exemplar` methods). `MutexValue` is kept for code that
builds value objects itself.
"""

import itertools
import os
import threading
import warnings

from .mmap_dict import mmap_key, MmapedDict  # noqa: F401  (importable from here, as in the reference)


class MutexValue:
    """One float and its exemplar, each read and written under the object's lock."""

    _multiprocess = False

    def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs):
        self._guard = threading.Lock()
        self._state = [0.0, None]  # value, exemplar

    def _put(self, index, item):
        with self._guard:
            self._state[index] = item

    def _read(self, index):
        with self._guard:
            return self._state[index]

    def inc(self, amount):
        with self._guard:
            self._state[0] += amount

    def set(self, value, timestamp=None):
        self._put(0, value)

    def get(self):
        return self._read(0)

    def set_exemplar(self, exemplar):
        self._put(1, exemplar)

    def get_exemplar(self):
        return self._read(1)


_LEGACY_DIR_WARNING = ("prometheus_multiproc_dir variable has been deprecated in favor of the upper "
                       "case naming PROMETHEUS_MULTIPROC_DIR")
_open_value_classes = []
_class_numbers = itertools.count(1)


def _adopt_legacy_directory():
    """The reference's multiprocess values take the lowercase variable into the uppercase one
    (with a DeprecationWarning) when only the lowercase one is set."""
    if 'prometheus_multiproc_dir' in os.environ and 'PROMETHEUS_MULTIPROC_DIR' not in os.environ:
        os.environ['PROMETHEUS_MULTIPROC_DIR'] = os.environ['prometheus_multiproc_dir']
        warnings.warn(_LEGACY_DIR_WARNING, DeprecationWarning)


def MultiProcessValue(process_identifier=os.getpid):
    """A value class whose values live in `PROMETHEUS_MULTIPROC_DIR`, in files named after
    `process_identifier()` (which must differ between processes running at once).

    Metrics created while `values.ValueClass` is such a class store natively in those files; with
    the default `os.getpid` a forked child moves to files of its own pid. Instances built by
    hand read and write the same files through `mmap_dict`.
    """
    from .mmap_dict import MmapedDict, mmap_key

    files = {}
    guard = threading.Lock()

    class MmapedValue:
        _multiprocess = True
        _process_identifier = staticmethod(process_identifier)
        # What native storage knows this class by (src/core/multiprocess/mapped.rs FileId).
        _identity_key = f'value-class-{next(_class_numbers)}'

        def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text,
                     multiprocess_mode='', **kwargs):
            _adopt_legacy_directory()
            prefix = f'{typ}_{multiprocess_mode}' if typ == 'gauge' else typ
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            with guard:
                path = os.path.join(os.environ.get('PROMETHEUS_MULTIPROC_DIR'),
                                    f'{prefix}_{process_identifier()}.db')
                if path not in files:
                    files[path] = MmapedDict(path)
                self._file = files[path]
                self._value, self._timestamp = self._file.read_value(self._key)

        def _store(self, value, timestamp):
            with guard:
                self._value, self._timestamp = value, timestamp
                self._file.write_value(self._key, value, timestamp)

        def inc(self, amount):
            self._store(self._value + amount, 0.0)

        def set(self, value, timestamp=None):
            self._store(value, timestamp or 0.0)

        def get(self):
            return self._value

        def set_exemplar(self, exemplar):
            """Exemplars are not kept in multiprocess files (as in the reference)."""

        def get_exemplar(self):
            return None

        @classmethod
        def close_all_files(cls):
            with guard:
                for file in files.values():
                    file.close()
                files.clear()

    _open_value_classes.append(MmapedValue)
    return MmapedValue


def get_value_class():
    """MultiProcessValue() when a multiprocess directory variable is set, else MutexValue."""
    if 'PROMETHEUS_MULTIPROC_DIR' in os.environ or 'prometheus_multiproc_dir' in os.environ:
        return MultiProcessValue()
    return MutexValue


def close_all_multiprocess_files():
    """Close the files that hand-built multiprocess values hold open."""
    for value_class in _open_value_classes:
        value_class.close_all_files()


ValueClass = get_value_class()
# What the module chose at import: while ValueClass is still this class, fastprom decides the
# mode when each metric is created (so the variable may be set after import).
_import_value_class = ValueClass
