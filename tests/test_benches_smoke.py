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
