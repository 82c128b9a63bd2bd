"""Apps and helper scripts for the multiprocess tests.

The library is chosen by the environment variable ``MP_LIB``
(``prometheus_client``, the default, or ``fastprom``), so every process of a
test (writer scripts, collector scripts, gunicorn / uvicorn workers) uses the
library the test names.  ``PROMETHEUS_MULTIPROC_DIR`` is always set by the test
*before* the process starts, which is the only way the reference turns its
multiprocess mode on (it decides at import).

Used in three ways:

* ``python tests/mp_apps.py <command> ...`` - the scenario writers and the
  collectors the compatibility tests run in fresh subprocesses (see ``main``);
* ``gunicorn ... mp_apps:wsgi_app`` (with ``--chdir tests``) - a WSGI app;
* ``uvicorn --app-dir tests mp_apps:asgi_app`` - a Starlette ASGI app.

The apps are built lazily (module ``__getattr__``), so importing this module
for the scripts creates no metric.  Top-level imports: standard library only.
"""

import importlib
import json
import os
import sys
import threading
import time
import warnings

REF = 'prometheus_client'
IMPL = 'fastprom'


def lib_name():
    name = os.environ.get('MP_LIB', REF)
    if name not in (REF, IMPL):
        raise SystemExit(f'MP_LIB must be {REF!r} or {IMPL!r}, not {name!r}')
    return name


def load_lib(name=None):
    """The library's root module, with ``.multiprocess`` imported."""
    name = name or lib_name()
    root = importlib.import_module(name)
    importlib.import_module(name + '.multiprocess')
    if root.__name__ != name:        # e.g. fastprom.install() aliasing prometheus_client
        raise SystemExit(f'import {name} gave {root.__name__}: the comparison would be void')
    return root


# ---------------------------------------------------------------------------
# Scenarios: the same sequence of calls whatever the library.
#
# ``run(lib, i)`` is called in process number ``i`` (0-based) of a scenario.
# Every metric goes to a private registry (the values go to the files anyway).
# Processes of a scenario run one after the other, so ``mostrecent`` gauges
# have a well-defined winner (the last process that set the series).
# ---------------------------------------------------------------------------

UNICODE_VALUES = ['é', '日本語', '🚀 rocket', 'quote " back \\ nl \n end', '']


def scenario_counters(lib, i):
    reg = lib.CollectorRegistry()
    req = lib.Counter('http_requests', 'Requêtes servies — 日本語 "q" \\ back\nslash',
                      ['method', 'path'], registry=reg)
    # All processes create the same children first, in the same order.
    for m in ('GET', 'POST'):
        for p in UNICODE_VALUES:
            req.labels(m, p)
    req.labels('GET', 'é').inc(1 + i)
    req.labels(method='POST', path='日本語').inc(0.5 * (i + 1))
    req.labels('GET', '🚀 rocket').inc(0.1)      # not exact on purpose: same float order
    req.labels('GET', '🚀 rocket').inc(0.2)
    req.labels('POST', 'quote " back \\ nl \n end').inc(3)
    # a child only some processes have
    if i % 2 == 1:
        req.labels('PUT', 'ünïcødé/only-odd').inc(7)
    plain = lib.Counter('jobs_total', 'Jobs done', registry=reg)   # name given with _total
    plain.inc(i + 1)
    untouched = lib.Counter('never_incremented', 'Created but never incremented', registry=reg)
    del untouched
    unit = lib.Counter('payload', 'With a unit', unit='bytes', registry=reg)
    unit.inc(1024 * (i + 1))
    lib.Counter('labelled_but_no_child', 'No child ever made', ['x'], registry=reg)


GAUGE_MODES = ('all', 'liveall', 'min', 'livemin', 'max', 'livemax',
               'sum', 'livesum', 'mostrecent', 'livemostrecent')


def scenario_gauges(lib, i):
    reg = lib.CollectorRegistry()
    for mode in GAUGE_MODES:
        g = lib.Gauge(f'g_{mode}', f'Gauge in mode {mode} ✓', ['k'],
                      multiprocess_mode=mode, registry=reg)
        g.labels('x')
        g.labels('y')
        if mode in ('mostrecent', 'livemostrecent'):
            g.labels('x').set(10 * i + 1)
            g.labels('x').set(10 * i + 2)          # the later set wins
            if i == 0:
                g.labels('y').set(-3.5)            # only process 0: it wins though older
            if i == 1:
                g.labels('only_one').set(42)
        else:
            g.labels('x').set([5, -2.5, 17][i % 3] + i)
            g.labels('x').inc(0.25)
            g.labels('x').dec(0.125)
            # 'y' stays 0 in every process: 0 takes part in min/max/sum
            if i == 2:
                g.labels('late').set(float('inf') if mode.endswith('max') else 1.5)
    # mostrecent gauges never set: an entry with timestamp 0 -> no sample at all
    lib.Gauge('g_mostrecent_never', 'Never set', multiprocess_mode='mostrecent', registry=reg)
    lib.Gauge('g_livemostrecent_never', 'Never set (live)', multiprocess_mode='livemostrecent',
              registry=reg)
    nolabel = lib.Gauge('g_default_mode', 'Default mode is all', registry=reg)
    nolabel.set(i * 1.5)


def scenario_histograms(lib, i):
    reg = lib.CollectorRegistry()
    h = lib.Histogram('latency_seconds', 'Latency with custom buckets', ['route'],
                      buckets=[1e-05, 0.001, 0.1, 1, 2.5, 1e6, 1e20], registry=reg)
    h.labels('/a')
    h.labels('/é')
    for v in (0.0, 1e-05, 0.05, 0.1, 0.1 + i, 2.5, 3, 1e21, -1):
        h.labels('/a').observe(v)
    h.labels('/é').observe(0.001 * (i + 1))
    d = lib.Histogram('default_buckets', 'Default buckets', registry=reg)
    d.observe(0.3 * (i + 1))
    inf = lib.Histogram('explicit_inf', 'Buckets ending with +Inf', ['b', 'a'],
                        buckets=[1, 2, float('inf')], registry=reg)
    inf.labels(b='2', a='1').observe(1.5)
    if i == 1:
        inf.labels(b='z', a='y').observe(100)
    lib.Histogram('never_observed', 'Never observed', buckets=[1], registry=reg)


def scenario_summaries(lib, i):
    reg = lib.CollectorRegistry()
    s = lib.Summary('payload_size', 'Payload sizes ✓', ['kind'], registry=reg)
    s.labels('json')
    s.labels('proto')
    for v in (1, 2.5, 1024 * (i + 1), 0.1):
        s.labels('json').observe(v)
    if i != 1:
        s.labels('proto').observe(7)
    plain = lib.Summary('plain_summary', 'No labels', registry=reg)
    plain.observe(i)
    lib.Summary('never_summary', 'Never observed', registry=reg)


def scenario_mixed(lib, i):
    """All types together, every process writing something different."""
    reg = lib.CollectorRegistry()
    c = lib.Counter('mixed_requests', 'Requests', ['code'], registry=reg)
    g = lib.Gauge('mixed_inprogress', 'In progress', multiprocess_mode='livesum', registry=reg)
    m = lib.Gauge('mixed_last_seen', 'Last seen', multiprocess_mode='mostrecent', registry=reg)
    h = lib.Histogram('mixed_latency', 'Latency', buckets=[0.5, 1, 2], registry=reg)
    s = lib.Summary('mixed_size', 'Size', registry=reg)
    for k in range(5 + i):
        code = ['200', '404', '500'][k % 3]
        c.labels(code).inc()
        h.observe(k * 0.25)
        s.observe(k)
    g.inc(i + 1)
    g.dec(0.5)
    m.set(100 + i)


def scenario_edge(lib, i):
    """Reference quirks: help text differs between processes (the first file
    read gives the HELP line), label names declared out of order (output labels
    sorted), a user label named 'pid' on a counter (fine: only gauges add pid)."""
    reg = lib.CollectorRegistry()
    c = lib.Counter('versioned', f'Help of version {i}', ['zeta', 'alpha'], registry=reg)
    c.labels('z', 'a').inc(i + 1)
    p = lib.Counter('with_pid_label', 'A label named pid', ['pid'], registry=reg)
    p.labels('123').inc()
    g = lib.Gauge('sum_gauge', 'Sum gauge', ['b', 'a'], multiprocess_mode='sum', registry=reg)
    g.labels(b='1', a='2').set(0.1 * (i + 1))


def scenario_compaction(lib, i):
    """Kinds compaction folds: counters, histograms, summaries, min/max/sum/
    mostrecent gauges (no live or 'all' gauges)."""
    reg = lib.CollectorRegistry()
    c = lib.Counter('cp_requests', 'Requests', ['path'], registry=reg)
    for p in ('/a', '/b', '/é'):
        c.labels(p)
    c.labels('/a').inc(i + 1)
    c.labels('/b').inc(0.5)
    if i % 3 == 0:
        c.labels(f'/only-{i}').inc(2)
    h = lib.Histogram('cp_latency', 'Latency', ['path'], buckets=[0.25, 1, 4], registry=reg)
    h.labels('/a').observe(0.125 * (i % 5))
    h.labels('/b').observe(3)
    h.labels('/b').observe(100)
    s = lib.Summary('cp_size', 'Size', registry=reg)
    s.observe(i)
    for mode in ('min', 'max', 'sum', 'mostrecent'):
        g = lib.Gauge(f'cp_{mode}', f'Gauge {mode}', multiprocess_mode=mode, registry=reg)
        g.set(((i * 7) % 11) - 3)


SCENARIOS = {
    'counters': scenario_counters,
    'gauges': scenario_gauges,
    'histograms': scenario_histograms,
    'summaries': scenario_summaries,
    'mixed': scenario_mixed,
    'edge': scenario_edge,
    'compaction': scenario_compaction,
}


# ---------------------------------------------------------------------------
# Script commands
# ---------------------------------------------------------------------------

def _print_json(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def cmd_write(scenario, index, fake_pid=None):
    """Run one process of a scenario; print {"pid", "start", "end"}."""
    name = lib_name()
    start = time.time()
    lib = load_lib(name)
    if fake_pid is not None:
        if name != REF:
            raise SystemExit('--fake-pid is only possible with prometheus_client')
        from prometheus_client import values
        values.ValueClass = values.MultiProcessValue(lambda: int(fake_pid))
    SCENARIOS[scenario](lib, int(index))
    _print_json({'pid': os.getpid(), 'start': start, 'end': time.time()})


def _warnings_json(caught):
    return [{'category': w.category.__name__, 'message': str(w.message)} for w in caught]


def cmd_collect(out):
    """generate_latest of a fresh registry holding only MultiProcessCollector
    (path from the environment); bytes to ``out``, warnings to ``out``.warnings.json."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lib = load_lib()
        reg = lib.CollectorRegistry()
        lib.multiprocess.MultiProcessCollector(reg)
        data = lib.generate_latest(reg)
    with open(out, 'wb') as f:
        f.write(data)
    with open(out + '.warnings.json', 'w') as f:
        json.dump(_warnings_json(caught), f)


def cmd_merge(out, accumulate):
    """MultiProcessCollector.merge(sorted files, accumulate) dumped as JSON."""
    import glob
    lib = load_lib()
    files = sorted(glob.glob(os.path.join(os.environ['PROMETHEUS_MULTIPROC_DIR'], '*.db')))
    fams = lib.multiprocess.MultiProcessCollector.merge(files, accumulate=accumulate == 'true')
    dump = []
    for m in fams:
        dump.append([m.name, m.type, m.documentation, m.unit,
                     [[s.name, sorted(s.labels.items()), repr(float(s.value)), s.timestamp,
                       s.exemplar] for s in m.samples]])
    with open(out, 'w') as f:
        json.dump(dump, f, indent=1)


def cmd_mark_dead(pid):
    lib = load_lib()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lib.multiprocess.mark_process_dead(int(pid))
    _print_json(_warnings_json(caught))


def cmd_compact():
    lib = load_lib()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lib.multiprocess.compact()
    _print_json(_warnings_json(caught))


def cmd_hammer(threads, increments):
    """``threads`` threads each doing ``increments`` Counter.inc()."""
    lib = load_lib()
    c = lib.Counter('hammered', 'Hammered counter', registry=lib.CollectorRegistry())
    n = int(increments)
    barrier = threading.Barrier(int(threads))

    def work():
        barrier.wait()
        inc = c.inc
        for _ in range(n):
            inc()

    ts = [threading.Thread(target=work) for _ in range(int(threads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _print_json({'pid': os.getpid()})


def cmd_fork():
    """Fork after writing; report what parent and child see (JSON)."""
    lib = load_lib()
    reg = lib.REGISTRY            # in-process values are read back through it
    c = lib.Counter('forked', 'Counter across fork')
    g = lib.Gauge('forked_gauge', 'Gauge across fork', multiprocess_mode='all')
    c.inc(5)
    g.set(3)
    parent_pid = os.getpid()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            res = {'pid': os.getpid(),
                   'counter_before': reg.get_sample_value('forked_total'),
                   'gauge_before': reg.get_sample_value('forked_gauge')}
            c.inc(2)
            g.set(9)
            res['counter_after'] = reg.get_sample_value('forked_total')
            res['gauge_after'] = reg.get_sample_value('forked_gauge')
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    _, status = os.waitpid(child, 0)
    child_res = json.loads(b''.join(chunks) or b'{}')
    c.inc(1)
    parent_res = {'pid': parent_pid, 'status': status,
                  'counter': reg.get_sample_value('forked_total'),
                  'gauge': reg.get_sample_value('forked_gauge')}
    _print_json({'parent': parent_res, 'child': child_res})


def cmd_late_env(path):
    """fastprom: PROMETHEUS_MULTIPROC_DIR set after import, before metrics."""
    lib = load_lib()
    reg = lib.CollectorRegistry()
    before = lib.Counter('made_before', 'Created before the env var', registry=reg)
    before.inc(1)
    os.environ['PROMETHEUS_MULTIPROC_DIR'] = path
    after = lib.Counter('made_after', 'Created after the env var', registry=reg)
    after.inc(2)
    before.inc(1)
    _print_json({'pid': os.getpid()})


def cmd_legacy_env(set_after_import):
    """Only the lowercase prometheus_multiproc_dir is set (before import, or,
    for fastprom, after import when ``set_after_import`` is '1')."""
    legacy = os.environ.pop('MP_LEGACY_DIR')
    if set_after_import != '1':
        os.environ['prometheus_multiproc_dir'] = legacy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        lib = load_lib()
        if set_after_import == '1':
            os.environ['prometheus_multiproc_dir'] = legacy
        reg = lib.CollectorRegistry()
        c = lib.Counter('legacy', 'Legacy env var', registry=reg)
        c.inc(3)
        upper_after_metric = os.environ.get('PROMETHEUS_MULTIPROC_DIR')
        out_reg = lib.CollectorRegistry()
        lib.multiprocess.MultiProcessCollector(out_reg)
        text = lib.generate_latest(out_reg).decode()
    _print_json({'pid': os.getpid(), 'warnings': _warnings_json(caught),
                 'upper_after_metric': upper_after_metric, 'output': text})


def cmd_remove():
    """fastprom: remove / remove_by_labels / clear in multiprocess mode."""
    lib = load_lib()
    reg = lib.CollectorRegistry()
    c = lib.Counter('rm_counter', 'Removable', ['a', 'b'], registry=reg)
    for a in ('1', '2', '3'):
        for b in ('x', 'y'):
            c.labels(a, b).inc(10)
    c.remove('1', 'x')
    c.remove_by_labels({'a': '2'})
    c.labels('1', 'x').inc(1)                 # re-created: starts again from 0
    h = lib.Histogram('rm_hist', 'Cleared', ['k'], buckets=[1], registry=reg)
    h.labels('p').observe(0.5)
    h.labels('q').observe(2)
    h.clear()
    h.labels('q').observe(0.5)
    g = lib.Gauge('rm_gauge', 'Removed gauge', ['k'], multiprocess_mode='livesum', registry=reg)
    g.labels('keep').set(1)
    g.labels('drop').set(2)
    g.remove('drop')
    s = lib.Summary('rm_summary', 'Removed summary', ['k'], registry=reg)
    s.labels('gone').observe(4)
    s.clear()
    _print_json({'pid': os.getpid()})


COMMANDS = {
    'write': cmd_write,
    'collect': cmd_collect,
    'merge': cmd_merge,
    'mark_dead': cmd_mark_dead,
    'compact': cmd_compact,
    'hammer': cmd_hammer,
    'fork': cmd_fork,
    'late_env': cmd_late_env,
    'legacy_env': cmd_legacy_env,
    'remove': cmd_remove,
}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f'usage: mp_apps.py {{{",".join(COMMANDS)}}} ARGS...')
    COMMANDS[argv[0]](*argv[1:])


# ---------------------------------------------------------------------------
# Server apps (built on first access, in the worker process)
# ---------------------------------------------------------------------------

APP_PATHS = {'/a': 0.25, '/b': 0.75, '/c': 3.0}    # path -> observed latency (exact)
APP_BUCKETS = [0.5, 1.0, 2.0]

_app_lock = threading.Lock()
_app_state = {}


def _app_metrics():
    with _app_lock:
        if not _app_state:
            lib = load_lib()
            reg = lib.CollectorRegistry()
            requests = lib.Counter('app_requests', 'Requests handled', ['path'], registry=reg)
            latency = lib.Histogram('app_latency_seconds', 'Fake latency per request', ['path'],
                                    buckets=APP_BUCKETS, registry=reg)
            alive = lib.Gauge('app_workers_alive', 'Live workers', multiprocess_mode='livesum',
                              registry=reg)
            alive.set(1)
            _app_state.update(lib=lib, requests=requests, latency=latency, alive=alive)
        return _app_state


def _handle(path):
    """(status, content_type, body bytes) for a request path."""
    st = _app_metrics()
    lib = st['lib']
    if path == '/metrics':
        reg = lib.CollectorRegistry()
        lib.multiprocess.MultiProcessCollector(reg)
        return 200, lib.CONTENT_TYPE_LATEST, lib.generate_latest(reg)
    if path == '/pid':
        return 200, 'text/plain', str(os.getpid()).encode()
    if path in APP_PATHS:
        st['requests'].labels(path).inc()
        st['latency'].labels(path).observe(APP_PATHS[path])
        return 200, 'text/plain', b'ok'
    return 404, 'text/plain', b'not found'


def _make_wsgi_app():
    _app_metrics()                 # metrics exist (and alive=1) before the first request

    def wsgi_app(environ, start_response):
        status, ctype, body = _handle(environ.get('PATH_INFO', '/'))
        start_response(f'{status} {"OK" if status == 200 else "Not Found"}',
                       [('Content-Type', ctype), ('Content-Length', str(len(body))),
                        ('X-Worker-Pid', str(os.getpid()))])
        return [body]

    return wsgi_app


def _make_asgi_app():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    _app_metrics()

    async def endpoint(request):
        status, ctype, body = _handle(request.url.path)
        return Response(body, status_code=status, media_type=ctype,
                        headers={'X-Worker-Pid': str(os.getpid())})

    routes = [Route(p, endpoint) for p in list(APP_PATHS) + ['/metrics', '/pid']]
    return Starlette(routes=routes)


def __getattr__(name):
    if name == 'wsgi_app':
        app = _make_wsgi_app()
    elif name == 'asgi_app':
        app = _make_asgi_app()
    else:
        raise AttributeError(name)
    globals()[name] = app
    return app


if __name__ == '__main__':
    main(sys.argv[1:])
