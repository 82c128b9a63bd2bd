"""The multiprocess file format, for code that reads or writes the files itself
(prometheus_client's `mmap_dict` module). fastprom's metrics write these files natively; this
Python version is the same format:

    int32 used, 4 bytes padding, then entries:
    int32 key length, key (JSON, UTF-8), spaces to an 8-byte boundary, float64 value, float64 timestamp
"""
import json
import mmap
import os
import struct
from typing import Iterator, Tuple

_INITIAL_MMAP_SIZE = 1 << 16
_pack_integer_func = struct.Struct(b'i').pack
_pack_two_doubles_func = struct.Struct(b'dd').pack
_unpack_integer = struct.Struct(b'i').unpack_from
_unpack_two_doubles = struct.Struct(b'dd').unpack_from


def _entries(data: bytes, used: int) -> Iterator[Tuple[str, float, float, int]]:
    """(key, value, timestamp, value position) of each entry in the first `used` bytes."""
    pos = 8
    while pos < used:
        (length,) = _unpack_integer(data, pos)
        if length < 0 or pos + 4 + length > used:
            raise RuntimeError('Read beyond file size detected, file is corrupted.')
        key = data[pos + 4:pos + 4 + length].decode('utf-8')
        pos += 4 + length + (8 - (length + 4) % 8)
        value, timestamp = _unpack_two_doubles(data, pos)
        yield key, value, timestamp, pos
        pos += 16


def _padded_entry(key: str) -> bytes:
    encoded = key.encode('utf-8')
    padded = encoded + b' ' * (8 - (len(encoded) + 4) % 8)
    return struct.pack(f'i{len(padded)}sdd'.encode(), len(encoded), padded, 0.0, 0.0)


class MmapedDict:
    """A dict of (value, timestamp) pairs by key, backed by a memory-mapped file.

    Not thread safe: one writer per file, as in multiprocess mode."""

    def __init__(self, filename: str, read_mode: bool = False):
        self._fname = filename
        if read_mode:
            mode, access = 'rb', mmap.ACCESS_READ
        else:
            mode, access = 'a+b', mmap.ACCESS_WRITE
        self._f = open(filename, mode)
        size = os.fstat(self._f.fileno()).st_size
        if not size:
            # A new (empty) file starts at the initial mapping size.
            size = _INITIAL_MMAP_SIZE
            self._f.truncate(size)
        self._capacity = size
        self._m = mmap.mmap(self._f.fileno(), size, access=access)
        self._positions = {}
        self._used = _unpack_integer(self._m, 0)[0]
        if self._used == 0:
            self._used = 8
            self._m[0:4] = _pack_integer_func(self._used)
        else:
            for key, _, _, pos in _entries(self._m, self._used):
                self._positions[key] = pos

    @staticmethod
    def read_all_values_from_file(filename: str) -> Iterator[Tuple[str, float, float, int]]:
        with open(filename, 'rb') as infp:
            data = infp.read()
        used = _unpack_integer(data, 0)[0]
        return _entries(data, used)

    def _init_value(self, key: str) -> None:
        entry = _padded_entry(key)
        start = self._used
        end = start + len(entry)
        if end > self._capacity:
            # Grow by doubling until the entry fits, then map the larger file.
            grown = self._capacity
            while grown < end:
                grown <<= 1
            self._f.truncate(grown)
            self._capacity = grown
            self._m = mmap.mmap(self._f.fileno(), grown)
        self._m[start:end] = entry
        self._used = end
        self._m[0:4] = _pack_integer_func(end)
        self._positions[key] = end - 16

    def read_all_values(self) -> Iterator[Tuple[str, float, float]]:
        for key, value, timestamp, _ in _entries(self._m, self._used):
            yield key, value, timestamp

    def read_value(self, key: str) -> Tuple[float, float]:
        if key not in self._positions:
            self._init_value(key)
        return _unpack_two_doubles(self._m, self._positions[key])

    def write_value(self, key: str, value: float, timestamp: float) -> None:
        if key not in self._positions:
            self._init_value(key)
        pos = self._positions[key]
        # One slice assignment, so that a reader never sees half of it as zeros.
        self._m[pos:pos + 16] = _pack_two_doubles_func(value, timestamp)

    def close(self) -> None:
        if self._f:
            self._m.close()
            self._m = None
            self._f.close()
            self._f = None


def mmap_key(metric_name: str, name: str, labelnames, labelvalues, help_text: str) -> str:
    """The JSON key of a sample in the files."""
    labels = dict(zip(labelnames, labelvalues))
    return json.dumps([metric_name, name, labels, help_text], sort_keys=True)
