"""What a fleet run counts: requests, errors, latency, schedule lag and its own CPU."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

RATE_WINDOW = 5.0
SAMPLES = 20_000


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class FleetStats:
    devices: int = 0
    paired: int = 0
    pairing_failed: int = 0
    online: int = 0
    dropped: int = 0
    revoked: int = 0
    requests: int = 0
    heartbeats_ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    phase: str = "starting"
    started_at: float = field(default_factory=time.monotonic)
    cpu_at_start: float = field(default_factory=time.process_time)
    # Heartbeats answered at or after this moment count towards the steady rate.
    steady_from: float | None = None
    steady_heartbeats: int = 0
    # Process CPU time when the steady phase began: the ramp's token exchanges cost extra.
    cpu_at_steady: float | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    _recent: deque[float] = field(default_factory=deque)

    def request(self, now: float | None = None) -> None:
        self.requests += 1
        self._recent.append(now if now is not None else time.monotonic())

    def heartbeat_ok(self, latency: float, lag: float, now: float) -> None:
        self.heartbeats_ok += 1
        self.latencies.append(latency)
        self.lags.append(lag)
        if self.steady_from is not None and now >= self.steady_from:
            self.steady_heartbeats += 1

    def error(self, code: str) -> None:
        self.errors[code] += 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def requests_per_second(self, now: float | None = None) -> float:
        now = now if now is not None else time.monotonic()
        while self._recent and self._recent[0] < now - RATE_WINDOW:
            self._recent.popleft()
        span = min(RATE_WINDOW, max(now - self.started_at, 1e-3))
        return len(self._recent) / span

    def restart_clock(self) -> None:
        """Measure from here: the run phase, not pairing."""
        self.started_at = time.monotonic()
        self.cpu_at_start = time.process_time()
        self.requests = 0
        self.heartbeats_ok = 0
        self.steady_heartbeats = 0
        self.cpu_at_steady = None
        self.latencies.clear()
        self.lags.clear()
        self._recent.clear()

    def mark_steady(self) -> None:
        self.cpu_at_steady = time.process_time()

    def steady_cpu_seconds(self) -> float | None:
        if self.cpu_at_steady is None:
            return None
        return time.process_time() - self.cpu_at_steady

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def cpu_seconds(self) -> float:
        return time.process_time() - self.cpu_at_start

    def cpu_share(self) -> float:
        """Of one core, since the clock was last restarted."""
        return self.cpu_seconds() / max(self.elapsed(), 1e-3)


@dataclass(frozen=True)
class FleetReport:
    devices: int
    paired: int
    pairing_failed: int
    interval: float
    ran_for: float
    steady_for: float
    heartbeats_ok: int
    steady_heartbeats: int
    requests: int
    errors: dict[str, int]
    online_at_end: int
    revoked: int
    cpu_seconds: float
    steady_cpu_seconds: float | None
    latency_p50: float
    latency_p99: float
    lag_p50: float
    lag_p99: float

    @property
    def target_rate(self) -> float:
        return self.paired / self.interval if self.interval else 0.0

    @property
    def achieved_rate(self) -> float | None:
        """Heartbeats/s once every device was on its schedule; None if the run was too short."""
        if self.steady_for < self.interval:
            return None
        return self.steady_heartbeats / self.steady_for

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.ran_for if self.ran_for else 0.0

    @property
    def steady_cpu_share(self) -> float | None:
        if self.steady_cpu_seconds is None or not self.steady_for:
            return None
        return self.steady_cpu_seconds / self.steady_for

    @property
    def cpu_per_request_us(self) -> float:
        return 1e6 * self.cpu_seconds / self.requests if self.requests else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def lines(self) -> list[str]:
        lines = [
            f"devices: {self.paired} paired of {self.devices}"
            + (f" ({self.pairing_failed} failed to pair)" if self.pairing_failed else ""),
            f"ran {self.ran_for:.1f} s: {self.heartbeats_ok} heartbeats ok, "
            f"{self.requests} requests ({self.requests / max(self.ran_for, 1e-3):.1f}/s), "
            f"{self.error_count} errors" + (f" {dict(self.errors)}" if self.errors else ""),
        ]
        achieved = self.achieved_rate
        target = f"target {self.target_rate:.1f} heartbeats/s ({self.interval:g} s interval)"
        if achieved is None:
            lines.append(
                f"{target}; steady phase {self.steady_for:.1f} s is shorter than one "
                "interval, so no sustained rate is claimed"
            )
        else:
            share = 100 * achieved / self.target_rate if self.target_rate else 0.0
            steady_cpu = self.steady_cpu_share
            lines.append(
                f"{target}; achieved {achieved:.1f}/s over the last {self.steady_for:.0f} s "
                f"({share:.1f} %)"
                + (
                    f", simulator CPU then {100 * steady_cpu:.1f} % of one core"
                    if steady_cpu is not None
                    else ""
                )
            )
        lines += [
            f"heartbeat latency p50 {1000 * self.latency_p50:.1f} ms, "
            f"p99 {1000 * self.latency_p99:.1f} ms; schedule lag p50 "
            f"{1000 * self.lag_p50:.1f} ms, p99 {1000 * self.lag_p99:.1f} ms",
            f"simulator CPU {self.cpu_seconds:.1f} s = {100 * self.cpu_share:.1f} % of one core, "
            f"{self.cpu_per_request_us:.0f} µs per request",
            f"online at the end: {self.online_at_end}; credentials refused: {self.revoked}",
        ]
        return lines
