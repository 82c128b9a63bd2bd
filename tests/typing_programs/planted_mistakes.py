"""Mistakes a type checker must report, one a line, each marked with mypy's error code.

Written against prometheus_client; tests/test_typing.py also checks it with every
`prometheus_client` replaced by `fastprom`, and wants the same diagnostics. Never run.
"""

from typing import List

from prometheus_client import (
    REGISTRY, CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary,
    generate_latest, push_to_gateway, start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

c = Counter('c', 'A counter', ['path'])
g = Gauge('g', 'A gauge')
s = Summary('s', 'A summary')
h = Histogram('h', 'A histogram', ['method'])
i = Info('i', 'An info')
e = Enum('e', 'An enum', states=['a', 'b'])


@h.labels('GET').time()
def handler(limit: int) -> List[str]:
    return []


@c.labels('/').count_exceptions()
async def fetch(name: str) -> bytes:
    return b''


# Wrong argument types.
c.inc('one')  # mistake: arg-type
g.set('4.2')  # mistake: arg-type
s.observe(None)  # mistake: arg-type
h.labels('GET').observe(0.1, exemplar=['trace'])  # mistake: arg-type
e.state(1)  # mistake: arg-type
i.info(['version'])  # mistake: arg-type
c.count_exceptions(ValueError())  # mistake: arg-type
g.set_function(lambda: 'high')  # mistake: arg-type, return-value
Gauge('g2', 'A gauge', multiprocess_mode='average')  # mistake: arg-type
Histogram('h2', 'A histogram', buckets=[1.0, None])  # mistake: list-item
Counter('c2', 'A counter', registry='default')  # mistake: arg-type
REGISTRY.register(42)  # mistake: arg-type
CollectorRegistry(auto_describe='yes')  # mistake: arg-type
start_http_server('8000')  # mistake: arg-type
push_to_gateway('127.0.0.1:9091', job=1, registry=REGISTRY)  # mistake: arg-type
GaugeMetricFamily('f', 'A family', labels=['a']).add_metric(['a'], 'high')  # mistake: arg-type
handler('ten')  # mistake: arg-type
fetch(b'name')  # mistake: arg-type, unused-coroutine
h.time()(42)  # mistake: type-var

# Missing or extra arguments.
g.set()  # mistake: call-arg
s.observe()  # mistake: call-arg
Counter('c3')  # mistake: call-arg
c.reset(1)  # mistake: call-arg
Enum('e2', 'An enum', state=['a'])  # mistake: call-arg
generate_latest(REGISTRY, 'utf-8', True)  # mistake: call-arg

# Misspelt names.
h.obsrve(1)  # mistake: attr-defined
c.lables('/')  # mistake: attr-defined
c.labels('/').observe(1)  # mistake: attr-defined
g.track_in_progress()  # mistake: attr-defined
s.time().duraton  # mistake: attr-defined
REGISTRY.get_sample(c)  # mistake: attr-defined

# Wrong uses of what comes back.
total = c.inc() + 1  # mistake: func-returns-value, operator
body: str = generate_latest()  # mistake: assignment
value: float = REGISTRY.get_sample_value('c_total')  # mistake: assignment
server, thread, extra = start_http_server(8000)  # mistake: misc
names: List[int] = handler(10)  # mistake: assignment
payload: bytes = fetch('x')  # mistake: assignment
