"""Type checkers see fastprom as they see prometheus_client.

The programs in typing_programs/ are written against prometheus_client. Each is checked as
written and with every `prometheus_client` replaced by `fastprom` (so the two variants cannot
drift): the typed sample must be clean under both, the planted mistakes must give the same
diagnostics under both (by line and error code), each one reported. A third program, made
here from prometheus_client's modules, reveals the type of each public name, which must be
the same under both but for the differences listed with their reasons. mypy runs once per
variant on the three programs; pyright once per variant on the first two.
"""

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Set, Tuple

import prometheus_client
import pytest

PROGRAMS = Path(__file__).parent / 'typing_programs'
SAMPLE, MISTAKES, SURFACE = 'sample_program.py', 'planted_mistakes.py', 'api_surface.py'
REFERENCE, FASTPROM = 'prometheus_client', 'fastprom'
VARIANTS = (REFERENCE, FASTPROM)

# Strict, as careful typed services run it, less --disallow-untyped-calls: the reference
# leaves a few public functions unannotated (disable_created_metrics, MultiProcessCollector,
# mark_process_dead...), so a typed program calling them is never clean under it.
MYPY_FLAGS = ['--strict', '--allow-untyped-calls', '--show-error-codes', '--no-error-summary',
              '--hide-error-context', '--no-color-output', '--no-pretty']

# The reference's vendored `decorator` library is not API: fastprom has its own helpers there.
SURFACE_SKIPPED_MODULES = {'prometheus_client.decorator'}

# Public names whose types differ, each for a reason (keys: the name under prometheus_client).
KNOWN_DIFFERENCES = {
    'prometheus_client.start_http_server':
        'fastprom returns its native MetricsServer (with the WSGIServer surface callers use) '
        'unless TLS is asked for: the annotation says so, MetricsServer | WSGIServer',
    'prometheus_client.start_wsgi_server': 'the same function as start_http_server',
    'prometheus_client.exposition.start_http_server': 'as prometheus_client.start_http_server',
    'prometheus_client.exposition.start_wsgi_server': 'as prometheus_client.start_http_server',
    'prometheus_client.context_managers.TYPE_CHECKING': 'an import of the reference module',
    'prometheus_client.utils.floatToGoString':
        'the reference leaves the result unannotated; fastprom says what it is: str',
    'prometheus_client.core.SummaryMetricFamily.add_metric':
        'the same union for `timestamp`, its members in another order',
    'prometheus_client.core.GaugeHistogramMetricFamily.add_metric':
        'the same union for `timestamp`, its members in another order',
    'prometheus_client.metrics_core.SummaryMetricFamily.add_metric':
        'the same union for `timestamp`, its members in another order',
    'prometheus_client.metrics_core.GaugeHistogramMetricFamily.add_metric':
        'the same union for `timestamp`, its members in another order',
    'prometheus_client.mmap_dict.mmap_key':
        'fastprom accepts any sequence of label names and values, not only lists',
}
# Summary takes keyword-only quantile objectives and a window (issue 16), Histogram keyword-only
# native histogram settings (issue 15), beyond the reference's arguments.
KNOWN_DIFFERENCES.update(
    {f'prometheus_client.{module}{name}': f'{name} also takes {what}'
     for module in ('', 'metrics.', 'core.')
     for name, what in (('Summary', 'objectives= and a window'),
                        ('Histogram', 'the native_histogram_* settings'),
                        ('Histogram.__init__', 'the native_histogram_* settings'))})
# fastprom's MmapedDict is its own (over the native file code), annotated where the
# reference's is not.
KNOWN_DIFFERENCES.update(
    {f'prometheus_client.mmap_dict.MmapedDict{member}': "fastprom's MmapedDict is annotated"
     for member in ('', '.__init__', '.close', '.read_all_values', '.read_all_values_from_file',
                    '.read_value', '.write_value')})


class Diagnostic(NamedTuple):
    file: str
    line: int
    severity: str
    message: str
    code: str


_MYPY_LINE = re.compile(
    r'^(?P<file>[^:]+):(?P<line>\d+): (?P<severity>error|note): (?P<message>.*?)'
    r'(?:  \[(?P<code>[a-z0-9-]+)\])?$')


def _surface_source() -> str:
    """`reveal_type` of each public name of each public reference module (the names its
    `__all__` lists, or else those it defines), and of the public methods of its classes."""
    modules = [REFERENCE] + sorted(
        info.name for info in pkgutil.walk_packages(prometheus_client.__path__, REFERENCE + '.'))
    lines = ['# Made by tests/test_typing.py: the type of every public name.']
    for module_name in modules:
        if module_name in SURFACE_SKIPPED_MODULES:
            continue
        module = importlib.import_module(module_name)
        lines.append(f'import {module_name}')
        names = getattr(module, '__all__', None)
        if names is None:
            names = [name for name, value in vars(module).items()
                     if getattr(value, '__module__', module_name) == module_name
                     and not inspect.ismodule(value)]
        for name in sorted(names):
            if name.startswith('_'):
                continue
            lines.append(f'reveal_type({module_name}.{name})')
            value = getattr(module, name)
            if inspect.isclass(value):
                for member in sorted(vars(value)):
                    if not member.startswith('_') or member in ('__init__', '__call__',
                                                                '__enter__', '__exit__'):
                        lines.append(f'reveal_type({module_name}.{name}.{member})')
    return '\n'.join(lines) + '\n'


def _variant_dir(root: Path, variant: str, surface: str) -> Path:
    directory = root / variant
    directory.mkdir()
    for name, text in ((SAMPLE, (PROGRAMS / SAMPLE).read_text()),
                       (MISTAKES, (PROGRAMS / MISTAKES).read_text()),
                       (SURFACE, surface)):
        (directory / name).write_text(text.replace(REFERENCE, variant))
    return directory


@pytest.fixture(scope='module')
def variant_dirs(tmp_path_factory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp('typing')
    surface = _surface_source()
    return {variant: _variant_dir(root, variant, surface) for variant in VARIANTS}


@pytest.fixture(scope='module')
def mypy_results(variant_dirs) -> Dict[str, Dict[str, List[Diagnostic]]]:
    """Per variant, per program file: mypy's diagnostics."""
    results = {}
    # One cache for both runs: the second reuses what the first learnt of the standard library
    # and the dependencies (mypy checks each file's hash, so nothing stale is reused).
    cache = next(iter(variant_dirs.values())).parent / 'mypy_cache'
    for variant, directory in variant_dirs.items():
        run = subprocess.run(
            [sys.executable, '-m', 'mypy', *MYPY_FLAGS, '--cache-dir', str(cache),
             SAMPLE, MISTAKES, SURFACE],
            cwd=directory, capture_output=True, text=True, timeout=600)
        assert run.returncode in (0, 1), run.stdout + run.stderr  # 2: mypy itself failed
        by_file: Dict[str, List[Diagnostic]] = {SAMPLE: [], MISTAKES: [], SURFACE: []}
        for line in run.stdout.splitlines():
            match = _MYPY_LINE.match(line)
            assert match, f'unexpected mypy output: {line!r}'
            by_file[match['file']].append(Diagnostic(
                match['file'], int(match['line']), match['severity'], match['message'],
                match['code'] or ''))
        results[variant] = by_file
    return results


def planted_mistakes() -> Set[Tuple[int, str]]:
    """(line, mypy error code) of each mistake marked `# mistake: code[, code]`."""
    planted = set()
    for number, line in enumerate((PROGRAMS / MISTAKES).read_text().splitlines(), 1):
        if '# mistake:' in line:
            codes = line.split('# mistake:')[1]
            planted.update((number, code.strip()) for code in codes.split(','))
    return planted


def _errors(diagnostics: List[Diagnostic]) -> Set[Tuple[int, str]]:
    return {(d.line, d.code) for d in diagnostics if d.severity == 'error'}


@pytest.mark.parametrize('variant', VARIANTS)
def test_sample_program_is_clean(mypy_results, variant):
    assert [d for d in mypy_results[variant][SAMPLE] if d.severity == 'error'] == []


def test_reference_reports_exactly_the_planted_mistakes(mypy_results):
    # Keeps the file of mistakes honest: each marked line is a mistake, and no other line is.
    assert _errors(mypy_results[REFERENCE][MISTAKES]) == planted_mistakes()


def test_fastprom_reports_the_reference_diagnostics(mypy_results):
    reference = _errors(mypy_results[REFERENCE][MISTAKES])
    fastprom = _errors(mypy_results[FASTPROM][MISTAKES])
    assert sorted(fastprom - reference) == [], 'reported for fastprom only'
    assert sorted(reference - fastprom) == [], 'missed with fastprom'


def _normalised(revealed: str) -> str:
    """One spelling for what differs only in naming: the reference's module names, the
    receiver's class (a grafted method's is its mixin's), the native classes' module."""
    revealed = revealed.replace(REFERENCE, FASTPROM)
    revealed = re.sub(r'\bself: [\w.]+', 'self', revealed)
    revealed = re.sub(r'fastprom\._native\.(Counter|Gauge|Summary|Histogram)\b',
                      r'fastprom.metrics.\1', revealed)
    return re.sub(r'fastprom\._native\.(Timer|ExceptionCounter|InprogressTracker)\b',
                  r'fastprom.context_managers.\1', revealed)


def _revealed(diagnostics: List[Diagnostic]) -> Dict[int, str]:
    """Line -> what mypy says there (the revealed type, or the error it gave instead)."""
    by_line: Dict[int, List[str]] = {}
    for d in diagnostics:
        by_line.setdefault(d.line, []).append(_normalised(d.message))
    return {line: ' / '.join(messages) for line, messages in by_line.items()}


def test_public_names_have_the_reference_types(mypy_results, variant_dirs):
    expressions = (variant_dirs[REFERENCE] / SURFACE).read_text().splitlines()
    reference = _revealed(mypy_results[REFERENCE][SURFACE])
    fastprom = _revealed(mypy_results[FASTPROM][SURFACE])
    assert len(reference) > 400, 'the surface program should reveal the whole API'
    differences = []
    for line, text in enumerate(expressions, 1):
        if not text.startswith('reveal_type('):
            continue
        name = text[len('reveal_type('):-1]
        if reference.get(line) != fastprom.get(line) and name not in KNOWN_DIFFERENCES:
            differences.append(f'{name}\n  prometheus_client: {reference.get(line)}'
                               f'\n  fastprom:          {fastprom.get(line)}')
    assert differences == [], '\n'.join(differences)


def test_known_differences_still_differ(mypy_results, variant_dirs):
    # An entry whose difference is gone would hide a future one: remove it.
    expressions = (variant_dirs[REFERENCE] / SURFACE).read_text().splitlines()
    reference = _revealed(mypy_results[REFERENCE][SURFACE])
    fastprom = _revealed(mypy_results[FASTPROM][SURFACE])
    line_of = {text[len('reveal_type('):-1]: line for line, text in enumerate(expressions, 1)}
    stale = [name for name in KNOWN_DIFFERENCES
             if name not in line_of or reference.get(line_of[name]) == fastprom.get(line_of[name])]
    assert stale == [], stale


def test_native_stub_matches_the_runtime():
    """stubtest: every name of fastprom._native that the stub describes exists at runtime
    with that signature, and none exists unstubbed but those allow-listed (with reasons)."""
    run = subprocess.run(
        [sys.executable, '-m', 'mypy.stubtest', '--ignore-disjoint-bases', '--concise',
         '--allowlist', str(PROGRAMS / 'stubtest_allowlist.txt'), 'fastprom._native'],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope='module')
def pyright_results(variant_dirs) -> Dict[str, Dict[str, Set[Tuple[int, str]]]]:
    """Per variant, per program file: (line, rule) of pyright's errors."""
    results = {}
    for variant, directory in variant_dirs.items():
        run = subprocess.run(
            [sys.executable, '-m', 'pyright', '--outputjson', '--pythonpath', sys.executable, SAMPLE, MISTAKES],
            cwd=directory, capture_output=True, text=True, timeout=600)
        assert run.returncode in (0, 1), run.stdout + run.stderr
        by_file: Dict[str, Set[Tuple[int, str]]] = {SAMPLE: set(), MISTAKES: set()}
        for diagnostic in json.loads(run.stdout)['generalDiagnostics']:
            if diagnostic['severity'] == 'error':
                line = diagnostic['range']['start']['line'] + 1
                by_file[Path(diagnostic['file']).name].add((line, diagnostic.get('rule', '')))
        results[variant] = by_file
    return results


@pytest.mark.parametrize('variant', VARIANTS)
def test_pyright_finds_the_sample_clean(pyright_results, variant):
    assert pyright_results[variant][SAMPLE] == set()


def test_pyright_reports_the_reference_diagnostics(pyright_results):
    reference, fastprom = pyright_results[REFERENCE][MISTAKES], pyright_results[FASTPROM][MISTAKES]
    assert {line for line, _ in reference} == {line for line, _ in planted_mistakes()}
    assert sorted(fastprom ^ reference) == []
