"""Plots of Locust's CSV history (`locust ... --csv PREFIX --csv-full-history`).

    python -m loadtests.plot PREFIX_stats_history.csv                # PREFIX.png
    python -m loadtests.plot RUN1_stats_history.csv RUN2_stats_history.csv \\
        --offered 100,200 -o load.png                                # several runs

One file: throughput (requests/s, in all and per endpoint) and the p50 and p99 latency over
the run's time. Several files: each run's steady state (the rows at its full user count)
against the load it offered: achieved throughput and p99.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

# After the backend is chosen: pyplot picks one when it loads.
import matplotlib.pyplot as plt

AGGREGATED = "Aggregated"
# More endpoints than this and their lines hide each other: only the total is drawn.
MAX_ENDPOINT_LINES = 10
HISTORY_SUFFIX = "_stats_history.csv"


@dataclass(frozen=True)
class Sample:
    """One row of the history: Locust writes one a second per endpoint and in all."""

    at: float
    users: int
    requests_per_s: float
    failures_per_s: float
    # Over Locust's recent window (10 s), not the whole run; None before any request.
    p50_ms: float | None
    p99_ms: float | None
    total_requests: int
    total_failures: int


@dataclass(frozen=True)
class History:
    total: list[Sample]
    by_endpoint: dict[str, list[Sample]]


@dataclass(frozen=True)
class SteadyState:
    users: int
    seconds: float
    requests_per_s: float
    failures: int
    # The median of the p99s Locust reported over the steady rows.
    p99_ms: float | None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # Locust writes N/A before the first request
    return None if math.isnan(value) else value


def read_history(path: Path) -> History:
    total: list[Sample] = []
    by_endpoint: dict[str, list[Sample]] = {}
    start: float | None = None
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            at = float(row["Timestamp"])
            start = at if start is None else start
            sample = Sample(
                at=at - start,
                users=int(row["User Count"]),
                requests_per_s=float(row["Requests/s"]),
                failures_per_s=float(row["Failures/s"]),
                p50_ms=_number(row["50%"]),
                p99_ms=_number(row["99%"]),
                total_requests=int(row["Total Request Count"]),
                total_failures=int(row["Total Failure Count"]),
            )
            if row["Name"] == AGGREGATED:
                total.append(sample)
            else:
                by_endpoint.setdefault(f"{row['Type']} {row['Name']}", []).append(sample)
    if not total:
        raise ValueError(f"{path} has no {AGGREGATED} rows: is it a Locust _stats_history.csv?")
    return History(total, by_endpoint)


def steady_state(samples: Sequence[Sample], *, skip: float = 0.0) -> SteadyState:
    """The rows at the run's full user count, less the first `skip` seconds of them.

    Throughput is counted from Locust's running totals, so it is exact over the window
    whatever the smoothing of its requests/s column.
    """
    users = max(sample.users for sample in samples)
    full = [sample for sample in samples if sample.users == users]
    window = [sample for sample in full if sample.at >= full[0].at + skip] or full
    first, last = window[0], window[-1]
    seconds = last.at - first.at
    counted = last.total_requests - first.total_requests
    p99s = [sample.p99_ms for sample in window if sample.p99_ms is not None]
    return SteadyState(
        users=users,
        seconds=seconds,
        requests_per_s=counted / seconds if seconds > 0 else last.requests_per_s,
        failures=last.total_failures - first.total_failures,
        p99_ms=statistics.median(p99s) if p99s else None,
    )


def _latency(values: Sequence[float | None]) -> list[float]:
    return [math.nan if value is None else value for value in values]


def plot_run(history: History, output: Path, *, title: str) -> None:
    figure, (load, latency) = plt.subplots(2, 1, sharex=True, figsize=(10, 7))
    seconds = [sample.at for sample in history.total]
    load.plot(seconds, [s.requests_per_s for s in history.total], label="all", linewidth=2)
    if len(history.by_endpoint) <= MAX_ENDPOINT_LINES:
        for name, samples in sorted(history.by_endpoint.items()):
            load.plot(
                [s.at for s in samples], [s.requests_per_s for s in samples], label=name, lw=1
            )
    failures = [sample.failures_per_s for sample in history.total]
    if any(failures):
        load.plot(seconds, failures, label="failures", color="red", linestyle="--")
    load.set_ylabel("requests/s")
    load.set_ylim(bottom=0)
    load.legend(fontsize="small", loc="upper left")
    load.grid(alpha=0.3)
    users = load.twinx()
    users.step(seconds, [s.users for s in history.total], where="post", color="grey", alpha=0.4)
    users.set_ylabel("users", color="grey")
    users.set_ylim(bottom=0)

    latency.plot(seconds, _latency([s.p50_ms for s in history.total]), label="p50")
    latency.plot(seconds, _latency([s.p99_ms for s in history.total]), label="p99")
    latency.set_ylabel("latency, ms (Locust's 10 s window)")
    latency.set_xlabel("seconds since the start")
    latency.set_ylim(bottom=0)
    latency.legend(fontsize="small", loc="upper left")
    latency.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def plot_load(
    runs: Sequence[tuple[float, SteadyState]], output: Path, *, offered_label: str, title: str
) -> None:
    ordered = sorted(runs, key=lambda run: run[0])
    offered = [load for load, _ in ordered]
    figure, (throughput, latency) = plt.subplots(2, 1, sharex=True, figsize=(8, 7))
    throughput.plot(offered, [s.requests_per_s for _, s in ordered], marker="o", label="achieved")
    throughput.set_ylabel("achieved requests/s")
    throughput.set_ylim(bottom=0)
    throughput.grid(alpha=0.3)
    latency.plot(offered, _latency([s.p99_ms for _, s in ordered]), marker="o", color="C1")
    latency.set_ylabel("p99, ms")
    latency.set_xlabel(offered_label)
    latency.set_ylim(bottom=0)
    latency.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def _run_name(path: Path) -> str:
    return path.name.removesuffix(HISTORY_SUFFIX)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.plot",
        description="PNG plots of Locust's --csv-full-history files.",
    )
    parser.add_argument("histories", nargs="+", type=Path, help="<prefix>_stats_history.csv")
    parser.add_argument("-o", "--output", type=Path, help="the PNG (default: <prefix>.png)")
    parser.add_argument("--title", help="the figure's title (default: the run's name)")
    parser.add_argument(
        "--offered",
        help="several runs: the load each offered, comma-separated, in the files' order "
        "(default: each run's user count)",
    )
    parser.add_argument("--offered-unit", default="requests/s offered")
    parser.add_argument(
        "--skip", type=float, default=0.0, help="several runs: seconds of warm-up left out"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    histories: list[Path] = args.histories
    if len(histories) == 1:
        (path,) = histories
        output = args.output or path.with_name(f"{_run_name(path)}.png")
        plot_run(read_history(path), output, title=args.title or _run_name(path))
        print(f"wrote {output}")
        return 0
    steady = [steady_state(read_history(path).total, skip=args.skip) for path in histories]
    if args.offered:
        offered = [float(value) for value in args.offered.split(",")]
        if len(offered) != len(histories):
            print("--offered needs one value per file", file=sys.stderr)
            return 2
        label = args.offered_unit
    else:
        offered = [float(state.users) for state in steady]
        label = "users"
    output = args.output or Path("load.png")
    title = args.title or "throughput and p99 against offered load"
    plot_load(list(zip(offered, steady, strict=True)), output, offered_label=label, title=title)
    for path, load, state in zip(histories, offered, steady, strict=True):
        p99 = f"{state.p99_ms:.0f} ms" if state.p99_ms is not None else "n/a"
        print(
            f"{_run_name(path)}: offered {load:g}, achieved {state.requests_per_s:.1f}/s, "
            f"p99 {p99}, {state.failures} failures over {state.seconds:.0f} s"
        )
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
