"""How fast the console answers one admin at fleet scale: the Devices page and what it polls.

    python -m loadtests.console --url http://127.0.0.1:8000 --email admin@example.com \
        --password … [--samples 30] [--search dock]

An admin signs in through the JSON API (the session cookie a browser holds), then asks each
page `samples` times, one request after the other, after one unmeasured request per page.
Sequential on purpose: the figure is the latency one admin sees, not throughput. The live
poll is asked as htmx asks it (`HX-Request`, the region's own URL), following the URL each
answer carries, so an unchanged fleet is measured as the cheap answer it gets.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import statistics
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from loadtests.errors import BenchError
from loadtests.latency import percentile
from simulator.admin import AdminApi, admin_http_client
from simulator.problems import ProblemError

DEVICES_PAGE = "/admin/devices"
SUMMARY_API = "/api/v1/admin/fleet/summary"
DEFAULT_SAMPLES = 30
DEFAULT_SEARCH = "dock"
_LIVE_REGION = re.compile(r'<div id="fleet-live"[^>]*\bhx-get="([^"]+)"')


@dataclass(frozen=True, slots=True)
class PageTiming:
    """Latency of one page over `samples` sequential requests, in milliseconds."""

    name: str
    path: str
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    # Answers by status code: the live poll answers 204 when nothing it shows changed.
    statuses: dict[int, int]


def _timing(name: str, path: str, elapsed_ms: list[float], statuses: list[int]) -> PageTiming:
    ordered = sorted(elapsed_ms)
    return PageTiming(
        name=name,
        path=path,
        samples=len(ordered),
        p50_ms=statistics.median(ordered),
        p95_ms=percentile(ordered, 0.95),
        max_ms=ordered[-1],
        statuses={code: statuses.count(code) for code in sorted(set(statuses))},
    )


async def _timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    try:
        response = await client.get(path, headers=headers)
    except httpx.HTTPError as exc:
        raise BenchError(f"GET {path} failed: {exc}") from exc
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code not in (200, 204):
        raise BenchError(f"GET {path} answered {response.status_code}")
    return elapsed, response


async def _page(client: httpx.AsyncClient, name: str, path: str, samples: int) -> PageTiming:
    await _timed_get(client, path)
    results = [await _timed_get(client, path) for _ in range(samples)]
    return _timing(name, path, [ms for ms, _ in results], [r.status_code for _, r in results])


def _live_url(page: str) -> str:
    found = _LIVE_REGION.search(page)
    if found is None:
        raise BenchError("the Devices page has no live region (#fleet-live with hx-get)")
    return html.unescape(found.group(1))


async def _live_poll(client: httpx.AsyncClient, samples: int) -> PageTiming:
    """The Devices page's own poll, as htmx sends it after each interval."""
    _, first = await _timed_get(client, DEVICES_PAGE)
    url = _live_url(first.text)
    headers = {"HX-Request": "true", "HX-Target": "fleet-live", "HX-Trigger": "fleet-live"}
    elapsed: list[float] = []
    statuses: list[int] = []
    for _ in range(samples):
        ms, answer = await _timed_get(client, url, {**headers, "HX-Current-URL": url})
        elapsed.append(ms)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            # The swapped region polls its new URL next time, as the browser's does.
            url = _live_url(answer.text)
    return _timing("live poll", url, elapsed, statuses)


async def console_timings(
    base_url: str,
    email: str,
    password: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    search: str = DEFAULT_SEARCH,
) -> list[PageTiming]:
    """p50/p95 of the first page, the online and offline filters, a label search, the live
    poll and the summary API, in that order, as one signed-in admin sees them."""
    if samples < 1:
        raise BenchError("samples must be at least 1")
    pages = (
        ("first page", DEVICES_PAGE),
        ("online filter", f"{DEVICES_PAGE}?status=online"),
        ("offline filter", f"{DEVICES_PAGE}?status=offline"),
        ("label search", f"{DEVICES_PAGE}?{urlencode({'q': search})}"),
    )
    async with admin_http_client(base_url, timeout=60.0) as client:
        try:
            await AdminApi(client).login(email, password)
        except (ProblemError, httpx.HTTPError) as exc:
            raise BenchError(f"sign-in failed: {exc}") from exc
        timings = [await _page(client, name, path, samples) for name, path in pages]
        timings.append(await _live_poll(client, samples))
        timings.append(await _page(client, "summary API", SUMMARY_API, samples))
    return timings


def format_timings(timings: list[PageTiming]) -> str:
    lines = [f"{'page':<16}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  answers"]
    for t in timings:
        answers = ", ".join(f"{count} x {code}" for code, count in t.statuses.items())
        lines.append(f"{t.name:<16}{t.p50_ms:>9.1f}{t.p95_ms:>9.1f}{t.max_ms:>9.1f}  {answers}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="The running server, e.g. http://…:8000")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--search", default=DEFAULT_SEARCH, help="The label search's text.")
    args = parser.parse_args(argv)
    try:
        timings = asyncio.run(
            console_timings(
                args.url, args.email, args.password, samples=args.samples, search=args.search
            )
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_timings(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
