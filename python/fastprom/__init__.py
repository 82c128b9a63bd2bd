"""fastprom: prometheus_client's API with storage and exposition in Rust.

Use it in place of prometheus_client (`from fastprom import Counter`), or call
`fastprom.install()` once so that every `import prometheus_client` gets fastprom.
"""

from . import exposition
from . import gc_collector
from . import metrics
from . import metrics_core
from . import platform_collector
from . import process_collector
from . import registry
from ._install import install
from .buckets import exponential_buckets
from .buckets import linear_buckets
from .exposition import CONTENT_TYPE_LATEST
from .exposition import CONTENT_TYPE_PLAIN_0_0_4
from .exposition import CONTENT_TYPE_PLAIN_1_0_0
from .exposition import delete_from_gateway
from .exposition import generate_latest
from .exposition import instance_ip_grouping_key
from .exposition import make_asgi_app
from .exposition import make_wsgi_app
from .exposition import MetricsHandler
from .exposition import push_to_gateway
from .exposition import pushadd_to_gateway
from .exposition import start_http_server
from .exposition import start_wsgi_server
from .exposition import write_to_textfile
from .gc_collector import GC_COLLECTOR
from .gc_collector import GCCollector
from .metrics import Counter
from .metrics import disable_created_metrics
from .metrics import enable_created_metrics
from .metrics import Enum
from .metrics import Gauge
from .metrics import Histogram
from .metrics import Info
from .metrics import Summary
from .metrics_core import Metric
from .parser import text_string_to_metric_families
from .platform_collector import PLATFORM_COLLECTOR
from .platform_collector import PlatformCollector
from .process_collector import PROCESS_COLLECTOR
from .process_collector import ProcessCollector
from .registry import CollectorRegistry
from .registry import REGISTRY

__version__ = "0.1.0"

__all__ = (
    'CollectorRegistry',
    'REGISTRY',
    'Metric',
    'Counter',
    'Gauge',
    'Summary',
    'Histogram',
    'Info',
    'Enum',
    'enable_created_metrics',
    'disable_created_metrics',
    'CONTENT_TYPE_LATEST',
    'CONTENT_TYPE_PLAIN_0_0_4',
    'CONTENT_TYPE_PLAIN_1_0_0',
    'generate_latest',
    'MetricsHandler',
    'make_wsgi_app',
    'make_asgi_app',
    'start_http_server',
    'start_wsgi_server',
    'write_to_textfile',
    'push_to_gateway',
    'pushadd_to_gateway',
    'delete_from_gateway',
    'instance_ip_grouping_key',
    'ProcessCollector',
    'PROCESS_COLLECTOR',
    'PlatformCollector',
    'PLATFORM_COLLECTOR',
    'GCCollector',
    'GC_COLLECTOR',
    # Beyond prometheus_client: BentoML's helpers, and the parser BentoML's docs promise here.
    'exponential_buckets',
    'linear_buckets',
    'text_string_to_metric_families',
)
