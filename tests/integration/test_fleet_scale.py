"""The Devices list and counts on a fleet too large to read whole: the online and offline
filters agree with the presence store (ahead of the database's flushed copy), page by page;
the search finds labels and models by substring in any case; the open page's poll answers
204 while nothing it shows has changed."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from starlette.applications import Starlette
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.edge.runtime import runtime
from app.models import Device, DeviceToken, Kind
from app.services.devices import FEW_HEARD
from app.settings import Settings
from simulator.protocol import DeviceApi
from statemachines import DeviceState, TokenState
from tests.factories import SignedInClient, pair_scanner

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

SUMMARY = "/api/v1/admin/fleet/summary"
ROW = re.compile(r'<tr data-device-id="([0-9a-f-]+)"')
LIVE_URL = re.compile(r'<div id="fleet-live"[^>]*\bhx-get="([^"]+)"')
COUNT = re.compile(r'data-count="(\w+)"[^>]*>\s*<span class="count-value">(\d+)</span>')
HTMX_POLL = {"HX-Request": "true"}


@dataclass(frozen=True)
class Fleet:
    """Device ids, newest registered first, with what each filter must list."""

    newest_first: list[str]
    online: set[str]
    expiring: set[str]
    clones: set[str]

    @property
    def offline(self) -> set[str]:
        return set(self.newest_first) - self.online

    def in_order(self, ids: set[str]) -> list[str]:
        return [device_id for device_id in self.newest_first if device_id in ids]


def _scanner(owner_id: UUID, index: int, base: datetime, **fields: object) -> Device:
    """A scanner registered `index` minutes before `base`, as bulk-created rows come."""
    defaults: dict[str, object] = {"label": f"Aisle {index:04d} scanner", "model": "iPhone15,2"}
    return Device(
        id=uuid4(),
        kind=Kind.SCANNER,
        platform="ios",
        registered_at=base - timedelta(minutes=index),
        owner_id=owner_id,
        **(defaults | fields),
    )


def _token(device: Device, expires_at: datetime) -> DeviceToken:
    return DeviceToken(
        id=uuid4(),
        device_id=device.id,
        lookup_id=uuid4().hex,
        token_hash="0" * 64,
        secret_hash="0" * 64,
        state=TokenState.active,
        issued_at=device.registered_at,
        expires_at=expires_at,
    )


async def _large_fleet(
    app: Starlette, admin: SignedInClient, settings: Settings, *, store_lost: bool
) -> Fleet:
    """More devices heard than the online list asks the database for by id, each way the
    store and the database's copy can stand, and devices the list leaves out.

    By index: 0 to 7 heard 20 s ago by the store, the database's copy then the same, never
    written or a day old; 8 online in the database only when `store_lost` (Redis emptied
    since the last flush), else silent; 9 silent (heard 10 minutes ago, or never).
    """
    now = clock.now()
    store = runtime(app).presence
    owner = admin.user.id
    heard_at = (now - timedelta(seconds=20)).timestamp()
    scanners: list[Device] = []
    online: set[str] = set()
    for index in range(1400):
        slot = index % 10
        if slot < 8:
            recorded = (now - timedelta(seconds=20), None, now - timedelta(days=1))[index % 3]
            device = _scanner(owner, index, now, last_seen_at=recorded)
            store.record_heartbeat(str(device.id), heard_at)
            online.add(str(device.id))
        elif slot == 8 and store_lost:
            device = _scanner(owner, index, now, last_seen_at=now - timedelta(seconds=30))
            online.add(str(device.id))
        else:
            device = _scanner(owner, index, now, last_seen_at=None)
            if index % 20 == 9:
                store.record_heartbeat(str(device.id), (now - timedelta(minutes=10)).timestamp())
        scanners.append(device)
    clones = {str(d.id) for i, d in enumerate(scanners) if i % 100 == 5}
    for device in scanners:
        if str(device.id) in clones:
            device.clone_suspected_at = now - timedelta(hours=1)
    # Heard too, and never listed: an admin's phone, a scanner deregistered a moment ago.
    phone = Device(
        id=uuid4(),
        kind=Kind.ADMIN_APP,
        label="Admin phone",
        platform="ios",
        registered_at=now,
        owner_id=owner,
    )
    gone = _scanner(
        owner,
        0,
        now + timedelta(minutes=1),
        state=DeviceState.deregistered,
        deleted_at=now - timedelta(seconds=5),
    )
    for unlisted in (phone, gone):
        store.record_heartbeat(str(unlisted.id), heard_at)
    await Device.bulk_create([*scanners, phone, gone], batch_size=500)
    soon = now + timedelta(days=settings.credential_expiry_notice_days - 1)
    later = now + timedelta(days=settings.device_credential_ttl_days)
    await DeviceToken.bulk_create(
        [_token(d, soon if i % 100 == 7 else later) for i, d in enumerate(scanners)],
        batch_size=500,
    )
    assert len(online) > FEW_HEARD
    return Fleet(
        newest_first=[str(d.id) for d in scanners],
        online=online,
        expiring={str(d.id) for i, d in enumerate(scanners) if i % 100 == 7},
        clones=clones,
    )


async def _paged(admin: SignedInClient, *, limit: int, **filters: str | bool) -> list[str]:
    """Every page of the admin API's list, in the order it was served."""
    listed: list[str] = []
    cursor: str | None = None
    while True:
        items, cursor = await admin.api.devices_page(
            cursor=cursor, limit=limit, kind="scanner", **filters
        )
        for item in items:
            assert item["online"] is filters.get("online", item["online"]), item
            listed.append(item["deviceId"])
        if cursor is None:
            return listed


@pytest.mark.parametrize("store_lost", [False, True], ids=["store-ahead", "store-emptied"])
async def test_presence_filters_list_exactly_the_devices_whose_rows_say_so_page_by_page(
    app: Starlette, admin: SignedInClient, settings: Settings, store_lost: bool
) -> None:
    large_fleet = await _large_fleet(app, admin, settings, store_lost=store_lost)

    online = await _paged(admin, limit=150, online=True)
    offline = await _paged(admin, limit=150, online=False)

    assert online == large_fleet.in_order(large_fleet.online)
    assert offline == large_fleet.in_order(large_fleet.offline)


async def test_the_counts_are_what_the_filters_list(
    app: Starlette, admin: SignedInClient, settings: Settings
) -> None:
    # While the store holds less than the database (emptied within the last window), online
    # is the larger of their counts: only the store being ahead is counted exactly.
    large_fleet = await _large_fleet(app, admin, settings, store_lost=False)

    body = (await admin.client.get(SUMMARY)).json()

    assert {k: v for k, v in body.items() if k != "atIso"} == {
        "total": len(large_fleet.newest_first),
        "online": len(large_fleet.online),
        "offline": len(large_fleet.offline),
        "pendingApproval": 0,
        "expiringSoon": len(large_fleet.expiring),
        "cloneSuspected": len(large_fleet.clones),
    }
    assert await _paged(admin, limit=200, expiringSoon=True) == large_fleet.in_order(
        large_fleet.expiring
    )
    assert await _paged(admin, limit=200, cloneSuspected=True) == large_fleet.in_order(
        large_fleet.clones
    )


async def test_the_devices_page_online_filter_shows_the_newest_online_first(
    app: Starlette, admin: SignedInClient, settings: Settings
) -> None:
    large_fleet = await _large_fleet(app, admin, settings, store_lost=False)

    page = await admin.client.get("/admin/devices", params={"status": "online"})

    assert ROW.findall(page.text) == large_fleet.in_order(large_fleet.online)[:25]
    counts = dict(COUNT.findall(page.text))
    assert (counts["online"], counts["offline"]) == (
        str(len(large_fleet.online)),
        str(len(large_fleet.offline)),
    )
    assert page.text.count('<span class="pill pill-ok">Online</span>') == 25


async def test_a_few_heard_devices_are_found_by_id_wherever_the_database_stands(
    app: Starlette, admin: SignedInClient
) -> None:
    now = clock.now()
    store = runtime(app).presence
    owner = admin.user.id
    heard_only, flushed, db_only, silent, never = (
        _scanner(owner, 1, now),
        _scanner(owner, 2, now, last_seen_at=now - timedelta(seconds=40)),
        _scanner(owner, 3, now, last_seen_at=now - timedelta(seconds=10)),
        _scanner(owner, 4, now, last_seen_at=now - timedelta(hours=2)),
        _scanner(owner, 5, now),
    )
    await Device.bulk_create([heard_only, flushed, db_only, silent, never])
    for device, ago in ((heard_only, 5), (flushed, 40), (silent, 7200)):
        store.record_heartbeat(str(device.id), (now - timedelta(seconds=ago)).timestamp())

    online = await _paged(admin, limit=1, online=True)
    offline = await _paged(admin, limit=1, online=False)

    assert online == [str(d.id) for d in (heard_only, flushed, db_only)]
    assert offline == [str(d.id) for d in (silent, never)]


@pytest.fixture
async def labelled(admin: SignedInClient) -> dict[str, str]:
    now = clock.now()
    owner = admin.user.id
    devices = {
        "Dock 3 iPad": "iPad13,1",
        "DOCK 30 receiving Mac": "Mac14,3",
        "Forklift 7 iPhone": "iPhone15,2",
        "100% scanner": "Mac15,1",
    }
    rows = [
        _scanner(owner, i, now, label=label, model=model)
        for i, (label, model) in enumerate(devices.items())
    ]
    await Device.bulk_create(rows)
    return {d.label: str(d.id) for d in rows}


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("ock 3", ["Dock 3 iPad", "DOCK 30 receiving Mac"]),
        ("dock 30", ["DOCK 30 receiving Mac"]),
        ("IPHONE", ["Forklift 7 iPhone"]),
        ("ipad13", ["Dock 3 iPad"]),
        ("%", ["100% scanner"]),
        ("_", []),
        ("zebra", []),
    ],
)
async def test_search_finds_a_label_or_model_by_substring_in_any_case(
    labelled: dict[str, str], admin: SignedInClient, q: str, found: list[str]
) -> None:
    page = await admin.client.get("/admin/devices", params={"q": q})
    api = await admin.api.all_devices(q=q)

    assert ROW.findall(page.text) == [labelled[label] for label in found]
    assert [d["deviceId"] for d in api] == [labelled[label] for label in found]


@pytest.mark.postgres
async def test_the_search_reads_the_trigram_indexes_on_postgres(admin: SignedInClient) -> None:
    """The migration's index expressions are the ones Tortoise writes for `icontains`."""
    search = Device.filter(Q(label__icontains="dock 3") | Q(model__icontains="dock 3"))

    # A test table is small enough to read whole, which the planner would rather do.
    async with in_transaction() as connection:
        await connection.execute_script("SET LOCAL enable_seqscan = off")
        _, plan = await connection.execute_query(f"EXPLAIN {search.sql(params_inline=True)}")

    text = "\n".join(str(row[0]) for row in plan)
    assert "idx_devices_label_trgm" in text, text
    assert "idx_devices_model_trgm" in text, text


def _live_url(page: httpx.Response) -> str:
    found = LIVE_URL.search(page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


async def test_the_open_pages_poll_is_empty_until_something_it_shows_changes(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    api = DeviceApi(device_client)
    paired = await pair_scanner(admin, device_client)
    token = await api.access_token(paired)
    await api.heartbeat(token)
    opened = await admin.client.get("/admin/devices")
    live = _live_url(opened)

    unchanged = await admin.client.get(live, headers=HTMX_POLL)
    # Another heartbeat moves only the exact time in the tooltip: still "just now".
    await api.heartbeat(token)
    still = await admin.client.get(live, headers=HTMX_POLL)
    # Not a poll (a reload of the same address): the whole page.
    reloaded = await admin.client.get(live)
    await admin.api.deregister(paired.device_id)
    changed = await admin.client.get(live, headers=HTMX_POLL)

    assert (unchanged.status_code, unchanged.content) == (204, b"")
    assert (still.status_code, still.content) == (204, b"")
    assert reloaded.status_code == 200
    assert ROW.findall(reloaded.text) == [paired.device_id]
    assert changed.status_code == 200
    assert ROW.findall(changed.text) == []
    assert dict(COUNT.findall(changed.text))["total"] == "0"
    next_live = _live_url(changed)
    assert next_live != live
    assert (await admin.client.get(next_live, headers=HTMX_POLL)).status_code == 204
