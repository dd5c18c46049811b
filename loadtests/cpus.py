"""Which CPU each process of the bench runs on, and how much CPU time the measured ones use."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pinning:
    """Command prefixes that pin the measured server and the load generator apart."""

    server: list[str]
    load: list[str]
    note: str


def plan_cpus(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return Pinning([], [], "not pinned")
    server_cpu, load_cpu = cpus[-1], cpus[0]
    return Pinning(
        ["taskset", "-c", str(server_cpu)],
        ["taskset", "-c", str(load_cpu)],
        f"server pinned to CPU {server_cpu}, wrk to CPU {load_cpu} (taskset)",
    )


def busy_elsewhere(seconds: float = 1.0) -> float:
    """CPU share (0 to 1, whole machine) used while this process sleeps: other load skews runs."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    with contextlib.suppress(OSError, ValueError, IndexError):
        busy_before, total_before = sample()
        time.sleep(seconds)
        busy_after, total_after = sample()
        return (busy_after - busy_before) / max(1, total_after - total_before)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; 0 elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def descendants(pid: int) -> list[int]:
    """`pid`'s children, theirs, and so on (Linux; none elsewhere)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        with contextlib.suppress(OSError, ValueError):
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            kids = [int(child) for child in children]
            found.extend(kids)
            pending.extend(kids)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and everything it started (uvicorn's workers), from /proc."""
    return sum(cpu_seconds(each) for each in (pid, *descendants(pid)))


@dataclass(frozen=True)
class ProcessGroup:
    """Processes counted together: `roots` and everything they started, and, for servers
    started elsewhere (PostgreSQL, Redis), every process whose command name is `command`."""

    name: str
    roots: tuple[int, ...] = ()
    command: str | None = None
    # False: the roots alone (this very process, not the servers it started).
    with_children: bool = True

    def pids(self) -> set[int]:
        pids = set(self.roots)
        if self.with_children:
            pids.update(pid for root in self.roots for pid in descendants(root))
        if self.command is not None:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        if (entry / "comm").read_text().strip() == self.command:
                            pids.add(int(entry.name))
        return pids


def group_cpu_seconds(groups: Sequence[ProcessGroup]) -> dict[str, dict[int, float]]:
    """Each group's processes and the CPU time each has used so far. Two readings give a
    window's use with `cores_between`; a process that ended between them drops out."""
    return {group.name: {pid: cpu_seconds(pid) for pid in group.pids()} for group in groups}


def cores_between(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], seconds: float
) -> dict[str, float]:
    """Cores each group kept busy between two readings `seconds` apart (a process started
    in between counts from its start)."""
    return {
        name: sum(used - before.get(name, {}).get(pid, 0.0) for pid, used in pids.items())
        / max(seconds, 1e-9)
        for name, pids in after.items()
    }
