"""The fleet's live status: a rich panel on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulator.stats import FleetStats, percentile

REFRESH_PER_SECOND = 2
PLAIN_EVERY = 2.0


def _errors(stats: FleetStats) -> str:
    if not stats.errors:
        return "0"
    top = ", ".join(f"{code} {count}" for code, count in stats.errors.most_common(3))
    return f"{stats.error_count} ({top})"


def status_table(stats: FleetStats, server_url: str) -> Table:
    table = Table(title=f"polaris-sim fleet → {server_url}", show_header=False, min_width=60)
    table.add_column(style="bold")
    table.add_column()
    latencies = list(stats.latencies)[-2000:]
    p50, p99 = (1000 * percentile(latencies, q) for q in (0.5, 0.99))
    rows = [
        ("phase", stats.phase),
        ("paired", f"{stats.paired} / {stats.devices}"),
        ("online", str(stats.online)),
        ("off the network", str(stats.dropped)),
        ("credentials refused", str(stats.revoked)),
        ("errors", _errors(stats)),
        ("requests/s", f"{stats.requests_per_second():.1f}"),
        ("heartbeats ok", str(stats.heartbeats_ok)),
        ("latency p50 / p99", f"{p50:.1f} / {p99:.1f} ms"),
        ("simulator CPU", f"{100 * stats.cpu_share():.1f} % of one core"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def status_line(stats: FleetStats) -> str:
    return (
        f"[{stats.phase}] paired {stats.paired}/{stats.devices} online {stats.online} "
        f"off-network {stats.dropped} errors {stats.error_count} "
        f"requests/s {stats.requests_per_second():.1f} heartbeats {stats.heartbeats_ok} "
        f"cpu {100 * stats.cpu_share():.0f}%"
    )


@contextlib.asynccontextmanager
async def live_status(stats: FleetStats, console: Console, server_url: str) -> AsyncIterator[None]:
    if console.is_terminal:
        with Live(
            status_table(stats, server_url),
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            get_renderable=lambda: status_table(stats, server_url),
        ):
            yield
        return

    async def lines() -> None:
        while True:
            await asyncio.sleep(PLAIN_EVERY)
            console.print(status_line(stats), highlight=False, markup=False)

    task = asyncio.create_task(lines())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        console.print(status_line(stats), highlight=False, markup=False)
