from twisted.internet import reactor
from twisted.web.wsgi import WSGIResource

from .. import exposition
from ..registry import REGISTRY


def MetricsResource(registry=REGISTRY) -> WSGIResource:
    """A twisted.web resource serving the metrics of ``registry``."""
    return WSGIResource(reactor, reactor.getThreadPool(), exposition.make_wsgi_app(registry))
