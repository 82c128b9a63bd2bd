"""fastprom.mmap_dict writes and reads the same bytes as prometheus_client's."""
from prometheus_client import mmap_dict as ref

from fastprom import mmap_dict as fast


def write(module, path, count):
    d = module.MmapedDict(str(path))
    for i in range(count):
        key = module.mmap_key('m', 'm_total', ('a', 'b'), (str(i), 'é' * (i % 9)), 'Help "x"')
        d.write_value(key, i * 0.5, float(i % 3))
    d.close()


def test_same_bytes_and_entries(tmp_path):
    write(fast, tmp_path / 'fast.db', 3000)  # past the first 64 KiB: the file grows
    write(ref, tmp_path / 'ref.db', 3000)
    assert (tmp_path / 'fast.db').read_bytes() == (tmp_path / 'ref.db').read_bytes()
    assert (list(fast.MmapedDict.read_all_values_from_file(str(tmp_path / 'ref.db')))
            == list(ref.MmapedDict.read_all_values_from_file(str(tmp_path / 'fast.db'))))


def test_reopened_file_keeps_values(tmp_path):
    write(fast, tmp_path / 'f.db', 10)
    d = fast.MmapedDict(str(tmp_path / 'f.db'))
    key = fast.mmap_key('m', 'm_total', ('a', 'b'), ('4', 'é' * 4), 'Help "x"')
    assert d.read_value(key) == (2.0, 1.0)
    assert len(list(d.read_all_values())) == 10
    d.close()
