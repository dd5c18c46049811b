"""`RouteTally` adds to the request counter and the latency histogram exactly what counting
and observing one request at a time would have added."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.metrics import RouteTally

BUCKETS = (0.001, 0.01, 0.1, 1.0)
# Bounds themselves (a bucket's bound is inclusive), between them, beyond the last one.
SAMPLES = [
    (200, 0.0),
    (200, 0.0005),
    (200, 0.001),
    (429, 0.0011),
    (200, 0.01),
    (500, 0.05),
    (200, 0.1),
    (200, 0.99),
    (429, 1.0),
    (200, 7.5),
    (200, 0.002),
]


def _metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    requests = Counter("requests", "test", ["method", "route", "status"], registry=registry)
    durations = Histogram(
        "duration_seconds", "test", ["method", "route"], buckets=BUCKETS, registry=registry
    )
    return registry, requests, durations


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    return {
        (sample.name, sample.labels.get("status", ""), sample.labels.get("le", "")): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_a_flushed_tally_equals_counting_one_request_at_a_time() -> None:
    one_by_one, requests, durations = _metrics()
    tallied, tallied_requests, tallied_durations = _metrics()
    tally = RouteTally("POST", "/x", requests=tallied_requests, durations=tallied_durations)

    for status, seconds in SAMPLES:
        requests.labels("POST", "/x", str(status)).inc()
        durations.labels("POST", "/x").observe(seconds)
        tally.observe(status, seconds)
    assert _samples(tallied)[("duration_seconds_count", "", "")] == 0
    tally.flush()
    tally.flush()

    assert _samples(tallied) == _samples(one_by_one)
    assert _samples(tallied)[("requests_total", "200", "")] == 8
    assert _samples(tallied)[("duration_seconds_count", "", "")] == len(SAMPLES)
