"""Smoke test of benches/run.py: it runs end to end and writes parseable outputs.

No timing assertions: the numbers depend on the machine and its load.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / 'benches' / 'run.py'


def test_quick_counter_inc(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RUN), '--quick', '--only', 'counter_inc', '--out', str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'counter_inc' in proc.stdout

    md = (tmp_path / 'results.md').read_text()
    assert '| counter_inc |' in md
    assert 'prometheus_client' in md and 'Command: `python benches/run.py' in md

    data = json.loads((tmp_path / 'results.json').read_text())
    rows = {r['id']: r for r in data['rows']}
    assert set(rows) == {'counter_inc', 'floor'}
    row = rows['counter_inc']
    for key in ('prometheus_client', 'fastprom', 'speedup', 'x_floor'):
        assert isinstance(row[key], float) and row[key] > 0, key
    assert row['met'] in (True, False)
    assert data['info']['python'] and data['command']

    if importlib.util.find_spec('matplotlib') is not None:
        png = (tmp_path / 'speedups.png').read_bytes()
        assert png.startswith(b'\x89PNG\r\n\x1a\n')


def _load_runner():
    spec = importlib.util.spec_from_file_location('bench_run', RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_readme_gets_one_table_per_python_version(tmp_path, monkeypatch):
    runner = _load_runner()
    readme = tmp_path / 'README.md'
    readme.write_text('intro\n<!-- bench-table 3.11 -->\nold 3.11 table\n<!-- /bench-table 3.11 -->\n\nclosing words\n')
    info = {'cpu': 'cpu', 'cores': 2, 'platform': 'linux', 'python': 'x', 'fastprom': '0', 'fastprom_build': 'release',
            'prometheus_client': '0.26.0', 'loadavg_start': 0.0}
    for version in ('3.12', '3.11', '3.12'):
        monkeypatch.setattr(runner.platform, 'python_version_tuple', lambda: (*version.split('.'), '1'))
        runner.update_readme(readme, [], info, f'run {version}', tmp_path / 'results')
    text = readme.read_text()
    assert 'old 3.11 table' not in text
    assert text.count('<!-- bench-table 3.12 -->') == 1 and text.count('<!-- bench-table 3.11 -->') == 1
    assert text.index('run 3.11') < text.index('run 3.12') < text.index('closing words')
    assert '![speed-ups](results/speedups.png)' in text


def test_python_flag_is_not_passed_on():
    runner = _load_runner()
    argv = ['--quick', '--python', '/usr/bin/python3.12', '--only', 'x', '--python=/p']
    assert runner.without_python_flag(argv) == ['--quick', '--only', 'x']
