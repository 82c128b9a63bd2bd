"""`python -m fastprom dashboard` / `prometheus-config`, and the FASTPROM_INSTALL=1 hook.

No BentoML needed: the dashboard is built from a fastprom registry served in-process,
its PromQL is checked by `promtool check rules`, the config by `promtool check config`.
The real-BentoML, real-Prometheus side is in test_bentoml_real.py.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

import real_servers as rs

REPO = os.path.dirname(rs.TESTS_DIR)
EXAMPLE_DIR = os.path.join(REPO, 'examples', 'bentoml')
HOOK = os.path.join(REPO, 'python', 'fastprom_install.pth')


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, '-m', 'fastprom', *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def promtool(*args):
    binary = rs.require_binary('promtool')
    proc = subprocess.run([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return proc.returncode, proc.stdout.decode()


# ---------------------------------------------------------------------------
# prometheus-config
# ---------------------------------------------------------------------------

def test_prometheus_config_is_valid(tmp_path):
    text = cli('prometheus-config', '--target', '127.0.0.1:3000', '--target', 'bento.local:3001',
               '--job', 'my service', '--interval', '1m30s', '--metrics-path', '/x/metrics').stdout.decode()
    path = tmp_path / 'prometheus.yml'
    path.write_text(text)
    code, out = promtool('check', 'config', str(path))
    assert code == 0, out
    assert 'scrape_interval: 1m30s' in text
    assert '- job_name: "my service"' in text
    assert 'metrics_path: "/x/metrics"' in text
    assert '- targets: ["127.0.0.1:3000", "bento.local:3001"]' in text


@pytest.mark.parametrize('args', [
    ['--target', 'localhost'], ['--target', 'host:0'], ['--target', 'host:port'],
    ['--target', 'h:1', '--interval', '15'], ['--target', 'h:1', '--interval', '0s'],
    ['--target', 'h:1', '--metrics-path', 'metrics'], ['--target', 'h:1', '--job', ' '], [],
])
def test_prometheus_config_rejects_bad_arguments(args):
    proc = cli('prometheus-config', *args, check=False)
    assert proc.returncode == 2 and b'error' in proc.stderr


def test_example_prometheus_config_is_generated():
    expected = cli('prometheus-config', '--target', '127.0.0.1:3000', '--interval', '5s').stdout.decode()
    with open(os.path.join(EXAMPLE_DIR, 'prometheus.yml')) as f:
        assert f.read() == expected


# ---------------------------------------------------------------------------
# dashboard
# ---------------------------------------------------------------------------

def check_dashboard_shape(dashboard):
    """Imports cleanly: datasource variable, unique ids, panels on the grid without overlap."""
    variables = dashboard['templating']['list']
    assert [(v['name'], v['type'], v['query']) for v in variables] == [
        ('datasource', 'datasource', 'prometheus')]
    ids = [p['id'] for p in dashboard['panels']]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in dashboard['panels']:
        g = p['gridPos']
        assert g['x'] + g['w'] <= 24
        mine = {(x, y) for x in range(g['x'], g['x'] + g['w']) for y in range(g['y'], g['y'] + g['h'])}
        assert not mine & cells, p['title']
        cells |= mine
        if p['type'] == 'row':
            continue
        assert p['datasource'] == {'type': 'prometheus', 'uid': '${datasource}'}
        assert p['targets'] and all(t['datasource'] == p['datasource'] for t in p['targets'])
        assert [t['refId'] for t in p['targets']] == [chr(65 + i) for i in range(len(p['targets']))]


def check_promql(tmp_path, dashboard):
    """Every expression parses (promtool check rules), with Grafana's variable filled in."""
    from fastprom.dashboard import expressions
    rules = [{'record': f'check:expr{i}', 'expr': e.replace('$__rate_interval', '1m')}
             for i, e in enumerate(expressions(dashboard))]
    path = tmp_path / 'rules.yml'
    path.write_text(json.dumps({'groups': [{'name': 'dashboard', 'rules': rules}]}))  # JSON is YAML
    code, out = promtool('check', 'rules', str(path))
    assert code == 0, out


def test_default_dashboard(tmp_path):
    dashboard = json.loads(cli('dashboard', '--namespace', 'my_ns', '--title', 'My service').stdout)
    assert dashboard['title'] == 'My service'
    check_dashboard_shape(dashboard)
    check_promql(tmp_path, dashboard)
    from fastprom.dashboard import expressions
    exprs = expressions(dashboard)
    assert 'sum by (endpoint, http_response_code) (rate(my_ns_request_total[$__rate_interval]))' in exprs
    for q in ('0.5', '0.95', '0.99'):
        assert (f'histogram_quantile({q}, sum by (le, endpoint) '
                '(rate(my_ns_request_duration_seconds_bucket[$__rate_interval])))') in exprs
    assert any('my_ns_request_total{http_response_code=~"5.."}' in e for e in exprs)
    assert any('my_ns_request_in_progress' in e for e in exprs)
    assert any('bentoml_service_adaptive_batch_size_bucket' in e for e in exprs)


def test_dashboard_from_url(tmp_path):
    """Custom metrics get a panel each; the namespace's defaults and the batch size do not."""
    import fastprom
    registry = fastprom.CollectorRegistry()
    labels = ['model', 'cls']  # exposed (so listed) sorted: cls, model
    histogram = fastprom.Histogram('inference_duration_seconds', 'Inference', labels, registry=registry)
    histogram.labels('m', 'a').observe(1)
    fastprom.Counter('polarity', 'By polarity', ['polarity'], registry=registry).labels('pos').inc()
    fastprom.Gauge('queue_depth', 'Queue', registry=registry).set(3)
    fastprom.Summary('payload_bytes', 'Payload', registry=registry).observe(10)
    # BentoML's defaults under namespace svc, and the batch-size histogram: no panel.
    fastprom.Counter('svc_request', 'default', ['endpoint'], registry=registry).labels('/x').inc()
    fastprom.Histogram('svc_request_duration_seconds', 'default', registry=registry).observe(1)
    fastprom.Gauge('svc_request_in_progress', 'default', registry=registry).set(0)
    fastprom.Histogram('bentoml_service_adaptive_batch_size', 'batch', registry=registry).observe(1)
    server, thread = fastprom.start_http_server(0, addr=rs.LOOPBACK, registry=registry)
    try:
        url = f'http://{rs.LOOPBACK}:{server.server_port}/metrics'
        dashboard = json.loads(cli('dashboard', '--namespace', 'svc', '--from-url', url).stdout)
    finally:
        server.shutdown()
        thread.join(5)
    check_dashboard_shape(dashboard)
    check_promql(tmp_path, dashboard)
    custom = dashboard['panels'][dashboard['panels'].index(
        next(p for p in dashboard['panels'] if p['title'] == 'Custom metrics')) + 1:]
    got = {p['title']: p['targets'][0]['expr'] for p in custom}
    assert got == {
        'inference_duration_seconds (p95)': 'histogram_quantile(0.95, sum by (le, cls, model) '
                                            '(rate(inference_duration_seconds_bucket[$__rate_interval])))',
        'payload_bytes (mean)': 'sum (rate(payload_bytes_sum[$__rate_interval])) / '
                                'sum (rate(payload_bytes_count[$__rate_interval]))',
        'polarity_total (rate)': 'sum by (polarity) (rate(polarity_total[$__rate_interval]))',
        'queue_depth': 'queue_depth',
    }
    assert [p['title'] for p in custom] == sorted(got)
    assert custom[0]['fieldConfig']['defaults']['unit'] == 's'


def test_dashboard_errors():
    proc = cli('dashboard', '--namespace', 'bad-name', check=False)
    assert proc.returncode == 2 and b'namespace' in proc.stderr
    port = rs.free_port()
    proc = cli('dashboard', '--from-url', f'http://{rs.LOOPBACK}:{port}/metrics', check=False)
    assert proc.returncode == 1 and b'could not scrape' in proc.stderr


def test_demo_still_works():
    out = cli('demo', '--once').stdout.decode()
    assert 'http_requests_total{' in out


# ---------------------------------------------------------------------------
# The FASTPROM_INSTALL=1 hook (.pth)
# ---------------------------------------------------------------------------

PROBE = ('import site, sys; site.addsitedir(sys.argv[1]); '
         'loaded = "fastprom" in sys.modules; import prometheus_client; '
         'print(loaded, prometheus_client.__name__)')


@pytest.mark.parametrize('value, expected', [
    (None, 'False prometheus_client'), ('0', 'False prometheus_client'), ('', 'False prometheus_client'),
    ('1', 'True fastprom'),
])
def test_pth_hook(tmp_path, value, expected):
    """The repo's .pth, processed by `site` like any site directory's: fastprom only if =1."""
    shutil.copy(HOOK, tmp_path / 'fastprom_install.pth')
    env = {k: v for k, v in os.environ.items() if k != 'FASTPROM_INSTALL'}
    if value is not None:
        env['FASTPROM_INSTALL'] = value
    proc = subprocess.run([sys.executable, '-c', PROBE, str(tmp_path)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == expected.split()
    assert b'Error processing line' not in proc.stderr


def test_pth_hook_is_one_import_line():
    with open(HOOK) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('import ')  # site only executes such lines


def test_wheel_ships_the_hook():
    """pyproject's `[tool.maturin] include` puts the .pth at the root of site-packages."""
    import fastprom
    site_dir = os.path.dirname(os.path.dirname(os.path.realpath(fastprom.__file__)))
    if site_dir == os.path.realpath(os.path.join(REPO, 'python')):
        pytest.skip('editable install: maturin does not ship the .pth there (pip install . does)')
    with open(os.path.join(site_dir, 'fastprom_install.pth')) as installed, open(HOOK) as source:
        assert installed.read() == source.read()
