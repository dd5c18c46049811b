"""The fleet's counts (API and Devices page): each one is what its filter of the list shows."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta

import httpx
import pytest

from app import clock
from app.models.user import Role
from app.settings import Settings
from simulator.protocol import REGISTER, DeviceApi, PkcePair, new_installation_id
from tests.admin_phone import connect
from tests.factories import SignedInClient, make_user, pair_scanner, sign_in
from tests.scanner import bearer, typed_body

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

SUMMARY = "/api/v1/admin/fleet/summary"
COUNT_CARD = re.compile(
    r'<a class="count-card[^"]*" href="([^"]+)" data-count="(\w+)"[^>]*>\s*'
    r'<span class="count-value">(\d+)</span>'
)
ROW = re.compile(r'<tr data-device-id="([0-9a-f-]+)"')


@dataclass(frozen=True)
class Fleet:
    online: set[str]
    offline: set[str]
    expiring: set[str]
    clones: set[str]
    admin: SignedInClient


async def _type_code(device_client: httpx.AsyncClient, code: str) -> None:
    answer = await device_client.post(REGISTER, json=typed_body(code, pkce=PkcePair.generate()))
    assert answer.status_code == 202, answer.text


@pytest.fixture
async def fleet(
    client: httpx.AsyncClient,
    device_client: httpx.AsyncClient,
    admin: SignedInClient,
    settings: Settings,
) -> Fleet:
    """Two scanners online (one a suspected clone), two offline (one with its credential
    expiring), one typed code waiting for approval; and what must not be counted: a
    deregistered scanner heard from a moment ago, the admin's phone, a typed code expired."""
    api = DeviceApi(device_client)
    expiring = await pair_scanner(admin, device_client)
    await _type_code(device_client, (await admin.api.mint_code()).code)
    # The first pair is now 5 days from its end; the ones paired from here on are new.
    clock.advance(timedelta(days=settings.device_credential_ttl_days - 5))
    admin = await sign_in(client, admin.user)
    online, clone, offline, gone = [await pair_scanner(admin, device_client) for _ in range(4)]
    for heard in (online, clone, gone):
        await api.heartbeat(await api.access_token(heard))
    # The same pair from a second install: the device is flagged, and (flag only) carries on.
    await api.access_token(replace(clone, installation_id=new_installation_id()))
    await admin.api.deregister(gone.device_id)
    await _type_code(device_client, (await admin.api.mint_code()).code)
    await sign_in_phone(admin, device_client)
    return Fleet(
        online={online.device_id, clone.device_id},
        offline={offline.device_id, expiring.device_id},
        expiring={expiring.device_id},
        clones={clone.device_id},
        admin=admin,
    )


async def sign_in_phone(admin: SignedInClient, device_client: httpx.AsyncClient) -> str:
    """The admin's phone connects, and is heard from (it is not a scanner)."""
    tokens = await connect(admin, device_client)
    seen = await device_client.get(SUMMARY, headers=bearer(tokens.access_token))
    assert seen.status_code == 200, seen.text
    return tokens.access_token


async def test_summary_counts_each_kind_of_scanner_once(fleet: Fleet) -> None:
    answer = await fleet.admin.client.get(SUMMARY)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {k: v for k, v in body.items() if k != "atIso"} == {
        "total": 4,
        "online": 2,
        "offline": 2,
        "pendingApproval": 1,
        "expiringSoon": 1,
        "cloneSuspected": 1,
    }
    assert body["atIso"].endswith("Z")


async def test_each_api_filter_lists_exactly_the_counted_devices(fleet: Fleet) -> None:
    api = fleet.admin.api

    assert {d["deviceId"] for d in await api.all_devices(kind="scanner", online=True)} == (
        fleet.online
    )
    assert {d["deviceId"] for d in await api.all_devices(kind="scanner", online=False)} == (
        fleet.offline
    )
    assert {d["deviceId"] for d in await api.all_devices(kind="scanner", expiringSoon=True)} == (
        fleet.expiring
    )
    assert {
        d["deviceId"] for d in await api.all_devices(kind="scanner", cloneSuspected=True)
    } == fleet.clones


async def test_list_rows_carry_the_expiry_and_clone_badges_data(fleet: Fleet) -> None:
    listed = {d["deviceId"]: d for d in await fleet.admin.api.all_devices(kind="scanner")}

    assert {d for d, v in listed.items() if v["credentialExpiresSoon"]} == fleet.expiring
    assert {d for d, v in listed.items() if v["cloneSuspectedAtIso"]} == fleet.clones
    assert all(v["credentialExpiresAtIso"] for v in listed.values())


async def test_each_count_on_the_devices_page_links_to_the_list_it_counts(fleet: Fleet) -> None:
    page = await fleet.admin.client.get("/admin/devices")
    summary = (await fleet.admin.client.get(SUMMARY)).json()

    cards = {key: (href, int(value)) for href, key, value in COUNT_CARD.findall(page.text)}
    assert {key: value for key, (_, value) in cards.items()} == {
        "total": summary["total"],
        "online": summary["online"],
        "offline": summary["offline"],
        "pending": summary["pendingApproval"],
        "expiring": summary["expiringSoon"],
        "clones": summary["cloneSuspected"],
    }
    everyone = fleet.online | fleet.offline
    for key, expected in {
        "total": everyone,
        "online": fleet.online,
        "offline": fleet.offline,
        "expiring": fleet.expiring,
        "clones": fleet.clones,
    }.items():
        href = cards[key][0].replace("&amp;", "&")
        listed = await fleet.admin.client.get(href)
        assert set(ROW.findall(listed.text)) == expected, key
        assert f'data-count="{key}" aria-current="true"' in listed.text, key
    assert cards["pending"][0] == "/admin/audit?action=pairing.claimed"


async def test_an_operator_and_the_admin_app_read_the_same_counts(
    fleet: Fleet, client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    as_admin = (await client.get(SUMMARY)).json()
    phone = await sign_in_phone(fleet.admin, device_client)
    by_phone = (await device_client.get(SUMMARY, headers=bearer(phone))).json()
    await sign_in(client, await make_user(Role.OPERATOR))
    as_operator = (await client.get(SUMMARY)).json()

    assert {**as_operator, "atIso": ""} == {**as_admin, "atIso": ""} == {**by_phone, "atIso": ""}


async def test_an_empty_fleet_counts_zero_and_the_page_says_how_to_register(
    admin: SignedInClient,
) -> None:
    body = (await admin.client.get(SUMMARY)).json()
    page = await admin.client.get("/admin/devices")

    assert {k: v for k, v in body.items() if k != "atIso"} == dict.fromkeys(
        ("total", "online", "offline", "pendingApproval", "expiringSoon", "cloneSuspected"), 0
    )
    assert 'data-testid="empty-state"' in page.text
    assert "Register device" in page.text


async def test_a_filter_matching_nothing_says_so_and_offers_to_clear_it(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    await pair_scanner(admin, device_client)

    page = await admin.client.get("/admin/devices", params={"status": "clones"})

    assert ROW.findall(page.text) == []
    assert "No device is suspected of being a clone" in page.text
    assert 'href="/admin/devices">Clear the filters' in page.text
