"""Code that reaches past the public API (issue 13): the FASTPROM_INSTALL hook's accepted values."""

import os
import pathlib
import subprocess
import sys

import pytest

PTH = pathlib.Path(__file__).resolve().parent.parent / 'python' / 'fastprom_install.pth'


def _run_pth(value):
    """Runs the .pth line as site.py does, then says whether prometheus_client is fastprom."""
    env = {k: v for k, v in os.environ.items() if k != 'FASTPROM_INSTALL'}
    if value is not None:
        env['FASTPROM_INSTALL'] = value
    line = PTH.read_text().strip()
    code = f'{line}\nimport prometheus_client, fastprom\nprint(prometheus_client is fastprom)'
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip() == 'True'


@pytest.mark.parametrize('value', ['1', 'true', 'TRUE', 'True', 'yes', 'Yes', 'on', 'ON'])
def test_install_hook_accepts_truthy_values(value):
    assert _run_pth(value)


@pytest.mark.parametrize('value', [None, '', '0', 'false', 'no', 'off', 'maybe'])
def test_install_hook_ignores_other_values(value):
    assert not _run_pth(value)


# Names that code imports from the reference's modules besides their public API (classes and
# helpers those modules import themselves).
REEXPORTED = {
    'metrics': ['Exemplar', 'floatToGoString', '_validate_exemplar'],
    'multiprocess': ['Gauge', 'Metric', 'MmapedDict', 'Sample', 'floatToGoString'],
    'values': ['MmapedDict', 'mmap_key'],
    'parser': ['Sample', '_is_valid_legacy_metric_name', '_validate_labelname', '_validate_metric_name'],
    'openmetrics.parser': ['BucketSpan', 'Exemplar', 'Metric', 'NativeHistogram', 'Sample',
                           '_is_valid_legacy_metric_name', '_validate_metric_name'],
}


@pytest.mark.parametrize('module', sorted(REEXPORTED))
def test_names_imported_from_the_reference_modules_exist(module):
    import importlib
    reference = importlib.import_module(f'prometheus_client.{module}')
    ours = importlib.import_module(f'fastprom.{module}')
    for name in REEXPORTED[module]:
        assert hasattr(reference, name), name   # the list itself is the reference's
        assert hasattr(ours, name), f'fastprom.{module}.{name}'
        assert type(getattr(ours, name)).__name__ == type(getattr(reference, name)).__name__ or \
            callable(getattr(ours, name)), name
