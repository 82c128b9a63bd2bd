"""Helpers for the real-BentoML tests: `bentoml serve` on loopback, traffic, metric checks.

A test service (SERVICE_SOURCE) is written to a temporary directory and served with
2 workers by `python -m bentoml serve`, in one of three ways:

- ``install``:   the module begins with ``import fastprom; fastprom.install()``;
- ``env``:       the module is untouched and ``FASTPROM_INSTALL=1`` is in the environment
                 (the ``fastprom_install.pth`` hook does the rest);
- ``reference``: the module is untouched and nothing is set: plain prometheus_client.

Each server gets its own BENTOML_HOME, hence its own PROMETHEUS_MULTIPROC_DIR.
"""

import json
import math
import os
import site
import sys
import sysconfig
import threading
import time

import real_servers as rs

REPO = os.path.dirname(rs.TESTS_DIR)
HOOK_NAME = 'fastprom_install.pth'
HOOK_SOURCE = os.path.join(REPO, 'python', HOOK_NAME)
SERVICE_CLASS = 'Sentiment'
WORKERS = 2
# BentoML's duration buckets for new-style services (DEFAULT_BUCKET, 5 ms to 180 s).
DURATION_BUCKETS = ('0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1.0', '2.5', '5.0',
                    '10.0', '30.0', '60.0', '120.0', '180.0', '+Inf')

INSTALL_PRELUDE = 'import fastprom; fastprom.install()\n'
SERVICE_SOURCE = '''\
"""fastprom's real-BentoML test service (written by tests/bentoml_servers.py)."""
{prelude}import os

import bentoml
import prometheus_client
from bentoml._internal.utils.metrics import exponential_buckets
from prometheus_client import Counter, Histogram

NAMESPACE = os.environ.get("TEST_METRICS_NAMESPACE", "bentoml_service")
INFERENCE = Histogram(
    name="inference_duration",
    documentation="Duration of inference",
    labelnames=["nltk_version", "sentiment_cls"],
    buckets=exponential_buckets(0.001, 1.5, 10.0),
)
POLARITY = Counter("polarity", "Results by polarity", labelnames=["polarity"])


@bentoml.service(workers={workers}, metrics={{"namespace": NAMESPACE}})
class {cls}:
    @bentoml.api
    def classify(self, text: str) -> str:
        label = "positive" if "good" in text else "negative"
        INFERENCE.labels(nltk_version="3.9", sentiment_cls=label).observe(len(text) / 1000)
        POLARITY.labels(polarity=label).inc()
        return label

    @bentoml.api(batchable=True, max_batch_size=8, max_latency_ms=1000)
    def encode(self, texts: list[str]) -> list[int]:
        return [len(t) for t in texts]

    @bentoml.api
    def fail(self) -> str:
        raise RuntimeError("deliberate failure (error-ratio panel)")

    @bentoml.api
    def whoami(self) -> dict:
        from bentoml._internal.configuration.containers import BentoMLContainer
        served_by = BentoMLContainer.metrics_client.get().prometheus_client
        return {{
            "pid": os.getpid(),
            "prometheus_client": prometheus_client.__name__,
            "prometheus_client_file": prometheus_client.__file__,
            "counter_module": prometheus_client.Counter.__module__,
            "metrics_endpoint_library": served_by.__name__,
            "multiproc_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
        }}
'''

# Deterministic traffic: (api, payload, expected status).  Texts of different lengths
# land in different inference_duration buckets (len / 1000 seconds).
TEXTS = ('good', 'bad', 'a good day', 'a bad day today', 'good' * 30, 'x' * 2000)
WHOAMI_CALLS = 40


def write_service(workdir, prelude=''):
    """Writes the service module; returns ``module:Class`` for ``bentoml serve``."""
    with open(os.path.join(str(workdir), 'service.py'), 'w') as f:
        f.write(SERVICE_SOURCE.format(prelude=prelude, workers=WORKERS, cls=SERVICE_CLASS))
    return f'service:{SERVICE_CLASS}'


# ---------------------------------------------------------------------------
# The FASTPROM_INSTALL=1 hook
# ---------------------------------------------------------------------------

def installed_hook():
    """Path of an installed ``fastprom_install.pth`` in a site directory, or None."""
    dirs = list(site.getsitepackages()) + [site.getusersitepackages(), sysconfig.get_paths()['purelib']]
    for d in dirs:
        path = os.path.join(d, HOOK_NAME)
        if os.path.isfile(path):
            return path
    return None


def hook_environment(workdir):
    """Environment that activates fastprom through ``FASTPROM_INSTALL=1``.

    A wheel install (``pip install .``) puts the hook in site-packages: nothing more is
    needed.  An editable install (``pip install -e .``) does not ship it, so the repo's
    own ``python/fastprom_install.pth`` is copied, unchanged, into a private user site
    directory (``PYTHONUSERBASE``): Python's ``site`` processes it at start-up exactly as
    it would in site-packages.  A ``.pth`` sorted before it puts fastprom's source
    directory on sys.path first, as it is beside the hook in a wheel install.
    """
    env = {'FASTPROM_INSTALL': '1'}
    if installed_hook() is not None:
        return env
    if not site.ENABLE_USER_SITE:
        raise RuntimeError(f'{HOOK_NAME} is not installed and user site directories are disabled: '
                           'install fastprom with `pip install .` to test FASTPROM_INSTALL=1')
    import fastprom
    base = os.path.join(str(workdir), 'userbase')
    user_site = os.path.join(base, os.path.relpath(site.getusersitepackages(), site.getuserbase()))
    os.makedirs(user_site, exist_ok=True)
    paths = [os.path.dirname(os.path.dirname(fastprom.__file__)), site.getusersitepackages()]
    with open(os.path.join(user_site, '00-fastprom-source.pth'), 'w') as f:
        f.write(''.join(p + '\n' for p in paths))  # missing directories are skipped by site
    with open(HOOK_SOURCE, 'rb') as src, open(os.path.join(user_site, HOOK_NAME), 'wb') as dst:
        dst.write(src.read())
    env['PYTHONUSERBASE'] = base
    return env


# ---------------------------------------------------------------------------
# A served BentoML service
# ---------------------------------------------------------------------------

class BentoServer:
    """``python -m bentoml serve TARGET`` on 127.0.0.1, with its own BENTOML_HOME."""

    def __init__(self, name, workdir, target, env=None, working_dir=None):
        self.name = name
        self.workdir = str(workdir)
        self.port = rs.free_port()
        self.url = f'http://{rs.LOOPBACK}:{self.port}'
        full_env = {'BENTOML_HOME': os.path.join(self.workdir, 'bentoml_home'),
                    'BENTOML_DO_NOT_TRACK': 'True', 'PYTHONDONTWRITEBYTECODE': '1'}
        full_env.update(env or {})
        argv = [sys.executable, '-m', 'bentoml', 'serve', target, '--host', rs.LOOPBACK,
                '--port', str(self.port), '--working-dir', working_dir or self.workdir]
        self.proc = rs.Proc(name, argv, self.workdir, env=full_env)

    def wait_ready(self, timeout=90.0):
        def ready():
            status, _, _, _ = rs.http_request(self.url + '/readyz', timeout=2.0)
            return status == 200
        rs.wait_until(ready, timeout, f'{self.name} /readyz', procs=[self.proc], interval=0.2)

    def call(self, api, payload):
        """POST a JSON payload to ``/api``; returns ``(status, decoded body)``."""
        body = json.dumps(payload).encode()
        status, _, _, data = rs.http_request(self.url + '/' + api, method='POST', body=body,
                                             headers=[('Content-Type', 'application/json')])
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data.decode('utf-8', 'replace')

    def metrics(self):
        """``(content type, text)`` of ``GET /metrics``."""
        status, _, headers, data = rs.http_request(self.url + '/metrics')
        assert status == 200, f'{self.name} /metrics answered {status}: {data[:500]!r}'
        return dict((k.lower(), v) for k, v in headers).get('content-type'), data.decode('utf-8')

    def worker_pids(self):
        """Pids of every process under the server (arbiter and workers)."""
        import psutil
        return {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}

    def stop(self):
        self.proc.stop(timeout=20.0)


def start_servers(specs):
    """Starts every ``(name, workdir, target, env)`` at once, then waits for all."""
    servers = [BentoServer(*spec) for spec in specs]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


# ---------------------------------------------------------------------------
# Traffic and what it should produce
# ---------------------------------------------------------------------------

def classify_label(text):
    return 'positive' if 'good' in text else 'negative'


def send_traffic(server):
    """Sends the fixed request sequence, one at a time; returns what was observed.

    ``sent`` maps ``(endpoint, status code)`` to a request count; ``whoami`` is the list
    of whoami answers.
    """
    sent, whoami = {}, []

    def record(api, payload, expected_status):
        status, body = server.call(api, payload)
        assert status == expected_status, f'{server.name} /{api}: {status} {body!r}'
        key = ('/' + api, str(status))
        sent[key] = sent.get(key, 0) + 1
        return body

    for text in TEXTS:
        assert record('classify', {'text': text}, 200) == classify_label(text)
    for text in TEXTS[:4]:
        assert record('encode', {'texts': [text]}, 200) == [len(text)]
    for _ in range(3):
        record('fail', {}, 500)
    for _ in range(WHOAMI_CALLS):
        whoami.append(record('whoami', {}, 200))
    return {'sent': sent, 'whoami': whoami, 'encode_calls': 4}


def expected_custom(bucket_bounds):
    """Expected inference_duration buckets/count/sum and polarity counts for TEXTS."""
    hist, polarity = {}, {}
    for text in TEXTS:
        label = classify_label(text)
        value = len(text) / 1000
        h = hist.setdefault(label, {'count': 0, 'sum': 0.0, 'buckets': [0] * len(bucket_bounds)})
        h['count'] += 1
        h['sum'] += value
        for i, bound in enumerate(bucket_bounds):
            if value <= bound:
                h['buckets'][i] += 1
        polarity[label] = polarity.get(label, 0) + 1
    return hist, polarity


# ---------------------------------------------------------------------------
# Reading a scrape
# ---------------------------------------------------------------------------

def parse(text):
    """``{family name: family}``, parsed with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f'family {family.name} appears twice'
        families[family.name] = family
    return families


def samples(families, sample_name, **labels):
    """Samples named ``sample_name`` whose labels include ``labels``."""
    family_name = sample_name
    for suffix in ('_bucket', '_count', '_sum', '_total'):
        if sample_name.endswith(suffix) and sample_name[:-len(suffix)] in families:
            family_name = sample_name[:-len(suffix)]
    family = families.get(family_name)
    if family is None:
        return []
    return [s for s in family.samples if s.name == sample_name
            and all(s.labels.get(k) == v for k, v in labels.items())]


def value(families, sample_name, **labels):
    """The value of the one sample matching, or of their sum when several match."""
    found = samples(families, sample_name, **labels)
    assert found, f'no sample {sample_name} {labels}'
    return math.fsum(s.value for s in found)


# Sample values that depend on timing or on which worker served a request.
_VOLATILE = ('request_duration_seconds_sum', 'request_duration_seconds_bucket',
             'last_request_timestamp_seconds')


def comparable(families, endpoints):
    """A scrape reduced to what two servers given the same requests must agree on.

    Keys are ``(family, type, help, sample name, labels without pid/worker_index)``;
    values are summed over pid/worker_index, or None where they depend on timing.
    Samples of endpoints outside ``endpoints`` (readiness polls) are left out.
    """
    out = {}
    for family in families.values():
        for s in family.samples:
            if 'endpoint' in s.labels and s.labels['endpoint'] not in endpoints:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ('pid', 'worker_index')))
            key = (family.name, family.type, family.documentation, s.name, labels)
            volatile = s.name.endswith(_VOLATILE)
            out[key] = None if volatile else (out.get(key) or 0.0) + s.value
    return out


# ---------------------------------------------------------------------------
# Prometheus started from a given prometheus.yml, and traffic while it scrapes
# ---------------------------------------------------------------------------

class ConfiguredPrometheus(rs.Prometheus):
    """``real_servers.Prometheus`` started with ``config_text`` as its prometheus.yml."""

    def __init__(self, workdir, config_text):
        self._config_text = config_text
        super().__init__(workdir, jobs={})

    def render_config(self, jobs, scrape_interval):
        return self._config_text


class BackgroundTraffic:
    """Requests to every API of the test service from a thread, for at most ``seconds``."""

    REQUESTS = (('classify', {'text': 'a good day'}), ('classify', {'text': 'bad'}),
                ('encode', {'texts': ['abc']}), ('whoami', {}), ('fail', {}))

    def __init__(self, server, seconds=90.0, pause=0.02):
        self.server, self.seconds, self.pause = server, seconds, pause
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bentoml-traffic', daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            for api, payload in self.REQUESTS:
                try:
                    self.server.call(api, payload)
                    self.sent += 1
                except OSError:
                    pass  # the test's queries report a dead server
            self._stop.wait(self.pause)
