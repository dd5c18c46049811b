"""What a fleet of 1M or 10M devices needs, from costs measured on this machine.

    python -m loadtests.capacity [--devices 100000 1000000 10000000] [--heartbeat-us 270] …

Every term is a measured cost times a rate the fleet's shape fixes (a heartbeat every 30 s,
an access token every 9 minutes, a last-seen flush every 15 s, a sweep every 5 s): the
defaults are the figures in docs/performance.md, each option names where its figure comes
from. `python -m loadtests.bench --scale N` prints the same model for N next to what the
soak measured, which is how the model is checked.

What it leaves out on purpose: the console and the admin API (a few admins, not a fleet),
pairing (a fleet is paired once), webhook fan-out (its own worker, bounded by the outbox).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields

HEARTBEAT_EVERY_S = 30.0
# Access tokens live 10 minutes and are traded again a minute before they expire.
EXCHANGE_EVERY_S = 540.0
FLUSH_EVERY_S = 15.0
SWEEP_EVERY_S = 5.0
RECONCILE_EVERY_S = 60.0
# The presence set (ZADD GT) and the arrivals set (ZADD NX), in one pipelined flush.
REDIS_WRITES_PER_HEARTBEAT = 2
# How busy a core may run before latency suffers: the rest is headroom for bursts.
TARGET_UTILISATION = 0.6
CORES_PER_BOX = 2
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Costs:
    """Measured costs; each field's default says where its figure comes from."""

    # `--scale 20000`, its steady part: web CPU per heartbeat as a fleet sends them, each of
    # 2,000 connections idle between requests (µs). The wrk bench's 50-69 µs is for 64
    # connections kept busy, where one wake-up serves many requests.
    heartbeat_us: float = 270.0
    # bench: a token exchange answered from verified pairs (µs) ...
    exchange_memory_us: float = 198.0
    # ... and one that reads its row (in-process on PostgreSQL, µs)
    exchange_database_us: float = 700.0
    # polaris measure-presence: Redis memory per device, presence and arrivals sets (bytes)
    redis_bytes_per_device: float = 272.0
    # polaris measure-presence: last-seen flush, rows written per second by one worker
    flush_rows_per_s: float = 100_000.0
    # polaris measure-presence: an incremental sweep in which nothing changes (s per 100k)
    steady_sweep_s_per_100k: float = 0.030
    # polaris measure-presence: the full reconcile pass, nothing changing (s per 100k)
    reconcile_sweep_s_per_100k: float = 0.55
    # polaris measure-presence: a sweep recording 100,000 devices going offline (s)
    offline_sweep_s_per_100k: float = 5.6
    # soak: bytes per row in PostgreSQL (heap + indexes) of the tables that grow
    presence_change_bytes: float = 200.0
    outbox_event_bytes: float = 359.0
    audit_row_bytes: float = 438.0
    # VERIFIED_PAIRS_SECONDS (600) against a token every 540 s: every other exchange hits
    verified_pair_hit_share: float = 0.5
    # redis-benchmark (ZADD, pipelined 200 deep, one member each, set growing to 1M members):
    # members written per second by one Redis core
    redis_member_writes_per_core: float = 234_000.0
    # fleet shape: presence transitions per device per day (a shift on, a shift off)
    transitions_per_device_day: float = 2.0
    # fleet shape: credential rotations per device per day (2/3 of a 90-day life)
    rotations_per_device_day: float = 1 / 60


@dataclass(frozen=True)
class Needs:
    devices: int
    heartbeats_per_s: float
    exchanges_per_s: float
    app_cores: float
    app_boxes: int
    redis_mb: float
    redis_member_writes_per_s: float
    pg_last_seen_writes_per_s: float
    flush_pass_s: float
    steady_sweep_pass_s: float
    reconcile_pass_s: float
    shift_change_sweep_s: float
    presence_rows_per_day: float
    audit_rows_per_day: float
    growth_gb_per_day: float


def needs(devices: int, costs: Costs) -> Needs:
    heartbeats = devices / HEARTBEAT_EVERY_S
    exchanges = devices / EXCHANGE_EVERY_S
    exchange_us = (
        costs.verified_pair_hit_share * costs.exchange_memory_us
        + (1 - costs.verified_pair_hit_share) * costs.exchange_database_us
    )
    cpu_seconds = heartbeats * costs.heartbeat_us / 1e6 + exchanges * exchange_us / 1e6
    cores = cpu_seconds / TARGET_UTILISATION
    # Every device that heartbeated since the last flush is written: half the fleet at a
    # heartbeat every 30 s and a flush every 15 s.
    flush_rows = devices * min(1.0, FLUSH_EVERY_S / HEARTBEAT_EVERY_S)
    transitions = devices * costs.transitions_per_device_day
    audit = devices * costs.rotations_per_device_day * 2  # rotated + issued
    growth = (
        transitions * (costs.presence_change_bytes + costs.outbox_event_bytes)
        + audit * costs.audit_row_bytes
    )
    return Needs(
        devices=devices,
        heartbeats_per_s=heartbeats,
        exchanges_per_s=exchanges,
        app_cores=cores,
        app_boxes=max(1, -(-int(cores * 100) // (CORES_PER_BOX * 100))),
        redis_mb=devices * costs.redis_bytes_per_device / 1e6,
        redis_member_writes_per_s=heartbeats * REDIS_WRITES_PER_HEARTBEAT,
        pg_last_seen_writes_per_s=flush_rows / FLUSH_EVERY_S,
        flush_pass_s=flush_rows / costs.flush_rows_per_s,
        steady_sweep_pass_s=devices / 100_000 * costs.steady_sweep_s_per_100k,
        reconcile_pass_s=devices / 100_000 * costs.reconcile_sweep_s_per_100k,
        # A shift ending: a fifth of the fleet going offline in one pass.
        shift_change_sweep_s=devices / 5 / 100_000 * costs.offline_sweep_s_per_100k,
        presence_rows_per_day=transitions,
        audit_rows_per_day=audit,
        growth_gb_per_day=growth / 1e9,
    )


ROWS: tuple[tuple[str, str, str], ...] = (
    ("heartbeats/s", "heartbeats_per_s", ",.0f"),
    ("token exchanges/s", "exchanges_per_s", ",.0f"),
    (f"app cores at {TARGET_UTILISATION:.0%}", "app_cores", ",.1f"),
    (f"{CORES_PER_BOX}-core app boxes", "app_boxes", ",d"),
    ("Redis presence MB", "redis_mb", ",.0f"),
    ("Redis member writes/s", "redis_member_writes_per_s", ",.0f"),
    ("PG last-seen writes/s", "pg_last_seen_writes_per_s", ",.0f"),
    (f"flush pass s (every {FLUSH_EVERY_S:.0f})", "flush_pass_s", ",.1f"),
    (f"steady sweep s (every {SWEEP_EVERY_S:.0f})", "steady_sweep_pass_s", ",.3f"),
    (f"reconcile pass s (every {RECONCILE_EVERY_S:.0f})", "reconcile_pass_s", ",.1f"),
    ("shift-change sweep s", "shift_change_sweep_s", ",.1f"),
    ("presence rows/day", "presence_rows_per_day", ",.0f"),
    ("audit rows/day", "audit_rows_per_day", ",.0f"),
    ("PG growth GB/day", "growth_gb_per_day", ",.2f"),
)


def table(rows: list[Needs]) -> str:
    lines = [f"{'':<28}" + "".join(f"{n.devices:>14,}" for n in rows)]
    for label, name, spec in ROWS:
        lines.append(f"{label:<28}" + "".join(f"{getattr(n, name):>14{spec}}" for n in rows))
    return "\n".join(lines)


def limits(costs: Costs) -> list[tuple[int, str]]:
    """The fleet size at which each single-threaded part runs out, smallest first."""
    found = [
        (
            # A pass writes the devices heard in its 15 s: half the fleet.
            int(costs.flush_rows_per_s * HEARTBEAT_EVERY_S),
            "the last-seen flush: a pass takes its whole interval (one worker writes every "
            "online device's time every 15 s)",
        ),
        (
            int(SWEEP_EVERY_S / costs.reconcile_sweep_s_per_100k * 100_000),
            "the reconcile pass outlasts a sweep tick (the ticks after it wait)",
        ),
        (
            int(SWEEP_EVERY_S / costs.steady_sweep_s_per_100k * 100_000),
            "the incremental sweep: a pass takes its whole interval",
        ),
        (
            int(
                costs.redis_member_writes_per_core / REDIS_WRITES_PER_HEARTBEAT * HEARTBEAT_EVERY_S
            ),
            "one Redis core for the presence writes",
        ),
    ]
    return sorted(found)


def parse_args(argv: list[str] | None) -> tuple[list[int], Costs]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.capacity", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    defaults = Costs()
    for f in fields(Costs):
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=float, default=getattr(defaults, f.name)
        )
    args = parser.parse_args(argv)
    costs = Costs(**{f.name: getattr(args, f.name) for f in fields(Costs)})
    return list(args.devices), costs


def main(argv: list[str] | None = None) -> int:
    sizes, costs = parse_args(argv)
    rows = [needs(n, costs) for n in sizes]
    print(table(rows))
    print()
    print("Where each single-threaded part runs out, smallest fleet first:")
    for devices, what in limits(costs):
        print(f"  {devices:>12,} devices: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
