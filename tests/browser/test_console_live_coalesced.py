"""An open Devices page is not flooded when a sweep flips many devices: it asks at most once
per interval, swaps its list at most once per interval, and while nothing it shows changes the
answer is an empty 204 and nothing is swapped."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import SignInPage
from tests.harness import ServerProcess, base_env

pytestmark = pytest.mark.browser

INTERVAL_SECONDS = 1
WINDOW_SECONDS = 30
FLEET = 300
# The seeded devices were heard this long before the window closes on all of them at once.
FLIP_AFTER_SECONDS = 3

# What the page does, seen from inside it: each poll of the live region (htmx's own events)
# and each time the live region or the counts are replaced in the document.
OBSERVE = """
() => {
  window.polls = [];
  window.swaps = [];
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    // The request itself, read when done: a swapped region's own events no longer bubble.
    if (e.detail.elt.id !== "fleet-live") return;
    window.polls.push({at: performance.now(), xhr: e.detail.xhr});
  });
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.id === "fleet-live" || node.id === "fleet-counts") {
          window.swaps.push({id: node.id, at: performance.now()});
        }
      }
    }
  }).observe(document.body, {childList: true, subtree: true});
}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = base_env(
        tmp_path,
        CONSOLE_REFRESH_SECONDS=str(INTERVAL_SECONDS),
        HEARTBEAT_ONLINE_WINDOW_SECONDS=str(WINDOW_SECONDS),
        PRESENCE_SWEEP_EVERY_SECONDS="1",
    )
    process = ServerProcess(tmp_path, env).start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def _database(server: ServerProcess) -> Iterator[sqlite3.Connection]:
    """The server's SQLite file; what is written inside commits as one transaction."""
    connection = sqlite3.connect(server.workdir / "polaris.db", timeout=10)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def _seed_online_fleet(server: ServerProcess) -> None:
    """`FLEET` scanners whose last heartbeat reached the database `FLIP_AFTER_SECONDS` before
    the online window closes, all at once, recorded online by the sweep."""
    now = datetime.now(UTC)
    heard = now - timedelta(seconds=WINDOW_SECONDS - FLIP_AFTER_SECONDS)
    with _database(server) as db:
        [(owner_id,)] = db.execute("SELECT id FROM users").fetchall()
        db.executemany(
            "INSERT INTO devices (id, kind, state, label, platform, model, os_version,"
            " app_version, capabilities, owner_id, registered_at, last_seen_at, reported_online)"
            " VALUES (?, 'scanner', 'active', ?, 'ios', 'iPhone15,2', '17.5', '2.4.0', '[]',"
            " ?, ?, ?, 1)",
            [
                (str(uuid4()), f"Aisle {i:03d} iPhone", owner_id, registered, str(heard))
                for i, registered in enumerate(
                    str(now - timedelta(minutes=i)) for i in range(FLEET)
                )
            ],
        )


def _recorded_offline(server: ServerProcess) -> int:
    with _database(server) as db:
        [(count,)] = db.execute("SELECT COUNT(*) FROM presence_changes WHERE NOT online")
    return int(count)


def _count(page: Page, key: str) -> Locator:
    return page.locator(f"[data-count='{key}'] .count-value")


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def test_a_sweep_flipping_the_fleet_offline_is_one_swap_and_then_nothing(
    page: Page, server: ServerProcess
) -> None:
    SignInPage(page).open("/").sign_in(*server.first_admin())
    expect(page).to_have_url(re.compile(r"/admin/devices$"))
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    page.evaluate(OBSERVE)

    _seed_online_fleet(server)
    expect(_count(page, "online")).to_have_text(str(FLEET), timeout=5_000)
    expect(_count(page, "online")).to_have_text("0", timeout=FLIP_AFTER_SECONDS * 1_000 + 5_000)
    expect(_count(page, "offline")).to_have_text(str(FLEET))
    rows = page.locator("tr[data-device-id]")
    expect(rows).to_have_count(25)
    expect(rows.filter(has_text="Online")).to_have_count(0)
    # The sweep records each device's transition, one transaction each, while the page polls.
    deadline = time.monotonic() + 20
    while _recorded_offline(server) < FLEET:
        assert time.monotonic() < deadline, f"the sweep recorded {_recorded_offline(server)}"
        page.wait_for_timeout(200)
    settled = page.evaluate("performance.now()")
    page.wait_for_timeout(4_500 * INTERVAL_SECONDS)

    polls: list[dict[str, float]] = page.evaluate(
        "window.polls.map((p) => ({at: p.at, status: p.xhr.status}))"
    )
    swaps: list[dict[str, Any]] = page.evaluate("window.swaps")
    interval_ms = INTERVAL_SECONDS * 1000
    # Timers fire a little early or late; two polls or swaps within one interval would not.
    least = 0.8 * interval_ms
    assert min(_gaps([p["at"] for p in polls])) >= least, polls
    for region in ("fleet-live", "fleet-counts"):
        at = [s["at"] for s in swaps if s["id"] == region]
        # The fleet appearing, then all of it going offline: one swap each.
        assert len(at) == 2, swaps
        assert min(_gaps(at)) >= least, swaps
    answered = [p["status"] for p in polls]
    assert answered.count(200) == 2, polls
    # Every other poll, before the fleet came and since it went offline, was empty.
    assert set(answered) <= {200, 204, 0}, polls
    quiet = [p for p in polls if p["at"] > settled]
    assert len(quiet) >= 3, polls
    # The last may still be on its way when the page is read (status 0).
    assert {p["status"] for p in quiet[:-1]} == {204}, polls
    assert [s for s in swaps if s["at"] > settled] == []
