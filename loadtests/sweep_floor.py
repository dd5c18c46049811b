"""The floor under a sweep of N devices: its three writes in bare PostgreSQL, nothing else.

    python -m loadtests.sweep_floor [--devices 100000] [--chunk 5000] [--rounds 3]
                                    [--database-url postgres://postgres@127.0.0.1:5432/sweep_floor]

What `polaris measure-presence` times through Polaris, done here with asyncpg alone on the
narrowest tables that could hold it (a primary key each, no foreign key, no other index):
flip a flag on every device, insert one presence change per device, insert one outbox event
per device with its JSON payload; in chunks of `--chunk`, a transaction each, as the sweep
writes them. No Polaris code runs: what this prints is what PostgreSQL on this machine needs
for the writes themselves. The database is dropped and created first, and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import orjson

from loadtests.servers import drop_database, fresh_database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/sweep_floor"
WRITES = ("flag", "changes", "outbox")

_SCHEMA = """
CREATE TABLE devices (id uuid PRIMARY KEY, online boolean NOT NULL);
CREATE TABLE presence_changes (id uuid PRIMARY KEY, device_id uuid NOT NULL,
                               online boolean NOT NULL, at timestamptz NOT NULL);
CREATE TABLE outbox_events (id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
                            occurred_at timestamptz NOT NULL);
"""
_FLIP = "UPDATE devices SET online = $2 WHERE id = ANY($1::uuid[]) AND online <> $2 RETURNING id"
_CHANGES = (
    "INSERT INTO presence_changes SELECT gen_random_uuid(), d, $2, now()"
    " FROM unnest($1::uuid[]) AS d"
)
_EVENTS = (
    "INSERT INTO outbox_events SELECT gen_random_uuid(), $2, p::jsonb, now()"
    " FROM unnest($1::text[]) AS p"
)


@dataclass
class Round:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(WRITES, 0.0))

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


async def measure(database_url: str, *, devices: int, chunk: int, rounds: int) -> list[Round]:
    await fresh_database(database_url)
    connection = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(_SCHEMA)
        ids = [uuid.uuid4() for _ in range(devices)]
        await connection.execute("INSERT INTO devices SELECT unnest($1::uuid[]), true", ids)
        await connection.execute("VACUUM ANALYZE devices")
        return [
            await _one_round(connection, ids, chunk=chunk, online=index % 2 == 1)
            for index in range(rounds)
        ]
    finally:
        await connection.close()
        await drop_database(database_url)


async def _one_round(
    connection: asyncpg.Connection, ids: list[uuid.UUID], *, chunk: int, online: bool
) -> Round:
    measured = Round()
    event = "device.online" if online else "device.offline"
    for start in range(0, len(ids), chunk):
        async with connection.transaction():
            began = time.perf_counter()
            flipped = [
                row[0] for row in await connection.fetch(_FLIP, ids[start : start + chunk], online)
            ]
            flagged = time.perf_counter()
            await connection.execute(_CHANGES, flipped, online)
            changed = time.perf_counter()
            payloads = [
                orjson.dumps(
                    {"deviceId": str(d), "label": "Dock scanner", "kind": "scanner", "atIso": ""}
                ).decode()
                for d in flipped
            ]
            await connection.execute(_EVENTS, payloads, event)
            done = time.perf_counter()
        measured.seconds["flag"] += flagged - began
        measured.seconds["changes"] += changed - flagged
        measured.seconds["outbox"] += done - changed
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    rounds = asyncio.run(
        measure(args.database_url, devices=args.devices, chunk=args.chunk, rounds=args.rounds)
    )
    print(f"{args.devices:,} devices, chunks of {args.chunk:,}, {args.rounds} rounds (ms):")
    for name in (*WRITES, "total"):
        each = [(r.total if name == "total" else r.seconds[name]) * 1000 for r in rounds]
        print(
            f"  {name:<8} median {statistics.median(each):7.0f}"
            f"   each {', '.join(f'{ms:.0f}' for ms in each)}"
        )


if __name__ == "__main__":
    main()
