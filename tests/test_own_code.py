"""fastprom's Python modules are its own code: few lines stand in long runs identical to
prometheus_client's module of the same path (the installed test dependency)."""
import difflib
import os
import re
from pathlib import Path

import prometheus_client

PACKAGE = Path(__file__).resolve().parent.parent / 'python' / 'fastprom'
REFERENCE = Path(prometheus_client.__file__).resolve().parent
RUN = 6          # a run this long of identical lines counts
ALLOWED = 60     # lines in such runs, over all modules

_SKIPPED = {'', '(', ')', '[', ']', '{', '}', '"""'}
_IMPORT = re.compile(r'^(from \S+ )?import ')


def significant_lines(path):
    """The lines that carry code: white space folded; blank lines, comments, imports and the
    entries of `__all__` left out (those the API fixes)."""
    kept, in_all = [], False
    for raw in path.read_text(encoding='utf-8', errors='replace').splitlines():
        line = ' '.join(raw.split())
        if in_all:
            in_all = not (line.startswith(']') or line.endswith(']'))
        elif line.startswith('__all__'):
            in_all = not line.endswith(']')
        elif line not in _SKIPPED and not line.startswith('#') and not _IMPORT.match(line):
            kept.append(line)
    return kept


def identical_runs(ours, theirs):
    matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    return [block.size for block in matcher.get_matching_blocks() if block.size >= RUN]


def test_few_lines_stand_in_runs_identical_to_the_reference():
    per_module = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        counterpart = REFERENCE / path.relative_to(PACKAGE)
        if counterpart.exists():
            runs = identical_runs(significant_lines(path), significant_lines(counterpart))
            if runs:
                per_module[str(path.relative_to(PACKAGE))] = sum(runs)
    total = sum(per_module.values())
    assert total <= ALLOWED, f'{total} lines in identical runs of >= {RUN}: {per_module}'


def test_the_check_sees_a_copied_block(tmp_path):
    source = REFERENCE / 'metrics.py'
    copied = tmp_path / 'copy.py'
    copied.write_text(source.read_text(encoding='utf-8'), encoding='utf-8')
    lines = significant_lines(source)
    assert sum(identical_runs(significant_lines(copied), lines)) == len(lines)
    assert identical_runs(lines[:RUN - 1] + ['x = 1'] + lines[RUN:2 * RUN], lines) == [RUN]
