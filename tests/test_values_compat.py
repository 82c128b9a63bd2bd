"""`values.ValueClass` swaps and multiprocess activation, against prometheus_client (issue 13).

Each case runs in a fresh interpreter per library, because both libraries choose their value
class when they are imported."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

LIBS = ['fastprom', 'prometheus_client']

SWAP = '''
import json, os, sys
import {lib} as lib
from {lib} import values
from {lib}.multiprocess import MultiProcessCollector

values.ValueClass = values.MultiProcessValue(lambda: 123)
fixed = lib.Counter('fixed', 'written under process 123', ['k'])
fixed.labels('a').inc(2)
hist = lib.Histogram('fixed_seconds', 'h', buckets=(0.5, 1.0))
hist.observe(0.25)
gauge = lib.Gauge('fixed_gauge', 'g', multiprocess_mode='livesum')
gauge.set(4)
values.ValueClass = values.MutexValue
local = lib.Counter('local', 'in process memory')
local.inc(5)
registry = lib.CollectorRegistry()
MultiProcessCollector(registry)
print(json.dumps({{
    'files': sorted(os.listdir(os.environ['PROMETHEUS_MULTIPROC_DIR'])),
    'merged': lib.generate_latest(registry).decode(),
    'local': local._value.get(),
    'multiprocess_flag': [values.MultiProcessValue()._multiprocess, values.MutexValue._multiprocess],
}}))
'''

LEGACY_AFTER_IMPORT = '''
import json, os, warnings
import {lib} as lib
os.environ['prometheus_multiproc_dir'] = {directory!r}
warnings.simplefilter('error')
g = lib.Gauge('legacy_gauge', 'created under -W error')
g.set(1)
print(json.dumps({{'upper': os.environ.get('PROMETHEUS_MULTIPROC_DIR')}}))
'''


def run(lib, template, env=None, **fields):
    script = textwrap.dedent(template.format(lib=lib, **fields))
    environment = {k: v for k, v in os.environ.items()
                   if k not in ('PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir')}
    environment.update(env or {})
    out = subprocess.run([sys.executable, '-c', script], env=environment, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_value_class_swap_writes_the_reference_files_and_merges_alike(tmp_path):
    results = {}
    for lib in LIBS:
        directory = tmp_path / lib
        directory.mkdir()
        results[lib] = run(lib, SWAP, env={'PROMETHEUS_MULTIPROC_DIR': str(directory)})
    ours, reference = results['fastprom'], results['prometheus_client']
    assert ours['files'] == reference['files'] == ['counter_123.db', 'gauge_livesum_123.db',
                                                   'histogram_123.db']
    assert ours['merged'] == reference['merged']
    assert ours['local'] == reference['local'] == 5.0
    assert ours['multiprocess_flag'] == reference['multiprocess_flag'] == [True, False]


def test_swapped_files_hold_the_reference_entries(tmp_path):
    from fastprom.mmap_dict import MmapedDict
    entries = {}
    for lib in LIBS:
        directory = tmp_path / lib
        directory.mkdir()
        run(lib, SWAP, env={'PROMETHEUS_MULTIPROC_DIR': str(directory)})
        entries[lib] = {name: sorted((k, v) for k, v, _, _ in
                                     MmapedDict.read_all_values_from_file(str(directory / name)))
                        for name in os.listdir(directory) if name.endswith('.db')}
    assert entries['fastprom'] == entries['prometheus_client']


def test_legacy_variable_set_after_import_neither_warns_nor_writes_environ(tmp_path):
    # The reference ignores the variable after import (its ValueClass is chosen); fastprom turns
    # multiprocess mode on at metric creation, without a warning (-W error) or an environ write.
    for lib in LIBS:
        directory = tmp_path / lib
        directory.mkdir()
        assert run(lib, LEGACY_AFTER_IMPORT, directory=str(directory)) == {'upper': None}
    written = os.listdir(tmp_path / 'fastprom')
    assert len(written) == 1 and written[0].startswith('gauge_all_'), written
    assert os.listdir(tmp_path / 'prometheus_client') == []


@pytest.mark.parametrize('lib', LIBS)
def test_value_module_names(lib):
    script = '''
import json, os
from {lib}.values import MutexValue, MultiProcessValue, get_value_class
from {lib} import values
print(json.dumps({{'default': get_value_class() is MutexValue,
                   'value_class': values.ValueClass is MutexValue,
                   'closer': hasattr(values.MultiProcessValue(), 'close_all_files')}}))
'''
    assert run(lib, script) == {'default': True, 'value_class': True, 'closer': True}


IDENTIFIER_CHANGES = '''
import json, os
import {lib} as lib
from {lib} import values
from {lib}.mmap_dict import MmapedDict
from {lib}.multiprocess import MultiProcessCollector

identifier = ['1']
values.ValueClass = values.MultiProcessValue(lambda: identifier[0])
first = lib.Counter('first', 'made under identifier 1')
first.inc(2)
identifier[0] = '2'
second = lib.Counter('second', 'made under identifier 2')   # the reference notices here
first.inc(1)
second.inc(5)
registry = lib.CollectorRegistry()
MultiProcessCollector(registry)
directory = os.environ['PROMETHEUS_MULTIPROC_DIR']
print(json.dumps({{
    'files': sorted(os.listdir(directory)),
    'entries': {{name: sorted((json.loads(key)[1], value) for key, value, *_ in
                             MmapedDict.read_all_values_from_file(os.path.join(directory, name)))
                for name in os.listdir(directory)}},
    'merged': lib.generate_latest(registry).decode(),
}}))
'''

IDENTIFIER_AFTER_FORK = '''
import json, os
import {lib} as lib
from {lib} import values
from {lib}.mmap_dict import MmapedDict
from {lib}.multiprocess import MultiProcessCollector

values.ValueClass = values.MultiProcessValue(lambda: os.getpid())   # not os.getpid itself
counter = lib.Counter('forked', 'written by parent and child')
counter.inc(1)
child = os.fork()
if child == 0:
    counter.inc(5)
    os._exit(0)
os.waitpid(child, 0)
counter.inc(1)
registry = lib.CollectorRegistry()
MultiProcessCollector(registry)
directory = os.environ['PROMETHEUS_MULTIPROC_DIR']
parent_file = f'counter_{{os.getpid()}}.db'
print(json.dumps({{
    'files': len(os.listdir(directory)),
    'parent_entries': [value for _, value, *_ in
                       MmapedDict.read_all_values_from_file(os.path.join(directory, parent_file))],
    'merged': lib.generate_latest(registry).decode(),
}}))
'''


@pytest.mark.parametrize('script', [IDENTIFIER_CHANGES, IDENTIFIER_AFTER_FORK],
                         ids=['between_metrics', 'after_fork'])
def test_metrics_follow_a_changed_process_identifier(tmp_path, script):
    results = {}
    for lib in LIBS:
        directory = tmp_path / lib
        directory.mkdir()
        results[lib] = run(lib, script, env={'PROMETHEUS_MULTIPROC_DIR': str(directory)})
    assert results['fastprom'] == results['prometheus_client']
    assert results['fastprom']['files'] in (['counter_1.db', 'counter_2.db'], 2)
