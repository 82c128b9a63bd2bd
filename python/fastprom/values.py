"""Value objects of the reference's Python API.

fastprom's metrics keep their values in Rust cells (see `metric._value`, a native view with the
same `inc`/`set`/`get`/`set_exemplar`/`get_exemplar` methods). `MutexValue` is kept for code that
builds value objects itself.
"""

from threading import Lock


class MutexValue:
    """A float protected by a mutex."""

    _multiprocess = False

    def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs):
        self._value = 0.0
        self._exemplar = None
        self._lock = Lock()

    def inc(self, amount):
        with self._lock:
            self._value += amount

    def set(self, value, timestamp=None):
        with self._lock:
            self._value = value

    def set_exemplar(self, exemplar):
        with self._lock:
            self._exemplar = exemplar

    def get(self):
        with self._lock:
            return self._value

    def get_exemplar(self):
        with self._lock:
            return self._exemplar


ValueClass = MutexValue
