"""Real-component tests: fastprom's push functions against a real Pushgateway.

Three ``prometheus-pushgateway`` processes (in memory, 127.0.0.1, free ports)
per module: one fed by fastprom, one fed by prometheus_client with the same
calls (differential comparison of what the gateway ends up exposing), and one
with basic auth (``--web.config.file`` with a bcrypt hash).  What the gateway
holds is read back from its ``/metrics`` with prometheus_client's text parser.
"""

import base64
import contextlib
import gzip
import http.server
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from typing import Dict, List, Tuple
from unittest import mock

import pytest

import fastprom
import fastprom.exposition as fp_expo
import prometheus_client
import prometheus_client.exposition as pc_expo
from prometheus_client.parser import text_string_to_metric_families as text_parse

import real_servers as rs

LIBS = {'ref': (prometheus_client, pc_expo), 'fp': (fastprom, fp_expo)}
PUSH_META = ('push_time_seconds', 'push_failure_time_seconds')
WAIT = 10.0


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def gateways(tmp_path_factory):
    """``{'ref': Pushgateway, 'fp': Pushgateway}``."""
    rs.require_binary('prometheus-pushgateway')
    workdir = tmp_path_factory.mktemp('real_pushgateway')
    with contextlib.ExitStack() as es:
        gws = {}
        for name in ('ref', 'fp'):
            gws[name] = rs.Pushgateway(workdir, name=f'pushgateway-{name}')
            es.callback(gws[name].stop)
        for gw in gws.values():
            gw.wait_ready()
        yield gws


@dataclass
class Snapshot:
    """What a gateway exposes for the pushed jobs (its own metrics excluded)."""
    groups: List[Dict[str, str]] = field(default_factory=list)        # push_time_seconds label sets
    families: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # name -> (type, help)
    samples: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = field(default_factory=dict)

    def group(self, labels):
        return {k: v for k, v in self.samples.items() if dict(k[1]).items() >= labels.items()}

    def comparable(self):
        return (sorted(tuple(sorted(g.items())) for g in self.groups), self.families, self.samples)


def snapshot(gw_url, job_prefix, headers=None):
    body = rs.http_get_ok(gw_url + '/metrics', headers=headers).decode()
    snap = Snapshot()
    for family in text_parse(body):
        for s in family.samples:
            job = s.labels.get('job')
            if job is None or not job.startswith(job_prefix):
                continue
            if s.name == 'push_time_seconds':
                snap.groups.append(dict(s.labels))
                continue  # its value is the push time
            snap.families[family.name] = (family.type, family.documentation)
            snap.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return snap


def group_labels(job, grouping_key=None):
    """The label set the gateway gives a group (it adds instance="" if missing)."""
    labels = {'job': job, 'instance': ''}
    labels.update({str(k): str(v) for k, v in (grouping_key or {}).items()})
    return labels


def wait_group_gone(gw_url, job_prefix, labels, headers=None):
    # DELETE is answered 202 and applied asynchronously by the gateway.
    rs.wait_until(lambda: labels not in snapshot(gw_url, job_prefix, headers).groups,
                  WAIT, f'group {labels} to disappear from {gw_url}')


def names_in(samples):
    return sorted({name for name, _ in samples})


def worker_registry(lib, queue_depth=5, processed=3):
    reg = lib.CollectorRegistry()
    lib.Gauge('pg_queue_depth', 'Items waiting', ['queue'], registry=reg).labels('high').set(queue_depth)
    lib.Counter('pg_processed', 'Items processed', registry=reg).inc(processed)
    return reg


# ---------------------------------------------------------------------------
# fastprom against the real gateway
# ---------------------------------------------------------------------------

GROUPING_KEY = {
    'instance': 'host-1:9100/sub/path',   # '/' => instance@base64
    'path': '/var/lib/a b',               # '/' and ' ' => base64
    'empty': '',                          # '' => empty@base64/=
    'plus': 'a+b=c&d%',                   # quote_plus
    'unicode': 'ünï€😀',                  # quote_plus of UTF-8
    'spaced': 'x y',                      # ' ' => base64
    'shard': 3,                           # str()-coerced
}


def test_push_grouping_key_labels(gateways):
    gw = gateways['fp']
    job = 'pg_gk/job with slash'
    fastprom.push_to_gateway(gw.address, job, worker_registry(fastprom), grouping_key=GROUPING_KEY)
    snap = snapshot(gw.url, 'pg_gk')
    expected = group_labels(job, GROUPING_KEY)
    assert snap.groups == [expected]
    group = tuple(sorted(expected.items()))
    created = snap.samples.pop(('pg_processed_created', group))
    assert abs(created - time.time()) < 600
    assert snap.samples == {
        ('pg_queue_depth', tuple(sorted({**expected, 'queue': 'high'}.items()))): 5.0,
        ('pg_processed_total', group): 3.0,
        ('push_failure_time_seconds', group): 0.0,
    }
    # The same key is understood by the gateway for delete as well.
    fastprom.delete_from_gateway(gw.address, job, grouping_key=GROUPING_KEY)
    wait_group_gone(gw.url, 'pg_gk', expected)
    assert snapshot(gw.url, 'pg_gk').samples == {}


def test_push_replaces_pushadd_keeps(gateways):
    gw, job = gateways['fp'], 'pg_replace'
    key1, key2 = {'instance': 'r1'}, {'instance': 'r2'}
    g1, g2 = group_labels(job, key1), group_labels(job, key2)

    fastprom.push_to_gateway(gw.url, job, worker_registry(fastprom, 7, 70), grouping_key=key2)
    other_before = snapshot(gw.url, job).group(g2)

    reg = fastprom.CollectorRegistry()
    fastprom.Counter('pg_a', 'a', registry=reg).inc(1)
    fastprom.Gauge('pg_b', 'b', registry=reg).set(1)
    fastprom.push_to_gateway(gw.url, job, reg, grouping_key=key1)
    snap = snapshot(gw.url, job)
    assert names_in(snap.group(g1)) == ['pg_a_created', 'pg_a_total', 'pg_b', 'push_failure_time_seconds']

    reg = fastprom.CollectorRegistry()
    fastprom.Gauge('pg_b', 'b', registry=reg).set(2)
    fastprom.Gauge('pg_c', 'c', registry=reg).set(3)
    fastprom.pushadd_to_gateway(gw.url, job, reg, grouping_key=key1)
    group = snapshot(gw.url, job).group(g1)
    values = {name: v for (name, _), v in group.items()}
    assert names_in(group) == ['pg_a_created', 'pg_a_total', 'pg_b', 'pg_c', 'push_failure_time_seconds']
    assert (values['pg_a_total'], values['pg_b'], values['pg_c']) == (1.0, 2.0, 3.0)

    reg = fastprom.CollectorRegistry()
    fastprom.Gauge('pg_d', 'd', registry=reg).set(4)
    fastprom.push_to_gateway(gw.url, job, reg, grouping_key=key1)
    snap = snapshot(gw.url, job)
    group = snap.group(g1)
    assert names_in(group) == ['pg_d', 'push_failure_time_seconds']
    assert group[('pg_d', tuple(sorted(g1.items())))] == 4.0
    # The other group of the same job was never touched.
    assert snap.group(g2) == other_before and len(other_before) == 4
    assert sorted(tuple(sorted(g.items())) for g in snap.groups) == sorted(
        [tuple(sorted(g1.items())), tuple(sorted(g2.items()))])


def test_delete_removes_only_that_group(gateways):
    gw, job = gateways['fp'], 'pg_delete'
    keys = [{'instance': 'd/1', 'empty': ''}, {'instance': 'd/2', 'empty': ''}, None]
    for key in keys:
        fastprom.push_to_gateway(gw.url, job, worker_registry(fastprom), grouping_key=key)
    assert len(snapshot(gw.url, job).groups) == 3
    fastprom.delete_from_gateway(gw.url, job, grouping_key=keys[0])
    wait_group_gone(gw.url, job, group_labels(job, keys[0]))
    snap = snapshot(gw.url, job)
    assert sorted(g['instance'] for g in snap.groups) == ['', 'd/2']
    assert snap.group(group_labels(job, keys[0])) == {}
    assert len(snap.group(group_labels(job, keys[1]))) == 4
    fastprom.delete_from_gateway(gw.url, job)  # grouping key None: only {job, instance=""}
    wait_group_gone(gw.url, job, group_labels(job))
    assert [g['instance'] for g in snapshot(gw.url, job).groups] == ['d/2']


def test_gzip_compression(gateways):
    gw, job = gateways['fp'], 'pg_gzip'
    sent = []

    def recording_handler(url, method, timeout, headers, data):
        sent.append((method, url, list(headers), data))
        return fp_expo.default_handler(url, method, timeout, headers, data)

    reg = worker_registry(fastprom, 11, 12)
    fastprom.push_to_gateway(gw.url, job, reg, grouping_key={'instance': 'gz/1'},
                             handler=recording_handler, compression='gzip')
    extra = fastprom.CollectorRegistry()
    fastprom.Gauge('pg_extra', 'extra', registry=extra).set(13)
    fastprom.pushadd_to_gateway(gw.url, job, extra, grouping_key={'instance': 'gz/1'},
                                handler=recording_handler, compression='gzip')
    for method, url, headers, data in sent:
        assert ('Content-Encoding', 'gzip') in headers
        assert data[:2] == b'\x1f\x8b'
    assert [m for m, *_ in sent] == ['PUT', 'POST']
    assert gzip.decompress(sent[0][3]) == fastprom.generate_latest(reg)
    assert sent[0][1] == f'{gw.url}/metrics/job/{job}/instance@base64/{base64.urlsafe_b64encode(b"gz/1").decode()}'
    group = snapshot(gw.url, job).group(group_labels(job, {'instance': 'gz/1'}))
    values = {name: v for (name, _), v in group.items()}
    assert (values['pg_queue_depth'], values['pg_processed_total'], values['pg_extra']) == (11.0, 12.0, 13.0)


# ---------------------------------------------------------------------------
# Basic auth
# ---------------------------------------------------------------------------

USER, PASSWORD = 'alice', 'pa:ss w0rd'  # ':' in the password: only the first one splits


class _AuthCheckingHandler(http.server.BaseHTTPRequestHandler):
    """Fallback gateway stand-in: checks the Authorization header, records requests."""
    expected = 'Basic ' + base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()
    received: list

    def _handle(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        self.received.append((self.command, self.path, self.headers.get('Authorization'), body))
        ok = self.headers.get('Authorization') == self.expected
        self.send_response((202 if self.command == 'DELETE' else 200) if ok else 401)
        self.send_header('Content-Length', '0')
        self.end_headers()

    do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, *args):
        pass


@dataclass
class AuthTarget:
    url: str
    real: bool  # a real pushgateway (else the fallback stand-in)
    received: list


@pytest.fixture(scope='module')
def auth_target(tmp_path_factory):
    hashed = rs.bcrypt_hash(PASSWORD)
    if hashed is not None:
        rs.require_binary('prometheus-pushgateway')
        workdir = tmp_path_factory.mktemp('real_pushgateway_auth')
        web_config = f"basic_auth_users:\n  {USER}: '{hashed}'\n"
        with rs.pushgateway_server(workdir, 'pushgateway-auth', web_config) as gw:
            yield AuthTarget(gw.url, True, [])
        return
    # Neither the `bcrypt` package nor a bcrypt-capable stdlib `crypt` is
    # available to write the gateway's web config: check the header with a
    # local HTTP server instead (the gateway's side is then not exercised).
    received = []
    handler = type('Handler', (_AuthCheckingHandler,), {'received': received})
    server = http.server.ThreadingHTTPServer((rs.LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield AuthTarget(f'http://{rs.LOOPBACK}:{server.server_port}', False, received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _auth_handler(username, password):
    def handler(url, method, timeout, headers, data):
        return fp_expo.basic_auth_handler(url, method, timeout, headers, data, username, password)
    return handler


def _auth_headers():
    return {'Authorization': 'Basic ' + base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}


def test_basic_auth(auth_target):
    job, key = 'pg_auth', {'instance': 'a/1'}
    reg = worker_registry(fastprom, 21, 22)
    for handler in (fp_expo.default_handler, _auth_handler(USER, 'wrong'), _auth_handler('bob', PASSWORD)):
        with pytest.raises(urllib.error.HTTPError) as err:
            fastprom.push_to_gateway(auth_target.url, job, reg, grouping_key=key, handler=handler)
        assert err.value.code == 401

    good = _auth_handler(USER, PASSWORD)
    fastprom.push_to_gateway(auth_target.url, job, reg, grouping_key=key, handler=good)
    extra = fastprom.CollectorRegistry()
    fastprom.Gauge('pg_extra', 'extra', registry=extra).set(23)
    fastprom.pushadd_to_gateway(auth_target.url, job, extra, grouping_key=key, handler=good, compression='gzip')
    labels = group_labels(job, key)
    if auth_target.real:
        with pytest.raises(urllib.error.HTTPError) as err:
            rs.http_get_ok(auth_target.url + '/metrics')
        assert err.value.code == 401
        group = snapshot(auth_target.url, job, _auth_headers()).group(labels)
        values = {name: v for (name, _), v in group.items()}
        assert (values['pg_queue_depth'], values['pg_processed_total'], values['pg_extra']) == (21.0, 22.0, 23.0)
    fastprom.delete_from_gateway(auth_target.url, job, grouping_key=key, handler=good)
    if auth_target.real:
        wait_group_gone(auth_target.url, job, labels, _auth_headers())
    else:
        expected = _AuthCheckingHandler.expected
        assert [(m, a == expected) for m, _, a, _ in auth_target.received] == [
            ('PUT', False), ('PUT', False), ('PUT', False), ('PUT', True), ('POST', True), ('DELETE', True)]
        assert auth_target.received[3][3] == fastprom.generate_latest(reg)
        assert gzip.decompress(auth_target.received[4][3]) == fastprom.generate_latest(extra)


# ---------------------------------------------------------------------------
# Differential: the same pushes from prometheus_client and fastprom
# ---------------------------------------------------------------------------

def _extra_registry(lib):
    reg = lib.CollectorRegistry()
    with mock.patch('time.time', return_value=rs.FIXED_TIME):
        lib.Gauge('extra_queue_depth', 'Queue depth "per" queue\\n', ['queue'], registry=reg).labels('q/1').set(9)
        # Same name and help as in build_static_metrics: pushadd replaces it.
        lib.Counter('static_plain', 'No labels at all', registry=reg).inc(10)
    return reg


def _replacement_registry(lib):
    reg = lib.CollectorRegistry()
    lib.Gauge('replacement_only', 'Replaces everything in its group', registry=reg).set(-1.5)
    return reg


REGISTRIES = {
    'static': lambda lib: rs.build_static_metrics(lib, lib.CollectorRegistry()),
    'extra': _extra_registry,
    'replacement': _replacement_registry,
}

# (operation, job, grouping_key, registry, compression)
DIFF_OPS = [
    ('push', 'diff_a', {'instance': 'i/1', 'empty': ''}, 'static', None),
    ('pushadd', 'diff_a', {'instance': 'i/1', 'empty': ''}, 'extra', None),
    ('push', 'diff job/with slash', {'k': 'a b', 'n': 7, 'u': 'ü+%'}, 'extra', 'gzip'),
    ('pushadd', 'diff_gz', None, 'static', 'gzip'),
    ('push', 'diff_a', {'instance': 'i/2'}, 'extra', None),
    ('delete', 'diff_a', {'instance': 'i/1', 'empty': ''}, None, None),
    ('push', 'diff_a', {'instance': 'i/2'}, 'replacement', None),
    ('delete', 'diff job/with slash', {'k': 'a b', 'n': 7, 'u': 'ü+%'}, None, None),
    ('pushadd', 'diff_a', {'instance': 'i/2'}, 'static', 'gzip'),
]


def _apply(lib, gw, op, job, key, registry_name, compression):
    if op == 'delete':
        lib.delete_from_gateway(gw.address, job, grouping_key=key)
        wait_group_gone(gw.url, 'diff', group_labels(job, key))
        return
    registry = REGISTRIES[registry_name](lib)
    push = lib.push_to_gateway if op == 'push' else lib.pushadd_to_gateway
    push(gw.address, job, registry, grouping_key=key, compression=compression)


def test_differential_with_prometheus_client(gateways):
    sizes = []
    for step, (op, job, key, registry_name, compression) in enumerate(DIFF_OPS):
        snaps = {}
        for name, (lib, _) in LIBS.items():
            _apply(lib, gateways[name], op, job, key, registry_name, compression)
            snaps[name] = snapshot(gateways[name].url, 'diff')
        ref, fp = snaps['ref'].comparable(), snaps['fp'].comparable()
        assert fp[0] == ref[0], f'step {step} {op} {job}: groups differ'
        assert fp[1] == ref[1], f'step {step} {op} {job}: families (type, HELP) differ'
        assert fp[2] == ref[2], f'step {step} {op} {job}: samples differ'
        sizes.append(len(ref[2]))
    # The scenario really added, replaced and removed series.
    assert sizes[0] > 30 and sizes[1] > sizes[0] and sizes[5] < sizes[4] and sizes[6] < sizes[5]
