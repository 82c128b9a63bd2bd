"""Value objects of the reference's Python API.

fastprom's metrics keep their values in Rust cells (see `metric._value`, a native view with the
same `inc`/`set`/`get`/`set_exemplar`/`get_exemplar` methods). `MutexValue` is kept for code that
builds value objects itself.
"""

import threading


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


ValueClass = MutexValue
