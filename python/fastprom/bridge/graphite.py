#!/usr/bin/env python
"""Push a registry's samples to Graphite (carbon's plaintext protocol), once or periodically."""

import logging
import re
import socket
import threading
import time
from timeit import default_timer
from typing import Callable, Tuple

from ..registry import Collector, REGISTRY

# Graphite path components keep to what works in a file name; '.' is replaced too, since it
# separates the components (and so the label names from their values).
_NOT_IN_PATH = re.compile(r"[^a-zA-Z0-9_-]")


def _sanitize(s):
    return _NOT_IN_PATH.sub('_', s)


class _RegularPush(threading.Thread):
    """Calls ``pusher.push(prefix=...)`` at start, start + interval, start + 2 * interval, ...;
    slots that were missed (a slow push) are skipped, failed pushes are logged."""

    def __init__(self, pusher, interval, prefix):
        super().__init__(daemon=True)
        self._pusher, self._interval, self._prefix = pusher, interval, prefix

    def _next_slot(self, slot):
        """Sleep until ``slot``, then return the first later slot."""
        now = default_timer()
        while now < slot:
            time.sleep(slot - now)  # may wake early
            now = default_timer()
        while slot < now:
            slot += self._interval
        return slot

    def run(self):
        slot = default_timer()
        while True:
            slot = self._next_slot(slot)
            try:
                self._pusher.push(prefix=self._prefix)
            except OSError:
                logging.exception("Push failed")


class GraphiteBridge:
    """Sends every sample of ``registry`` as ``[prefix.]name[labels] value timestamp`` to the
    carbon server at ``address``; labels are path components (``.k.v``) or, with ``tags``,
    Graphite tags (``;k=v``)."""

    def __init__(self, address: Tuple[str, int], registry: Collector = REGISTRY, timeout_seconds: float = 30,
                 _timer: Callable[[], float] = time.time, tags: bool = False):
        self._address, self._timeout = address, timeout_seconds
        self._registry, self._timer, self._tags = registry, _timer, tags

    def _label_suffix(self, labels):
        if not labels:
            return ''
        pairs = sorted(labels.items())
        if self._tags:
            return ''.join(f';{_sanitize(k)}={_sanitize(v)}' for k, v in pairs)
        return ''.join(f'.{_sanitize(k)}.{_sanitize(v)}' for k, v in pairs)

    def _lines(self, prefix, timestamp):
        lead = prefix + '.' if prefix else ''
        for metric in self._registry.collect():
            for sample in metric.samples:
                path = lead + _sanitize(sample.name) + self._label_suffix(sample.labels)
                yield f'{path} {float(sample.value)} {timestamp}\n'

    def push(self, prefix: str = '') -> None:
        text = ''.join(self._lines(prefix, int(self._timer())))
        connection = socket.create_connection(self._address, self._timeout)
        connection.sendall(text.encode('ascii'))
        connection.close()

    def start(self, interval: float = 60.0, prefix: str = '') -> None:
        """Push every ``interval`` seconds from a daemon thread, the first push right away."""
        _RegularPush(self, interval, prefix).start()
