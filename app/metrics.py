"""What the service counts, in Prometheus terms (prometheus-client), and one scrape of it.

Under `polaris serve --workers N` each worker writes its values into files in the directory
named by `PROMETHEUS_MULTIPROC_DIR`, and a scrape, answered by any worker, sums them over all
of them. prometheus-client decides how it keeps values when it is first imported, so the CLI
sets that variable before any worker starts (`multiprocess_directory`). Values read at scrape
time (devices online, backends up) are not kept in those files: the scraping worker asks
the presence store and the backends and adds them to its answer as they are.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format every Prometheus version reads; the metric names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Heartbeats answer in well under a millisecond; the default buckets start at 5 ms.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

HTTP_REQUESTS = Counter(
    "polaris_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "polaris_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
HEARTBEATS = Counter("polaris_heartbeats", "Device heartbeats recorded.")
TOKEN_EXCHANGES = Counter(
    "polaris_token_exchanges",
    "Device credentials traded for an access token, by outcome.",
    ["outcome"],
)
VERIFIED_PAIR_LOOKUPS = Counter(
    "polaris_verified_pair_lookups",
    "Token exchanges by where the credential pair was found valid: `memory` (verified "
    "before by this process, see VERIFIED_PAIRS_SIZE) or `database`.",
    ["source"],
)
PAIRING_OUTCOMES = Counter(
    "polaris_pairing_outcomes",
    "How pairing attempts and decisions ended, by reason.",
    ["reason"],
)
JOB_RUNS = Counter("polaris_job_runs", "Background job runs, by job.", ["job"])
JOB_FAILURES = Counter("polaris_job_failures", "Background job runs that failed, by job.", ["job"])
JOB_DURATION = Histogram(
    "polaris_job_duration_seconds",
    "Time a background job run took, by job.",
    ["job"],
    buckets=(0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120),
)
REVOCATION_CACHE = Gauge(
    "polaris_revocation_cache_entries",
    "Revoked credentials each process holds in memory (the largest of the live processes).",
    multiprocess_mode="livemax",
)
PRESENCE_FLUSH_LAG = Gauge(
    "polaris_presence_flush_lag_seconds",
    "Age of the oldest heartbeat in the last batch written to Redis.",
    multiprocess_mode="livemax",
)
SERVING_PROCESSES = Gauge(
    "polaris_serving_processes",
    "Processes serving the app; each scrape sums over all of them.",
    multiprocess_mode="livesum",
)


class RouteTally:
    """One route's requests, counted here and added to the request counter and the latency
    histogram in bulk by `flush`.

    On the heartbeat fast path the metrics would otherwise be the most expensive bookkeeping:
    finding a child by its labels, then a lock per value touched (`Histogram.observe` alone
    costs about 1.4 µs). Counting into a dict and a list costs a fraction of that.
    prometheus-client has no bulk observe, so `flush` adds to the histogram child's bucket
    and sum values itself (its `_buckets` and `_sum`, stable for years; the pinned version is
    checked against `observe` by the tests). Everything runs on the event loop's thread.
    """

    def __init__(
        self,
        method: str,
        route: str,
        *,
        requests: Counter = HTTP_REQUESTS,
        durations: Histogram = HTTP_DURATION,
    ) -> None:
        self._labels = (method, route)
        self._requests = requests
        self._duration = durations.labels(method, route)
        self._bounds: list[float] = list(self._duration._upper_bounds)
        self._statuses: dict[int, int] = {}
        self._buckets = [0] * len(self._bounds)
        self._sum = 0.0
        _TALLIES.append(self)

    def observe(self, status: int, seconds: float) -> None:
        self._statuses[status] = self._statuses.get(status, 0) + 1
        # The first bucket whose bound is at least `seconds`; the last bound is +Inf.
        self._buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def flush(self) -> None:
        statuses, self._statuses = self._statuses, {}
        buckets, self._buckets = self._buckets, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        for status, count in statuses.items():
            self._requests.labels(*self._labels, str(status)).inc(count)
        for index, count in enumerate(buckets):
            if count:
                self._duration._buckets[index].inc(count)
        if total:
            self._duration._sum.inc(total)


_TALLIES: list[RouteTally] = []
FLUSH_EVERY_SECONDS = 1.0


def flush_tallies() -> None:
    for tally in _TALLIES:
        tally.flush()


async def flush_tallies_forever() -> None:
    """Keep each process's tallies at most a second behind what other workers' scrapes read."""
    while True:
        await asyncio.sleep(FLUSH_EVERY_SECONDS)
        flush_tallies()


def multiprocess_directory() -> Path | None:
    # prometheus-client's own switch, not a Polaris setting.
    value = os.environ.get(MULTIPROC_VARIABLE)  # noqa: TID251
    return Path(value) if value else None


@contextlib.contextmanager
def shared_by_workers() -> Iterator[Path]:
    """A directory for the values of the workers about to start, named in the environment
    they inherit. Each run starts empty, or a scrape would add up the last run's values too:
    an operator's own directory is emptied, and one made here is removed afterwards."""
    given = multiprocess_directory()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):
            stale.unlink()
        yield given
        return
    made = Path(tempfile.mkdtemp(prefix="polaris-metrics-"))
    os.environ[MULTIPROC_VARIABLE] = str(made)  # noqa: TID251
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_VARIABLE, None)  # noqa: TID251
        shutil.rmtree(made, ignore_errors=True)


def serve_on_port(port: int) -> None:
    """Serve this process's metrics on their own port, from a background thread (for the
    worker, which has no web app to serve them)."""
    start_http_server(port)


def process_started() -> None:
    SERVING_PROCESSES.set(1)


def process_stopped() -> None:
    """Forget this process's live gauges, so a scrape stops counting a worker that left."""
    SERVING_PROCESSES.set(0)
    flush_tallies()
    if multiprocess_directory() is not None:
        multiprocess.mark_process_dead(os.getpid())


@dataclass(frozen=True, slots=True)
class Reading:
    """A value read at scrape time."""

    name: str
    documentation: str
    value: float
    labels: dict[str, str] | None = None


class _Readings(Collector):
    def __init__(self, readings: Iterable[Reading]) -> None:
        self._readings = list(readings)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for reading in self._readings:
            labels = reading.labels or {}
            family = families.get(reading.name)
            if family is None:
                family = GaugeMetricFamily(reading.name, reading.documentation, labels=list(labels))
                families[reading.name] = family
            family.add_metric(list(labels.values()), reading.value)
        yield from families.values()


def exposition(readings: Iterable[Reading] = ()) -> bytes:
    """The Prometheus text of everything counted, summed over the workers when there are
    several, with `readings` added."""
    flush_tallies()
    registry = CollectorRegistry()
    directory = multiprocess_directory()
    if directory is not None:
        multiprocess.MultiProcessCollector(registry, path=str(directory))
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_Readings(readings))
    return body + generate_latest(extra)
