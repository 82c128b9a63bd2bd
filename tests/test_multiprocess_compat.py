"""Multiprocess mode: fastprom against prometheus_client 0.26.0.

Every scenario runs in fresh subprocesses (``tests/mp_apps.py``) with
``PROMETHEUS_MULTIPROC_DIR`` set before the library is imported: the only way
the reference turns its multiprocess mode on, and the honest way for fastprom.

Test ids name the libraries a test needs, so ``-k prometheus_client`` runs the
reference-only variants and ``-k fastprom`` every variant that involves
fastprom.  Writer/reader combinations are named ``prometheus_client`` (the
reference writes and reads), ``fastprom`` (fastprom writes and reads),
``fastprom_writes-ref_reads`` and ``ref_writes-fastprom_reads``.  Tests of
fastprom-only behaviour (compaction, corrupt files, env var set after import,
removal of series) have ``fastprom`` in their name.

Byte-for-byte comparisons of merged output need the same files in the same
directory order: the reference orders families (and series) by first appearance
across ``glob`` (directory order), and prints the writer pid on
``all``/``liveall`` gauges.  So each written directory is also copied to a
*canonical* directory where the pid of process ``i`` is replaced by
``CANON_PID + i`` and the files are created in sorted order; the same names
created in the same order list in the same order on any file system.
Comparisons after compaction or ``mark_process_dead`` change the set of files,
so they compare a canonical form (families sorted, lines sorted inside a
family); the values used there are binary fractions so the sums are exact in
any order.
"""

import difflib
import glob
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import warnings

import pytest

import prometheus_client
from prometheus_client.mmap_dict import MmapedDict

# The oracle (reader of .db files, text parser) must be the reference itself.
assert prometheus_client.__name__ == 'prometheus_client', 'prometheus_client is aliased'

REF = 'prometheus_client'
IMPL = 'fastprom'
LIBS = [REF, IMPL]

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(TESTS_DIR, 'mp_apps.py')
import mp_apps  # noqa: E402  (tests/ is on sys.path under pytest's default import mode)
from libs import sample_value, sample_values  # noqa: E402

# Above PID_MAX_LIMIT (4194304): can never be the pid of a live process.
CANON_PID = 4194400
SCRIPT_TIMEOUT = 120

COMBOS = [(REF, REF), (IMPL, IMPL), (IMPL, REF), (REF, IMPL)]


def combo_id(combo):
    writer, reader = combo
    if writer == reader:
        return writer
    return 'fastprom_writes-ref_reads' if writer == IMPL else 'ref_writes-fastprom_reads'


COMPAT_SCENARIOS = ['counters', 'gauges', 'histograms', 'summaries', 'mixed', 'edge']
PROCESSES = {'mixed': 4}          # processes per scenario; default 3


# ---------------------------------------------------------------------------
# Subprocess helpers
# ---------------------------------------------------------------------------

def script_env(lib, mpdir, extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PROMETHEUS_MULTIPROC_DIR', 'prometheus_multiproc_dir',
                        'FASTPROM_INSTALL')}     # that one would alias the reference
    env['MP_LIB'] = lib
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    if mpdir is not None:
        env['PROMETHEUS_MULTIPROC_DIR'] = str(mpdir)
    env.update(extra or {})
    return env


def start_script(lib, mpdir, *args, extra_env=None):
    return subprocess.Popen([sys.executable, APPS, *map(str, args)],
                            env=script_env(lib, mpdir, extra_env), cwd=TESTS_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_script(proc, what):
    try:
        out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f'{what}: timed out\n{err.decode(errors="replace")}')
    if proc.returncode != 0:
        raise AssertionError(f'{what}: exit status {proc.returncode}\n'
                             f'{err.decode(errors="replace")[-4000:]}')
    return out.decode()


def run_script(lib, mpdir, *args, extra_env=None):
    """Run ``mp_apps.py args`` with MP_LIB=lib; stdout's last line as JSON (or None)."""
    proc = start_script(lib, mpdir, *args, extra_env=extra_env)
    out = finish_script(proc, f'MP_LIB={lib} mp_apps.py {" ".join(map(str, args))}')
    lines = out.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def write_scenario(mpdir, scenario, libs):
    """Run process i of ``scenario`` with library libs[i], one after the other."""
    os.makedirs(mpdir, exist_ok=True)
    return [run_script(lib, mpdir, 'write', scenario, i) for i, lib in enumerate(libs)]


def collect(lib, mpdir, out_dir):
    """(generate_latest bytes, warnings) of lib's MultiProcessCollector over mpdir."""
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(str(out_dir), f'collect-{lib}-{time.monotonic_ns()}.txt')
    run_script(lib, mpdir, 'collect', out)
    with open(out, 'rb') as f:
        data = f.read()
    with open(out + '.warnings.json') as f:
        return data, json.load(f)


def collect_text(lib, mpdir, out_dir):
    data, caught = collect(lib, mpdir, out_dir)
    assert caught == [], f'{lib} warned while collecting {mpdir}: {caught}'
    return data


def merge_dump(lib, mpdir, out_dir, accumulate):
    out = os.path.join(str(out_dir), f'merge-{lib}-{accumulate}-{time.monotonic_ns()}.json')
    run_script(lib, mpdir, 'merge', out, 'true' if accumulate else 'false')
    with open(out) as f:
        return f.read()


def db_files(mpdir):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(str(mpdir), '*.db')))


def split_name(fname):
    """'gauge_livesum_123.db' -> ('gauge_livesum', '123')."""
    prefix, _, rest = fname.rpartition('_')
    return prefix, rest[:-3]


def canonical_copy(src, dst, pids):
    """Copy src to a fresh dst, the pid of process i renamed CANON_PID + i,
    files created in sorted order."""
    rename = {str(p): str(CANON_PID + i) for i, p in enumerate(pids)}
    os.makedirs(dst)
    names = []
    for fname in db_files(src):
        prefix, pid = split_name(fname)
        new = f'{prefix}_{rename[pid]}.db' if pid in rename else fname
        names.append((new, fname))
    for new, old in sorted(names):
        shutil.copyfile(os.path.join(src, old), os.path.join(dst, new))
    return dst


def diff(expected, got, a='expected', b='got'):
    e = expected.decode(errors='replace') if isinstance(expected, bytes) else expected
    g = got.decode(errors='replace') if isinstance(got, bytes) else got
    return '\n'.join(difflib.unified_diff(e.splitlines(), g.splitlines(), a, b, lineterm='', n=2))


def assert_same_bytes(expected, got, what):
    assert got == expected, f'{what} differs:\n{diff(expected, got)}'


def canonical(text):
    """Families sorted by HELP line, lines sorted inside each family."""
    if isinstance(text, bytes):
        text = text.decode()
    blocks = []
    for line in text.splitlines():
        if line.startswith('# HELP ') or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return '\n'.join('\n'.join([b[0]] + sorted(b[1:])) for b in sorted(blocks, key=lambda b: b[0]))


def assert_same_canonical(expected, got, what):
    e, g = canonical(expected), canonical(got)
    assert g == e, f'{what} differs (canonical form):\n{diff(e, g)}'


samples_of = sample_values
value = sample_value


def entries(path):
    """[(key, value, timestamp, value position)] of a .db file, via the reference reader."""
    return list(MmapedDict.read_all_values_from_file(str(path)))


# ---------------------------------------------------------------------------
# Written scenario directories, shared by the tests of this module
# ---------------------------------------------------------------------------

class Written:
    def __init__(self, raw, canon, infos):
        self.raw, self.canon, self.infos = raw, canon, infos
        self.pids = [info['pid'] for info in infos]


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    cache = {}

    def get(scenario, writer):
        """writer: a library name, or 'mixed' (prometheus_client for even
        process numbers, fastprom for odd ones)."""
        key = (scenario, writer)
        if key not in cache:
            n = PROCESSES.get(scenario, 3)
            if writer == 'mixed':
                libs = [REF if i % 2 == 0 else IMPL for i in range(n)]
            else:
                libs = [writer] * n
            base = tmp_path_factory.mktemp(f'{scenario}-{writer}')
            raw = str(base / 'raw')
            infos = write_scenario(raw, scenario, libs)
            canon = canonical_copy(raw, str(base / 'canon'), [i['pid'] for i in infos])
            cache[key] = Written(raw, canon, infos)
        return cache[key]

    return get


# ---------------------------------------------------------------------------
# 1. Cross-library merge: A writes, B collects, output == reference's
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('combo', COMBOS, ids=combo_id)
@pytest.mark.parametrize('scenario', COMPAT_SCENARIOS)
def test_merged_output_matches_reference(scenario, combo, written, tmp_path):
    writer, reader = combo
    expected = collect_text(REF, written(scenario, REF).canon, tmp_path)
    w = written(scenario, writer)
    # the writer's files hold what the reference's files hold
    assert_same_bytes(expected, collect_text(reader, w.canon, tmp_path),
                      f'{reader} collecting files written by {writer}')
    # on the very same directory (same pids, same directory order) both
    # collectors give the same bytes
    assert_same_bytes(collect_text(REF, w.raw, tmp_path), collect_text(reader, w.raw, tmp_path),
                      f'{reader} vs reference collecting {w.raw}')


@pytest.mark.parametrize('accumulate', [True, False], ids=['accumulate', 'no_accumulate'])
@pytest.mark.parametrize('combo', COMBOS, ids=combo_id)
@pytest.mark.parametrize('scenario', ['gauges', 'histograms', 'mixed'])
def test_merge_static_method_matches_reference(scenario, combo, accumulate, written, tmp_path):
    """MultiProcessCollector.merge(files, accumulate) on sorted files: the same
    Metric objects (names, types, help, samples with labels and values)."""
    writer, reader = combo
    expected = merge_dump(REF, written(scenario, REF).canon, tmp_path, accumulate)
    got = merge_dump(reader, written(scenario, writer).canon, tmp_path, accumulate)
    assert got == expected, f'merge(accumulate={accumulate}) differs:\n{diff(expected, got)}'


def test_prometheus_client_scenarios_produce_the_expected_values(written, tmp_path):
    """Guards the scenarios themselves (they must exercise what they claim)."""
    gauges = samples_of(collect_text(REF, written('gauges', REF).canon, tmp_path))
    assert value(gauges, 'g_min', k='x') == -1.375
    assert value(gauges, 'g_max', k='late') == math.inf
    assert value(gauges, 'g_sum', k='x') == 5.125 - 1.375 + 19.125
    assert value(gauges, 'g_mostrecent', k='x') == 22.0           # last process, last set
    assert value(gauges, 'g_mostrecent', k='y') == -3.5           # only process 0 set it
    assert not any(name == 'g_mostrecent_never' for name, _ in gauges)
    assert value(gauges, 'g_all', k='x', pid=str(CANON_PID + 1)) == -1.375
    counters = samples_of(collect_text(REF, written('counters', REF).canon, tmp_path))
    assert value(counters, 'http_requests_total', method='GET', path='é') == 6.0
    assert value(counters, 'http_requests_total', method='PUT', path='ünïcødé/only-odd') == 7.0
    assert value(counters, 'never_incremented_total') == 0.0


# ---------------------------------------------------------------------------
# 2. The .db files themselves
# ---------------------------------------------------------------------------

def _mask_timestamps(data, ents):
    b = bytearray(data)
    for _, _, _, pos in ents:
        b[pos + 8:pos + 16] = bytes(8)
    return bytes(b)


def _sequence_counters(prefix, ents):
    """fastprom's known difference: the timestamp slot of a histogram's or summary's `_sum`
    entry (0.0 in the reference's files, which it never reads) holds the child's sequence
    counter. The entries whose slot that is."""
    if prefix not in ('histogram', 'summary'):
        return []
    return [e for e in ents if json.loads(e[0])[1] == json.loads(e[0])[0] + '_sum']


@pytest.mark.parametrize('lib', LIBS)
@pytest.mark.parametrize('scenario', COMPAT_SCENARIOS)
def test_db_files_match_reference(scenario, lib, tmp_path):
    """Same calls, same files: the reference writes with a faked pid 4242
    (values.ValueClass = MultiProcessValue(lambda: 4242)); ``lib`` writes with its
    real pid.  Same file prefixes, same (key, value, timestamp) entries in the
    same order, same ``used`` header, and the same bytes when the sizes match.
    mostrecent timestamps are wall-clock times: zero in one iff zero in the
    other, and inside the writer's run."""
    for i in range(PROCESSES.get(scenario, 3)):
        ref_dir, lib_dir = tmp_path / f'ref{i}', tmp_path / f'lib{i}'
        ref_dir.mkdir()
        lib_dir.mkdir()
        run_script(REF, ref_dir, 'write', scenario, i, '4242')
        info = run_script(lib, lib_dir, 'write', scenario, i)
        ref_files = {split_name(f)[0]: f for f in db_files(ref_dir)}
        lib_files = db_files(lib_dir)
        assert all(split_name(f)[1] == '4242' for f in ref_files.values())
        assert [f for f in lib_files if split_name(f)[1] != str(info['pid'])] == [], \
            f'{lib} wrote files not named after its pid {info["pid"]}'
        assert sorted(split_name(f)[0] for f in lib_files) == sorted(ref_files), \
            f'process {i}: file prefixes differ'
        for fname in lib_files:
            prefix = split_name(fname)[0]
            rpath, lpath = ref_dir / ref_files[prefix], lib_dir / fname
            rents, lents = entries(rpath), entries(lpath)
            what = f'process {i}, {prefix}'
            assert [e[0] for e in lents] == [e[0] for e in rents], f'{what}: keys differ'
            assert [(e[1], e[3]) for e in lents] == [(e[1], e[3]) for e in rents], \
                f'{what}: values/positions differ'
            if 'mostrecent' in prefix:
                for (k, _, rts, _), (_, _, lts, _) in zip(rents, lents):
                    assert (rts == 0) == (lts == 0), f'{what}: timestamp zero-ness of {k}'
                    if lts:
                        assert info['start'] - 1 <= lts <= info['end'] + 1, f'{what}: ts {lts}'
                rbytes = _mask_timestamps(rpath.read_bytes(), rents)
                lbytes = _mask_timestamps(lpath.read_bytes(), lents)
            else:
                counters = _sequence_counters(prefix, lents)
                for _, _, counter, pos in counters:
                    # Even: no update was under way when the writer ended.
                    assert struct.unpack('=Q', struct.pack('=d', counter))[0] % 2 == 0, what
                masked = [e[2] if e not in counters else 0.0 for e in lents]
                assert masked == [e[2] for e in rents], f'{what}: timestamps'
                rbytes, lbytes = rpath.read_bytes(), _mask_timestamps(lpath.read_bytes(), counters)
            assert lbytes[:8] == rbytes[:8], f'{what}: header differs'
            if len(lbytes) == len(rbytes):
                assert lbytes == rbytes, f'{what}: bytes differ'


def test_prometheus_client_db_file_layout_is_what_the_docs_say(tmp_path):
    """Documents the reference format the byte comparisons rely on."""
    run_script(REF, tmp_path, 'write', 'counters', 0, '4242')
    data = (tmp_path / 'counter_4242.db').read_bytes()
    assert len(data) == 65536
    used = int.from_bytes(data[:4], sys.byteorder)
    assert data[4:8] == bytes(4) and data[used:] == bytes(len(data) - used)
    ents = entries(tmp_path / 'counter_4242.db')
    key = json.dumps(['http_requests', 'http_requests_total', {'method': 'GET', 'path': 'é'},
                      'Requêtes servies — 日本語 "q" \\ back\nslash'], sort_keys=True)
    assert key in [e[0] for e in ents] and '\\u00e9' in key
    for _, _, _, pos in ents:
        assert pos % 8 == 0 and data[pos - 1:pos] == b' '      # padded with 1..8 spaces


# ---------------------------------------------------------------------------
# 3. Both libraries writing into one directory
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('scenario', ['counters', 'gauges', 'histograms', 'mixed'])
def test_mixed_directory_fastprom(scenario, written, tmp_path):
    """Processes 0, 2, ... use prometheus_client, 1, 3, ... fastprom, one directory:
    both collectors give the reference's output for an all-reference run."""
    expected = collect_text(REF, written(scenario, REF).canon, tmp_path)
    mixed = written(scenario, 'mixed')
    for reader in LIBS:
        assert_same_bytes(expected, collect_text(reader, mixed.canon, tmp_path),
                          f'{reader} collecting the mixed directory')
    assert_same_bytes(collect_text(REF, mixed.raw, tmp_path),
                      collect_text(IMPL, mixed.raw, tmp_path),
                      'fastprom vs reference on the raw mixed directory')


# ---------------------------------------------------------------------------
# 4. mark_process_dead and compaction
# ---------------------------------------------------------------------------

LIVE_MODES = [m for m in mp_apps.GAUGE_MODES if m.startswith('live')]
FOLDED_PREFIXES = ('counter', 'histogram', 'summary', 'gauge_min', 'gauge_max', 'gauge_sum',
                   'gauge_mostrecent')


@pytest.mark.parametrize('lib', LIBS)
def test_mark_process_dead_removes_live_gauge_files(lib, written, tmp_path):
    """mark_process_dead(pid) (path=None: from PROMETHEUS_MULTIPROC_DIR) on a
    gauges directory of 3 processes; process 1 marked dead."""
    dead = CANON_PID + 1
    # reference: what the output is after marking process 1 dead
    ref_dir = str(tmp_path / 'ref')
    shutil.copytree(written('gauges', REF).canon, ref_dir)
    run_script(REF, ref_dir, 'mark_dead', dead)
    expected = collect_text(REF, ref_dir, tmp_path)

    d = str(tmp_path / 'lib')
    shutil.copytree(written('gauges', lib).canon, d)
    before = set(db_files(d))
    caught = run_script(lib, d, 'mark_dead', dead)
    assert caught == []
    after = set(db_files(d))
    for mode in LIVE_MODES:
        assert f'gauge_{mode}_{dead}.db' not in after
        for other in (CANON_PID, CANON_PID + 2):
            assert f'gauge_{mode}_{other}.db' in after, 'another process lost its live gauge'
    assert f'gauge_all_{dead}.db' in after, '"all" gauges of dead processes stay (reference)'
    if lib == REF:
        assert after == before - {f'gauge_{m}_{dead}.db' for m in LIVE_MODES}
    else:
        # fastprom folds the dead pid's foldable files into archives
        left = [f for f in after if split_name(f)[1] == str(dead)
                and split_name(f)[0].startswith(FOLDED_PREFIXES)]
        assert left == [], f'fastprom left per-pid files of the dead process: {left}'
    samples = samples_of(expected)
    assert value(samples, 'g_livesum', k='x') == 5.125 + 19.125     # process 1 dropped
    assert value(samples, 'g_sum', k='x') == 5.125 - 1.375 + 19.125  # kept
    assert not any(dict(lbl).get('pid') == str(dead) for name, lbl in samples
                   if name == 'g_liveall')
    for reader in sorted({REF, lib}):
        assert_same_canonical(expected, collect_text(reader, d, tmp_path),
                              f'{reader} collecting after {lib}.mark_process_dead')


def _write_many(lib, mpdir, scenario, indexes, parallel=5):
    """Run processes (concurrently, ``parallel`` at a time); their infos."""
    infos = []
    indexes = list(indexes)
    for start in range(0, len(indexes), parallel):
        procs = [(i, start_script(lib, mpdir, 'write', scenario, i))
                 for i in indexes[start:start + parallel]]
        for i, p in procs:
            infos.append(json.loads(finish_script(p, f'writer {i}').strip().splitlines()[-1]))
    return infos


def _per_pid_files(mpdir, pids):
    pids = {str(p) for p in pids}
    return [f for f in db_files(mpdir) if split_name(f)[1] in pids]


def _expected_compaction_counts(indexes):
    a = sum(i + 1 for i in indexes)
    return {'a': float(a), 'b': 0.5 * len(indexes), 'b_count': 2.0 * len(indexes)}


def test_fastprom_compaction(tmp_path):
    """20 exited fastprom processes; mark_process_dead for 5 of them, then
    compact(): per-pid files replaced by archives, output unchanged for both
    collectors; later processes add on top (totals never go backwards)."""
    d = str(tmp_path / 'mp')
    os.makedirs(d)
    infos = _write_many(IMPL, d, 'compaction', range(20))
    pids = [i['pid'] for i in infos]
    assert len(_per_pid_files(d, pids)) == 20 * 7
    before = collect_text(REF, d, tmp_path)
    assert_same_bytes(before, collect_text(IMPL, d, tmp_path), 'fastprom vs reference, before')
    exp = _expected_compaction_counts(range(20))
    s = samples_of(before)
    assert value(s, 'cp_requests_total', path='/a') == exp['a']
    assert value(s, 'cp_requests_total', path='/b') == exp['b']

    for pid in pids[:5]:
        assert run_script(IMPL, d, 'mark_dead', pid) == []
    assert _per_pid_files(d, pids[:5]) == [], 'mark_process_dead kept per-pid files'
    for reader in LIBS:
        assert_same_canonical(before, collect_text(reader, d, tmp_path),
                              f'{reader} after mark_process_dead of 5 pids')

    assert run_script(IMPL, d, 'compact') == []
    assert _per_pid_files(d, pids) == [], 'compact() kept per-pid files of dead processes'
    files = db_files(d)
    assert 0 < len(files) <= 2 * 7, f'expected a few archive files, got {files}'
    for reader in LIBS:
        assert_same_canonical(before, collect_text(reader, d, tmp_path),
                              f'{reader} after compact()')
    assert run_script(IMPL, d, 'compact') == []             # idempotent
    assert_same_canonical(before, collect_text(IMPL, d, tmp_path), 'after a second compact()')

    # more processes after compaction: totals add up, nothing counted twice
    more = _write_many(IMPL, d, 'compaction', range(20, 23))
    mid = collect_text(IMPL, d, tmp_path)
    exp = _expected_compaction_counts(range(23))
    s = samples_of(mid)
    assert value(s, 'cp_requests_total', path='/a') == exp['a']
    assert value(s, 'cp_requests_total', path='/b') == exp['b']
    assert value(s, 'cp_latency_count', path='/b') == exp['b_count']
    assert value(s, 'cp_size_count') == 23.0
    assert value(s, 'cp_size_sum') == float(sum(range(23)))
    assert value(s, 'cp_min') == -3.0 and value(s, 'cp_max') == 7.0
    assert_same_canonical(mid, collect_text(REF, d, tmp_path), 'reference reading archives + new')
    assert run_script(IMPL, d, 'compact') == []
    assert _per_pid_files(d, [i['pid'] for i in more]) == []
    for reader in LIBS:
        assert_same_canonical(mid, collect_text(reader, d, tmp_path),
                              f'{reader} after the second compaction')


def test_fastprom_compaction_while_collecting(tmp_path):
    """A scraper collecting (fastprom, in this process) in a loop while
    processes come and go and compact() / mark_process_dead run: every scrape
    succeeds without warnings, totals never go backwards nor exceed what was
    written, and the final totals are exact."""
    import fastprom
    import fastprom.multiprocess
    d = str(tmp_path / 'mp')
    os.makedirs(d)
    reg = fastprom.CollectorRegistry()
    fastprom.multiprocess.MultiProcessCollector(reg, path=d)
    started = [0]          # processes started (upper bound of what may be seen)
    seen, errors = [], []
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter('always')
                    limit = started[0]
                    text = fastprom.generate_latest(reg)
                if caught:
                    errors.append(f'warnings: {[str(w.message) for w in caught]}')
                s = samples_of(text)
                seen.append((value(s, 'cp_requests_total', path='/b') or 0.0,
                             value(s, 'cp_latency_count', path='/b') or 0.0, limit))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                return

    t = threading.Thread(target=scrape)
    t.start()
    try:
        index = 0
        for round_ in range(6):
            started[0] += 4
            infos = _write_many(IMPL, d, 'compaction', range(index, index + 4), parallel=4)
            index += 4
            if round_ % 2:
                run_script(IMPL, d, 'compact')
            else:
                for info in infos:
                    run_script(IMPL, d, 'mark_dead', info['pid'])
        run_script(IMPL, d, 'compact')
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:5]
    assert len(seen) > 10, 'the scraper hardly ran'
    for (b, bc, limit), (b2, bc2, _) in zip(seen, seen[1:]):
        assert b2 >= b and bc2 >= bc, f'totals went backwards: {b} -> {b2}, {bc} -> {bc2}'
    for b, bc, limit in seen:
        assert b <= 0.5 * limit and bc <= 2 * limit, f'counted twice: {b}, {bc} (<= {limit} procs)'
    final = samples_of(fastprom.generate_latest(reg))
    assert value(final, 'cp_requests_total', path='/b') == 0.5 * 24
    assert value(final, 'cp_latency_count', path='/b') == 2.0 * 24


# ---------------------------------------------------------------------------
# 5. fork, threads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('lib', LIBS)
def test_fork_child_writes_its_own_files(lib, tmp_path):
    res = run_script(lib, tmp_path, 'fork')
    parent, child = res['parent'], res['child']
    assert parent['status'] == 0 and child, res
    assert child['pid'] != parent['pid']
    # the child starts from its own zeroed values (reference: pid check resets)
    assert child['counter_before'] == 0.0 and child['gauge_before'] == 0.0
    assert child['counter_after'] == 2.0 and child['gauge_after'] == 9.0
    # the parent's values are untouched by the child
    assert parent['counter'] == 6.0 and parent['gauge'] == 3.0
    files = db_files(tmp_path)
    for pid in (parent['pid'], child['pid']):
        assert f'counter_{pid}.db' in files and f'gauge_all_{pid}.db' in files, files
    vals = {pid: {e[0]: e[1] for e in entries(tmp_path / f'counter_{pid}.db')}
            for pid in (parent['pid'], child['pid'])}
    key = json.dumps(['forked', 'forked_total', {}, 'Counter across fork'], sort_keys=True)
    assert vals[parent['pid']][key] == 6.0 and vals[child['pid']][key] == 2.0
    s = samples_of(collect_text(lib, tmp_path, tmp_path / 'out'))
    assert value(s, 'forked_total') == 8.0
    assert value(s, 'forked_gauge', pid=str(parent['pid'])) == 3.0
    assert value(s, 'forked_gauge', pid=str(child['pid'])) == 9.0


@pytest.mark.parametrize('lib', LIBS)
def test_processes_and_threads_lose_no_increment(lib, tmp_path):
    """8 processes x 2 threads x 100k Counter.inc()."""
    procs_n, threads, n = 8, 2, 100_000
    t0 = time.monotonic()
    procs = [start_script(lib, tmp_path, 'hammer', threads, n) for _ in range(procs_n)]
    pids = [json.loads(finish_script(p, 'hammer').strip().splitlines()[-1])['pid'] for p in procs]
    elapsed = time.monotonic() - t0
    key = json.dumps(['hammered', 'hammered_total', {}, 'Hammered counter'], sort_keys=True)
    for pid in pids:
        per = {e[0]: e[1] for e in entries(tmp_path / f'counter_{pid}.db')}
        assert per[key] == threads * n
    s = samples_of(collect_text(lib, tmp_path, tmp_path / 'out'))
    assert value(s, 'hammered_total') == procs_n * threads * n
    print(f'{lib}: {procs_n * threads * n} increments in {elapsed:.2f} s')


# ---------------------------------------------------------------------------
# 6. fastprom only: corrupt files, env var after import, removal
# ---------------------------------------------------------------------------

def _corrupt(d, kind):
    """Damage or add one file in d; return its name."""
    files = db_files(d)
    if kind == 'truncated_mid_entry':
        name = next(f for f in files if f.startswith('histogram_'))
        path = os.path.join(d, name)
        ents = entries(path)
        cut = ents[len(ents) // 2][3] - 5          # inside the key of an entry
        with open(path, 'r+b') as f:
            f.truncate(cut)
        return name
    if kind == 'truncated_header':
        name = next(f for f in files if f.startswith('summary_'))
        with open(os.path.join(d, name), 'r+b') as f:
            f.truncate(3)
        return name
    if kind == 'used_beyond_size':
        name = next(f for f in files if f.startswith('counter_'))
        with open(os.path.join(d, name), 'r+b') as f:
            f.write((1 << 20).to_bytes(4, sys.byteorder))
        return name
    name = 'counter_777777.db'
    if kind == 'garbage':
        data = b'this is not a prometheus multiprocess file\n' * 200
    elif kind == 'bad_json_key':
        key = b'not json at all'
        pad = b' ' * (8 - (len(key) + 4) % 8)
        entry = len(key).to_bytes(4, sys.byteorder) + key + pad + bytes(16)
        data = (8 + len(entry)).to_bytes(4, sys.byteorder) + bytes(4) + entry
        data += bytes(65536 - len(data))
    else:
        raise AssertionError(kind)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)
    return name


@pytest.mark.parametrize('kind', ['truncated_mid_entry', 'truncated_header', 'used_beyond_size',
                                  'garbage', 'bad_json_key'])
def test_fastprom_skips_corrupt_file_with_a_warning(kind, written, tmp_path):
    d = str(tmp_path / 'mp')
    shutil.copytree(written('mixed', REF).raw, d)
    bad = _corrupt(d, kind)
    # expected: the reference's output without the bad file (moved out and
    # back, so the other files keep their directory order)
    aside = str(tmp_path / 'aside')
    os.makedirs(aside)
    shutil.move(os.path.join(d, bad), os.path.join(aside, bad))
    expected = collect_text(REF, d, tmp_path)
    shutil.move(os.path.join(aside, bad), os.path.join(d, bad))
    with pytest.raises(AssertionError):          # the reference chokes on it
        collect(REF, d, tmp_path)
    got, caught = collect(IMPL, d, tmp_path)
    assert_same_bytes(expected, got, f'fastprom with a {kind} file')
    naming = [w for w in caught if bad in w['message']]
    assert naming and all(w['category'] == 'UserWarning' for w in naming), caught
    others = [w for w in caught if bad not in w['message']]
    assert others == [], f'unexpected warnings: {others}'


def test_fastprom_env_var_set_after_import(tmp_path):
    d = tmp_path / 'mp'
    d.mkdir()
    info = run_script(IMPL, None, 'late_env', d)
    files = db_files(d)
    assert files == [f'counter_{info["pid"]}.db'], files
    keys = {e[0]: e[1] for e in entries(d / files[0])}
    after = json.dumps(['made_after', 'made_after_total', {}, 'Created after the env var'],
                       sort_keys=True)
    assert keys.get(after) == 2.0
    assert not any('made_before' in k for k in keys), 'a metric made before the env var was set'
    for reader in LIBS:
        s = samples_of(collect_text(reader, d, tmp_path))
        assert value(s, 'made_after_total') == 2.0
        assert not any(name.startswith('made_before') for name, _ in s)



MOST_RECENT_SETS = """
import sys
from unittest import mock
lib = __import__(sys.argv[1])
child = lib.Gauge('g_recent', 'g', ['k'], multiprocess_mode='mostrecent', registry=None).labels('x')
top = lib.Gauge('g_recent_top', 'g', multiprocess_mode='livemostrecent', registry=None)
for clock, gauge, amount in ((1234.5, child, 7), (1300.25, child, 2.5), (1400.0, top, 1.0)):
    with mock.patch('time.time', return_value=clock):
        gauge.set(amount)
"""


def test_mostrecent_set_stamps_the_time_of_the_call(tmp_path):
    """`set` of a mostrecent gauge (exact int and float amounts: fastprom's fast path) writes
    `time.time()` at the call, as patched: the same entries as the reference's."""
    written = {}
    for lib in LIBS:
        d = tmp_path / lib
        d.mkdir()
        env = {**os.environ, 'PROMETHEUS_MULTIPROC_DIR': str(d)}
        subprocess.run([sys.executable, '-c', MOST_RECENT_SETS, lib], env=env, check=True,
                       timeout=SCRIPT_TIMEOUT)
        written[lib] = {split_name(f)[0]: [e[:3] for e in entries(d / f)] for f in db_files(d)}
    assert written[IMPL] == written[REF]
    assert [e[1:] for e in written[IMPL]['gauge_mostrecent']] == [(2.5, 1300.25)]
    assert [e[1:] for e in written[IMPL]['gauge_livemostrecent']] == [(1.0, 1400.0)]


MOST_RECENT_SERVER = """
import sys
lib = __import__(sys.argv[1])
gauge = lib.Gauge('g_latest', 'g', ['k'], multiprocess_mode='mostrecent', registry=None)
for line in sys.stdin:
    key, amount = line.split()
    gauge.labels(key).set(float(amount))
    print('set', flush=True)
"""

# Linux's coarse wall clock, the one fastprom stamps `mostrecent` sets with (the time module
# has no name for it).
CLOCK_REALTIME_COARSE = 5


def wait_two_ticks():
    """Long enough that a coarse reading after it is later than any reading before it."""
    time.sleep(2 * time.clock_getres(CLOCK_REALTIME_COARSE) + 0.001)


def set_in(process, key, amount):
    process.stdin.write(f'{key} {amount}\n')
    process.stdin.flush()
    assert process.stdout.readline() == 'set\n'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the coarse clock is Linux\'s')
@pytest.mark.parametrize('writers', [(IMPL, IMPL), (REF, IMPL), (IMPL, REF)],
                         ids=['fastprom', 'ref_then_fastprom', 'fastprom_then_ref'])
def test_mostrecent_set_at_a_later_tick_in_another_process_wins(writers, tmp_path):
    """fastprom stamps `mostrecent` sets with the coarse wall clock (one kernel tick of
    resolution). A set made two ticks after another, in another process, wins for both
    collectors, also against the reference's precise stamps. Process 0 sets `a` first and
    `b` last, so a collector keeping the file it reads first would get one of them wrong."""
    d = tmp_path / 'mp'
    d.mkdir()
    processes = [subprocess.Popen([sys.executable, '-c', MOST_RECENT_SERVER, lib],
                                  env=script_env(lib, d), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
                 for lib in writers]
    try:
        set_in(processes[0], 'a', 1.0)
        wait_two_ticks()
        set_in(processes[1], 'a', 2.0)
        set_in(processes[1], 'b', 3.0)
        wait_two_ticks()
        set_in(processes[0], 'b', 4.0)
    finally:
        for process in processes:
            process.stdin.close()
            assert process.wait(timeout=SCRIPT_TIMEOUT) == 0
    texts = {reader: collect_text(reader, d, tmp_path) for reader in LIBS}
    assert_same_bytes(texts[REF], texts[IMPL], 'collecting the mostrecent gauge')
    samples = samples_of(texts[IMPL])
    assert (value(samples, 'g_latest', k='a'), value(samples, 'g_latest', k='b')) == (2.0, 4.0)


MOST_RECENT_SAME_TIME = """
import sys
from unittest import mock
lib = __import__(sys.argv[1])
gauge = lib.Gauge('g_tied', 'g', multiprocess_mode='mostrecent', registry=None)
with mock.patch('time.time', return_value=1000.0):
    gauge.set(float(sys.argv[2]))
"""


def test_mostrecent_sets_with_the_same_time_keep_the_first_file_read(tmp_path):
    """Sets stamped with the same time (two processes within one tick of fastprom's coarse
    clock can be): neither is later, and both collectors keep the value of the first file in
    directory order."""
    d = tmp_path / 'mp'
    d.mkdir()
    for amount in (1.0, 2.0, 3.0):
        subprocess.run([sys.executable, '-c', MOST_RECENT_SAME_TIME, IMPL, str(amount)],
                       env=script_env(IMPL, d), check=True, timeout=SCRIPT_TIMEOUT)
    first = glob.glob(os.path.join(str(d), 'gauge_mostrecent_*.db'))[0]
    [(_, expected, stamp, _)] = entries(first)
    assert stamp == 1000.0
    for reader in LIBS:
        assert value(samples_of(collect_text(reader, d, tmp_path)), 'g_tied') == expected, reader

DEPRECATION = ('prometheus_multiproc_dir variable has been deprecated in favor of the upper '
               'case naming PROMETHEUS_MULTIPROC_DIR')


@pytest.mark.parametrize('lib,when', [(REF, 'before_import'), (IMPL, 'before_import'),
                                      (IMPL, 'after_import')])
def test_legacy_lowercase_env_var(lib, when, tmp_path):
    """Only ``prometheus_multiproc_dir`` set: one DeprecationWarning, files are
    written and collected. Set before import, the first metric copies it into the
    uppercase variable as the reference's does. after_import is fastprom only (the
    reference decides at import): the metric reads it and writes nothing into
    os.environ; the warning comes from the collector, as the reference's collector
    warns."""
    d = tmp_path / 'mp'
    d.mkdir()
    res = run_script(lib, None, 'legacy_env', '1' if when == 'after_import' else '0',
                     extra_env={'MP_LEGACY_DIR': str(d)})
    dep = [w for w in res['warnings'] if w['category'] == 'DeprecationWarning']
    assert dep == [{'category': 'DeprecationWarning', 'message': DEPRECATION}], res['warnings']
    assert res['upper_after_metric'] == (None if when == 'after_import' else str(d))
    assert db_files(d) == [f'counter_{res["pid"]}.db']
    assert value(samples_of(res['output']), 'legacy_total') == 3.0


def test_fastprom_remove_and_clear_in_multiprocess_mode(tmp_path):
    """remove / remove_by_labels / clear: the series leave the merged output; a
    re-created child starts again from 0."""
    run_script(IMPL, tmp_path, 'remove')
    s = samples_of(collect_text(IMPL, tmp_path, tmp_path / 'out'))
    counter = {dict(lbl)['a'] + dict(lbl)['b']: v for (name, lbl), v in s.items()
               if name == 'rm_counter_total'}
    assert counter == {'1x': 1.0, '1y': 10.0, '3x': 10.0, '3y': 10.0}
    hist = {(name, frozenset(lbl)): v for (name, lbl), v in s.items() if name.startswith('rm_hist')}
    assert {dict(lbl)['k'] for _, lbl in hist} == {'q'}
    assert value(s, 'rm_hist_count', k='q') == 1.0 and value(s, 'rm_hist_sum', k='q') == 0.5
    assert value(s, 'rm_hist_bucket', k='q', le='1.0') == 1.0
    gauge = {dict(lbl)['k']: v for (name, lbl), v in s.items() if name == 'rm_gauge'}
    assert gauge == {'keep': 1.0}
    assert not any(name.startswith('rm_summary') for name, _ in s)


def test_fastprom_removed_series_are_gone_for_the_reference_collector_too(tmp_path):
    """The removal is in the files: prometheus_client's collector reading them
    gives the same bytes as fastprom's."""
    run_script(IMPL, tmp_path, 'remove')
    outputs = [collect_text(reader, tmp_path, tmp_path / 'out') for reader in LIBS]
    s = samples_of(outputs[0])
    assert value(s, 'rm_counter_total', a='2', b='x') is None, 'removed series still in the files'
    assert value(s, 'rm_counter_total', a='1', b='x') == 1.0
    assert value(s, 'rm_gauge', k='drop') is None
    assert_same_bytes(outputs[1], outputs[0], 'reference vs fastprom reading after removal')
