"""The seeded fleet a Locust process plays: the devices of the simulator's credentials file,
split between the processes of a `--processes N` run so no two play the same device, then
dealt to the users in slices, so thousands of devices share a few hundred connections."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TypeVar

from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.locust_options import options_of
from simulator.state import StateFile, StoredDevice

T = TypeVar("T")


def partition(items: list[T], index: int, count: int) -> list[T]:
    """The share of process `index` of `count`: every count-th item, so shares differ by one
    at most and stay disjoint."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"process {index} of {count}")
    return items[index::count]


class Fleet:
    def __init__(self, devices: list[StoredDevice]) -> None:
        self.devices = devices
        self._dealt = itertools.count()

    def deal(self, size: int) -> list[StoredDevice]:
        """The next `size` devices, wrapping round: more users than devices share some."""
        size = max(1, min(size, len(self.devices)))
        start = next(self._dealt) * size
        return [self.devices[(start + offset) % len(self.devices)] for offset in range(size)]


_fleets: dict[int, Fleet] = {}


def process_share(environment: Environment) -> tuple[int, int]:
    """(index, count) of this process among those `--processes` forked; (0, 1) otherwise.

    Workers started by hand on several machines do not know each other's number: give each
    machine its own credentials file.
    """
    runner = environment.runner
    parsed = environment.parsed_options
    processes = int(getattr(parsed, "processes", None) or 0)
    if isinstance(runner, WorkerRunner) and processes > 1:
        return runner.worker_index % processes, processes
    return 0, 1


def load_fleet(environment: Environment) -> Fleet:
    """Read the credentials file for `--host` (once per process); SystemExit if it has none."""
    loaded = _fleets.get(id(environment))
    if loaded is not None:
        return loaded
    options = options_of(environment)
    host = (environment.host or "").rstrip("/")
    devices = StateFile(Path(options.sim_state)).load(host)
    if not devices:
        raise SystemExit(
            f"no paired devices for {host} in {options.sim_state}: seed them with the "
            "simulator first (loadtests/README.md)"
        )
    index, count = process_share(environment)
    share = partition(devices, index, count)
    if not share:
        raise SystemExit(f"{len(devices)} devices cannot be shared by {count} processes")
    fleet = Fleet(share)
    _fleets[id(environment)] = fleet
    return fleet
