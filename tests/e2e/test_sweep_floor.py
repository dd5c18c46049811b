"""The sweep's floor tool (docs/performance.md) on a small fleet: it times each write and
leaves no database behind."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import asyncpg
import pytest

from tests import backends
from tests.harness import REPO_ROOT

pytestmark = [pytest.mark.postgres]

ROW = re.compile(r"^\s+(flag|changes|outbox|total)\s+median\s+(\d+)\s+each ((?:\d+, )*\d+)$", re.M)


async def _databases() -> set[str]:
    connection = await asyncpg.connect(
        backends.POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    )
    try:
        return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


def test_the_floor_times_each_write_of_every_round_and_drops_its_database() -> None:
    url = backends.POSTGRES_URL.rsplit("/", 1)[0] + "/polaris_sweep_floor_test"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.sweep_floor",
            "--devices",
            "300",
            "--chunk",
            "100",
            "--rounds",
            "2",
            "--database-url",
            url,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("300 devices, chunks of 100, 2 rounds (ms):")
    rows = {name: each.split(", ") for name, _, each in ROW.findall(run.stdout)}
    assert set(rows) == {"flag", "changes", "outbox", "total"}
    assert all(len(each) == 2 for each in rows.values())
    assert "polaris_sweep_floor_test" not in asyncio.run(_databases())
