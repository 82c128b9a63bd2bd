"""A `prometheus.yml` scraping a BentoML service (`python -m fastprom prometheus-config`).

Same shape as the one in BentoML's docs: a global scrape interval and one job with
static targets.
"""

import json
import re
from typing import Sequence

# Prometheus durations: units from largest to smallest, each at most once (e.g. 1m30s).
_DURATION_RE = re.compile(r'(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?\Z')


def check_duration(value: str) -> str:
    if not value or not _DURATION_RE.match(value) or not re.search(r'[1-9]', value):
        raise ValueError(f'not a positive Prometheus duration (e.g. 15s, 1m30s): {value!r}')
    return value


def check_target(value: str) -> str:
    host, sep, port = value.rpartition(':')
    valid_port = port.isdigit() and 0 < int(port) < 65536
    if not sep or not host or not valid_port or any(c.isspace() for c in value):
        raise ValueError(f'target must be HOST:PORT, got {value!r}')
    return value


def check_metrics_path(value: str) -> str:
    if not value.startswith('/') or any(c.isspace() for c in value):
        raise ValueError(f'metrics path must start with "/", got {value!r}')
    return value


def check_job(value: str) -> str:
    if not value.strip():
        raise ValueError('job name must not be empty')
    return value


def prometheus_config(targets: Sequence[str], job: str = 'bentoml', interval: str = '15s',
                      metrics_path: str = '/metrics') -> str:
    """The YAML text; strings are written as JSON strings, which YAML reads unchanged."""
    if not targets:
        raise ValueError('at least one target is needed')
    targets = [check_target(t) for t in targets]
    lines = [
        '# Scrapes a BentoML service. Start: prometheus --config.file=prometheus.yml',
        'global:',
        f'  scrape_interval: {check_duration(interval)}',
        f'  evaluation_interval: {interval}',
        '',
        'scrape_configs:',
        f'  - job_name: {json.dumps(check_job(job))}',
        f'    metrics_path: {json.dumps(check_metrics_path(metrics_path))}',
        '    static_configs:',
        f'      - targets: [{", ".join(json.dumps(t) for t in targets)}]',
    ]
    return '\n'.join(lines) + '\n'
