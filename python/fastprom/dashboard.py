"""An importable Grafana dashboard for a BentoML service (`python -m fastprom dashboard`).

Panels for BentoML's default metrics (request rate, error ratio, latency quantiles,
requests in progress, time since the last request, adaptive batch size) under a
namespace, plus, optionally, one panel per custom metric found by scraping the
service's `/metrics`.  Every query goes through a `datasource` template variable,
so the JSON imports cleanly (Dashboards > New > Import) and works when provisioned.
"""

import hashlib
import json
import re
import urllib.request
from typing import Dict, Iterable, List, Optional, Sequence

DEFAULT_NAMESPACE = 'bentoml_service'
# BentoML hard-codes this name: `metrics.namespace` does not change it.
ADAPTIVE_BATCH_SIZE = 'bentoml_service_adaptive_batch_size'
# Family names (as parsed: counters without `_total`) of BentoML's default metrics, after `<namespace>_`.
DEFAULT_FAMILIES = (
    'request', 'request_duration_seconds', 'request_in_progress', 'last_request_timestamp_seconds',
    'websocket_connections', 'websocket_data_received', 'websocket_data_sent',
)
RATE_INTERVAL = '$__rate_interval'
DATASOURCE = {'type': 'prometheus', 'uid': '${datasource}'}
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
CUSTOM_QUANTILE = 0.95
SCHEMA_VERSION = 39
PANEL_WIDTH, PANEL_HEIGHT = 12, 8

_NAME_RE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*\Z')
_LABEL_RE = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*\Z')


def is_valid_namespace(namespace: str) -> bool:
    return bool(_NAME_RE.match(namespace))


# ---------------------------------------------------------------------------
# PromQL
# ---------------------------------------------------------------------------

def rate(selector: str) -> str:
    return f'rate({selector}[{RATE_INTERVAL}])'


def by(labels: Sequence[str]) -> str:
    """`sum by (a, b) ` or plain `sum ` when there are no labels."""
    return f'sum by ({", ".join(labels)}) ' if labels else 'sum '


def quantile(q: float, histogram: str, labels: Sequence[str], native: bool = False) -> str:
    """`histogram_quantile` over a histogram's classic `_bucket` series, or over its native
    series (no `le` to keep) when it has native buckets."""
    if native:
        return f'histogram_quantile({q}, {by(labels)}({rate(histogram)}))'
    return f'histogram_quantile({q}, {by(["le", *labels])}({rate(histogram + "_bucket")}))'


def legend(labels: Sequence[str], prefix: str = '') -> str:
    text = ' '.join('{{%s}}' % label for label in labels)
    return ' '.join(part for part in (prefix, text) if part) or '__auto'


# ---------------------------------------------------------------------------
# Panels (ids and positions are set by build_dashboard)
# ---------------------------------------------------------------------------

def target(expr: str, legend_format: str) -> Dict:
    return {'datasource': DATASOURCE, 'expr': expr, 'legendFormat': legend_format}


def panel(title: str, targets: List[Dict], unit: str, description: str = '') -> Dict:
    for i, t in enumerate(targets):
        t['refId'] = chr(ord('A') + i)
    return {
        'type': 'timeseries',
        'title': title,
        'description': description,
        'datasource': DATASOURCE,
        'fieldConfig': {'defaults': {'unit': unit}, 'overrides': []},
        'options': {'legend': {'displayMode': 'list', 'placement': 'bottom', 'showLegend': True},
                    'tooltip': {'mode': 'multi', 'sort': 'desc'}},
        'targets': targets,
    }


def row(title: str) -> Dict:
    return {'type': 'row', 'title': title, 'collapsed': False, 'panels': []}


def default_panels(namespace: str = DEFAULT_NAMESPACE, native_histograms: Iterable[str] = ()) -> List[Dict]:
    """Panels for BentoML's default metrics under `namespace`; the histograms named in
    `native_histograms` are queried through their native series."""
    n = namespace
    natives = set(native_histograms)
    requests = f'{n}_request_total'
    errors = f'{n}_request_total{{http_response_code=~"5.."}}'
    duration = f'{n}_request_duration_seconds'
    batch = ADAPTIVE_BATCH_SIZE
    return [
        panel('Request rate by endpoint and status code',
              [target(f'{by(["endpoint", "http_response_code"])}({rate(requests)})',
                      '{{endpoint}} {{http_response_code}}')],
              'reqps', 'Requests per second, all workers together.'),
        panel('Error ratio (5xx / all requests)',
              [target(f'sum({rate(errors)}) / sum({rate(requests)})', 'error ratio')],
              'percentunit', 'Share of requests answered with a 5xx status code.'),
        panel('Latency by endpoint (p50, p95, p99)',
              [target(quantile(q, duration, ['endpoint'], duration in natives),
                      f'p{round(q * 100)} {{{{endpoint}}}}')
               for q in LATENCY_QUANTILES],
              's', 'Request duration quantiles estimated from the duration histogram.'),
        panel('Requests in progress',
              [target(f'{by(["endpoint"])}({n}_request_in_progress)', '{{endpoint}}')],
              'short', 'Requests being handled right now, all workers together.'),
        panel('Time since the last request',
              [target(f'time() - max by (runner_name) ({n}_last_request_timestamp_seconds)',
                      '{{runner_name}}')],
              's', 'Seconds since any worker received a request.'),
        panel('Adaptive batch size',
              [target(quantile(CUSTOM_QUANTILE, batch, ['method_name'], batch in natives),
                      'p95 {{method_name}}'),
               target(f'{by(["method_name"])}({rate(batch + "_sum")}) / '
                      f'{by(["method_name"])}({rate(batch + "_count")})', 'mean {{method_name}}')],
              'short', 'Requests merged into one batch (batchable APIs only).'),
    ]


# ---------------------------------------------------------------------------
# Custom metrics found by scraping
# ---------------------------------------------------------------------------

def scrape_families(url: str, timeout: float = 10.0) -> list:
    """The metric families served at `url`, parsed with fastprom's text-format parser."""
    from .parser import text_string_to_metric_families
    request = urllib.request.Request(url, headers={'Accept': 'text/plain'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode('utf-8')
    return list(text_string_to_metric_families(text))


PROTOBUF_ACCEPT = ('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;'
                   'encoding=delimited')


def scrape_native_histograms(url: str, timeout: float = 10.0) -> List[str]:
    """The histograms served at `url` with native buckets, asked for as Prometheus asks for
    them (protobuf); none when the server does not answer protobuf."""
    from . import _native
    request = urllib.request.Request(url, headers={'Accept': PROTOBUF_ACCEPT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not response.headers.get('Content-Type', '').startswith('application/vnd.google.protobuf'):
            return []
        return _native.native_histogram_families(response.read())


def is_custom(family, namespace: str) -> bool:
    defaults = {f'{namespace}_{name}' for name in DEFAULT_FAMILIES} | {ADAPTIVE_BATCH_SIZE}
    return family.name not in defaults


def family_labels(family) -> List[str]:
    """Label names of the family's samples in first-seen order, without `le` and `quantile`."""
    labels: List[str] = []
    for sample in family.samples:
        labels += [k for k in sample.labels if k not in labels and k not in ('le', 'quantile')]
    return labels


def _queryable(family) -> bool:
    # Names PromQL can select without quoting (Prometheus 2.x).
    return bool(_NAME_RE.match(family.name)) and all(_LABEL_RE.match(k) for k in family_labels(family))


def _unit(name: str) -> str:
    return 's' if name.endswith('_seconds') else 'bytes' if name.endswith('_bytes') else 'short'


def custom_panel(family, native: bool = False) -> Optional[Dict]:
    """A panel for one custom family, or None for types without one (info, stateset, ...);
    `native`: the histogram has native buckets."""
    name, labels = family.name, family_labels(family)
    if family.type == 'histogram':
        p = round(CUSTOM_QUANTILE * 100)
        return panel(f'{name} (p{p})', [target(quantile(CUSTOM_QUANTILE, name, labels, native),
                                               legend(labels, f'p{p}'))],
                     _unit(name), family.documentation)
    if family.type == 'counter':
        sample_names = {s.name for s in family.samples}
        series = name + '_total' if name + '_total' in sample_names or not sample_names else name
        return panel(f'{series} (rate)', [target(f'{by(labels)}({rate(series)})', legend(labels))],
                     'cps', family.documentation)
    if family.type == 'summary':
        mean = f'{by(labels)}({rate(name + "_sum")}) / {by(labels)}({rate(name + "_count")})'
        return panel(f'{name} (mean)', [target(mean, legend(labels, 'mean'))], _unit(name),
                     family.documentation)
    if family.type == 'gauge':
        return panel(name, [target(name, legend(labels))], _unit(name), family.documentation)
    return None


def _is_created(family, names) -> bool:
    # `x_created` gauges that single-process exposition adds next to counters, histograms, summaries.
    return family.name.endswith('_created') and family.name[:-len('_created')] in names


def custom_panels(families: Iterable, namespace: str = DEFAULT_NAMESPACE,
                  native_histograms: Iterable[str] = ()) -> List[Dict]:
    """Panels for the families that are not BentoML defaults, sorted by name."""
    natives = set(native_histograms)
    families = list(families)
    names = {f.name for f in families}
    chosen = sorted((f for f in families
                     if is_custom(f, namespace) and _queryable(f) and not _is_created(f, names)),
                    key=lambda f: f.name)
    panels = (custom_panel(f, f.name in natives) for f in chosen)
    return [p for p in panels if p is not None]


# ---------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------

def default_title(namespace: str) -> str:
    suffix = '' if namespace == DEFAULT_NAMESPACE else f' ({namespace})'
    return f'BentoML service{suffix}'


def layout(panels: List[Dict]) -> List[Dict]:
    """Numbers the panels and places them two per line; a row takes a line of its own."""
    x = y = 0
    for panel_id, p in enumerate(panels, start=1):
        p['id'] = panel_id
        if p['type'] == 'row':
            if x:
                x, y = 0, y + PANEL_HEIGHT
            p['gridPos'] = {'h': 1, 'w': 24, 'x': 0, 'y': y}
            y += 1
            continue
        p['gridPos'] = {'h': PANEL_HEIGHT, 'w': PANEL_WIDTH, 'x': x, 'y': y}
        x += PANEL_WIDTH
        if x >= 24:
            x, y = 0, y + PANEL_HEIGHT
    return panels


def build_dashboard(namespace: str = DEFAULT_NAMESPACE, title: Optional[str] = None,
                    families: Iterable = (), native_histograms: Iterable[str] = ()) -> Dict:
    """The dashboard as a dict; `families` (parsed metric families) add custom-metric panels,
    and the histograms named in `native_histograms` are queried through their native series."""
    native_histograms = list(native_histograms)
    if not is_valid_namespace(namespace):
        raise ValueError(f'invalid metric namespace: {namespace!r}')
    title = title or default_title(namespace)
    panels = [row('BentoML default metrics')] + default_panels(namespace, native_histograms)
    extra = custom_panels(families, namespace, native_histograms)
    if extra:
        panels += [row('Custom metrics')] + extra
    return {
        '__requires': [
            {'type': 'grafana', 'id': 'grafana', 'name': 'Grafana', 'version': '9.0.0'},
            {'type': 'datasource', 'id': 'prometheus', 'name': 'Prometheus', 'version': '1.0.0'},
            {'type': 'panel', 'id': 'timeseries', 'name': 'Time series', 'version': ''},
        ],
        'id': None,
        'uid': 'fastprom-' + hashlib.sha1(f'{namespace}\0{title}'.encode()).hexdigest()[:12],
        'title': title,
        'tags': ['bentoml', 'fastprom', 'prometheus'],
        'editable': True,
        'schemaVersion': SCHEMA_VERSION,
        'version': 1,
        'refresh': '10s',
        'time': {'from': 'now-1h', 'to': 'now'},
        'timezone': 'browser',
        'annotations': {'list': []},
        'templating': {'list': [{
            'name': 'datasource', 'label': 'Data source', 'type': 'datasource', 'query': 'prometheus',
            'current': {}, 'hide': 0, 'options': [], 'refresh': 1, 'regex': '',
        }]},
        'panels': layout(panels),
    }


def dashboard_json(namespace: str = DEFAULT_NAMESPACE, title: Optional[str] = None,
                   families: Iterable = (), native_histograms: Iterable[str] = ()) -> str:
    return json.dumps(build_dashboard(namespace, title, families, native_histograms), indent=2) + '\n'


def expressions(dashboard: Dict) -> List[str]:
    """Every PromQL expression of the dashboard's panels, in panel order."""
    return [t['expr'] for p in dashboard['panels'] for t in p.get('targets', ())]
