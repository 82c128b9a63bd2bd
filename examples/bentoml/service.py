"""A BentoML service whose metrics are stored and served by fastprom.

The two lines below make every later `import prometheus_client` (this module's, and
BentoML's own for its default metrics and /metrics endpoint) give fastprom.  Without
them, start the server with FASTPROM_INSTALL=1 in the environment instead.
"""
import fastprom
fastprom.install()

import random  # noqa: E402
import time  # noqa: E402

import bentoml  # noqa: E402
from prometheus_client import Counter, Histogram  # noqa: E402

MODEL_VERSION = "0.1"

# The custom metrics of BentoML's docs: inference time per sentiment class, on
# exponential buckets from 1 ms to 10 s, and a counter of results by polarity.
inference_duration = Histogram(
    name="inference_duration",
    documentation="Duration of inference",
    labelnames=["model_version", "sentiment_cls"],
    buckets=fastprom.exponential_buckets(0.001, 1.5, 10.0),
)
polarity_counter = Counter(
    name="polarity_total",
    documentation="Count total number of analysis by polarity scores",
    labelnames=["polarity"],
)

POSITIVE = {"good", "great", "love", "excellent", "happy", "nice"}
NEGATIVE = {"bad", "awful", "hate", "terrible", "sad", "poor"}


def score(text: str) -> float:
    """A stand-in for a real model: (positive - negative words) / words."""
    words = [w.strip(".,!?").lower() for w in text.split()]
    if not words:
        return 0.0
    return (sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)) / len(words)


@bentoml.service(workers=2)
class SentimentAnalysis:
    @bentoml.api
    def analyze(self, text: str) -> dict:
        start = time.perf_counter()
        time.sleep(random.uniform(0.001, 0.02))  # pretend to run a model
        polarity = score(text)
        sentiment = "positive" if polarity > 0 else "negative" if polarity < 0 else "neutral"
        inference_duration.labels(model_version=MODEL_VERSION, sentiment_cls=sentiment).observe(
            time.perf_counter() - start)
        polarity_counter.labels(polarity=sentiment).inc()
        return {"sentiment": sentiment, "polarity": polarity}

    @bentoml.api(batchable=True, max_batch_size=16, max_latency_ms=500)
    def scores(self, texts: list[str]) -> list[float]:
        """Batched scoring: fills the adaptive batch size panel."""
        return [score(t) for t in texts]
