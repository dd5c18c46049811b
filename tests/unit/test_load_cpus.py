"""The soak's per-process CPU readings (`loadtests.cpus`), against real processes: a child
that burns CPU is charged to the group of the process that started it, a group by command
name finds its processes, and a process that ends between two readings drops out."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.cpus import ProcessGroup, cores_between, descendants, group_cpu_seconds

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

# A parent that starts a child burning about 0.4 s of CPU, then waits to be stopped.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.process_time() + 0.4\\n"
    "while time.process_time() < end: pass\\nprint('done', flush=True)\\ntime.sleep(60)"],
    stdout=sys.stdout)
time.sleep(60)
"""


def test_a_childs_cpu_is_charged_to_its_parents_group() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            group = [ProcessGroup("parent", roots=(parent.pid,))]
            deadline = time.monotonic() + 10
            while not descendants(parent.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            (child,) = descendants(parent.pid)
            before = group_cpu_seconds(group)
            started = time.monotonic()
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == "done"
            after = group_cpu_seconds(group)
            elapsed = time.monotonic() - started
            assert set(after["parent"]) == {parent.pid, child}
            busy = cores_between(before, after, elapsed)["parent"] * elapsed
            # The child's burn, less what it had done before the first reading.
            assert 0.2 <= busy <= 0.6, busy
        finally:
            for pid in descendants(parent.pid):
                os.kill(pid, signal.SIGKILL)
            parent.kill()


def test_a_group_by_command_finds_its_processes(tmp_path: Path) -> None:
    sleeper = tmp_path / "polaris-probe"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", sleeper)
    process = subprocess.Popen([str(sleeper), "30"])
    probe = [ProcessGroup("probe", command="polaris-probe")]
    try:
        # Until the child has exec'd, its command name is still its parent's.
        deadline = time.monotonic() + 10
        while not (reading := group_cpu_seconds(probe)["probe"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert set(reading) == {process.pid}
    finally:
        process.kill()
        process.wait()
    ended = group_cpu_seconds(probe)
    assert ended == {"probe": {}}
    assert cores_between({"probe": reading}, ended, 1.0) == {"probe": 0.0}
