"""The seed runbook, driven by simulated devices and checked through the admin API.

Runs against the embedded server and, in the postgres pass, against two replicas and a
worker on PostgreSQL + Redis (devices on one replica, the admin on the other).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from simulator.admin import AdminApi, admin_http_client
from simulator.misbehaviour import refusal
from simulator.protocol import PendingPairing, parse_pairing_uri
from simulator.scanner import DeviceLost
from tests.e2e.simulator_fixtures import Target, signed_in

pytestmark = [pytest.mark.slow]

# Replicas batch heartbeats into Redis every ~100 ms: another replica sees them that late.
PRESENCE_PROPAGATION = 2.0


async def eventually(probe: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until `probe` holds; fails after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await probe():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"still not true after {within} s")


async def shows_online(admin: AdminApi, device_id: str) -> None:
    """Online per the admin API; a replica's heartbeats reach the others within ~100 ms."""

    async def online() -> bool:
        return bool((await admin.device(device_id))["online"])

    await eventually(online, within=PRESENCE_PROPAGATION)


async def test_seed_runbook_pairs_lists_audits_expires_deregisters_and_repairs(
    target: Target,
) -> None:
    async with signed_in(target) as (api, admin):
        phone = target.scanner(api, "iphone-14")
        minted = await admin.mint_code()
        await phone.pair_by_qr(minted.pairing_uri)
        device_id = phone.device_id
        assert device_id is not None
        await phone.heartbeat()

        listed = await admin.all_devices(q=phone.identity.label)
        assert [d["deviceId"] for d in listed] == [device_id]
        assert listed[0]["ownerEmail"] == target.admin_email
        device = await admin.device(device_id)
        assert device["ownerEmail"] == target.admin_email
        assert [t["state"] for t in device.get("tokens", [])] == ["active"]
        assert device["pushTokenLast8"] == phone.identity.push_token[-8:]
        assert (device["platform"], device["model"], device["apnsEnvironment"]) == (
            "ios",
            phone.identity.profile.model,
            "production",
        )
        await shows_online(admin, device_id)

        events = await admin.audit(device_id=device_id)
        about_it = [e for e in events if e["metadata"].get("deviceId") == device_id]
        assert sorted(e["action"] for e in about_it) == [
            "device.registered",
            "device.token.issued",
        ]
        assert admin.user is not None
        assert {e["actor"]["id"] for e in about_it} == {admin.user["userId"]}

        async def offline() -> bool:
            return not (await admin.device(device_id))["online"]

        took = await eventually(offline, within=target.online_window + 10)
        assert took <= target.online_window + 2, f"offline only after {took:.1f} s"

        await admin.deregister(device_id)
        refused = await refusal(phone.heartbeat())
        assert (refused.status, refused.code) == (401, "token_revoked")
        assert (await admin.device(device_id))["state"] == "deregistered"

        phone.forget_pairing()
        await phone.pair_by_qr((await admin.mint_code()).pairing_uri)
        assert phone.device_id not in (None, device_id)
        await phone.heartbeat()
        await shows_online(admin, phone.device_id)
        again = await admin.device(phone.device_id)
        assert again["pushTokenLast8"] == phone.identity.push_token[-8:]


async def test_qr_path_pairs_at_once_and_the_session_names_the_device(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        scanned = parse_pairing_uri(minted.pairing_uri)
        assert scanned.code == minted.code
        tablet = target.scanner(api, "ipad-air")
        credentials = await tablet.pair_by_qr(scanned)
        assert credentials.device_token.startswith("pxd_")
        assert credentials.device_secret.startswith("pxs_")
        session = await admin.pairing_session(minted.pairing_session_id)
        assert (session["state"], session.get("deviceId")) == ("redeemed", tablet.device_id)
        assert "pendingDevice" not in session


async def test_typed_code_waits_for_approval_then_collects_once(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        phone = target.scanner(api, "iphone-se")
        seen: dict[str, str] = {}

        async def admin_approves(pending: PendingPairing) -> None:
            session = await admin.pairing_session(minted.pairing_session_id)
            assert session["state"] == "pending_approval"
            shown = session.get("pendingDevice")
            assert shown is not None
            assert (shown["checkCode"], shown["label"], shown["model"]) == (
                pending.check_code,
                phone.identity.label,
                phone.identity.profile.model,
            )
            seen["checkCode"] = pending.check_code
            await admin.approve(minted.pairing_session_id)

        typed = f" {minted.code[:4].lower()}-{minted.code[4:]} "
        await phone.pair_by_code(typed, on_pending=admin_approves, within=30)
        assert len(seen["checkCode"]) == 6
        assert seen["checkCode"].isdigit()
        assert phone.device_id is not None
        await phone.heartbeat()
        session = await admin.pairing_session(minted.pairing_session_id)
        assert session.get("deviceId") == phone.device_id
        await shows_online(admin, phone.device_id)
        assert (await admin.device(phone.device_id))["ownerEmail"] == target.admin_email

        assert phone.last_pending is not None
        assert phone.last_pkce is not None
        twice = await refusal(api.poll(phone.last_pending.pairing_id, phone.last_pkce.verifier))
        assert (twice.status, twice.code) == (409, "code_already_used")


async def test_typed_code_rejected_by_the_admin_is_access_denied(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        stranger = target.scanner(api, "iphone-15-pro")

        async def admin_rejects(_: PendingPairing) -> None:
            await admin.reject(minted.pairing_session_id)

        refused = await refusal(
            stranger.pair_by_code(minted.code, on_pending=admin_rejects, within=30)
        )
        assert (refused.status, refused.code) == (403, "access_denied")
        session = await admin.pairing_session(minted.pairing_session_id)
        assert session["state"] == "rejected"
        assert "deviceId" not in session
        assert await admin.all_devices(q=stranger.identity.label) == []


async def test_rotation_gives_a_new_pair_and_kills_the_old_access_token(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        mac = target.scanner(api, "macbook-air")
        await mac.pair_by_qr((await admin.mint_code()).pairing_uri)
        assert mac.session is not None
        assert mac.device_id is not None
        old_token = await mac.session.token()
        old = mac.credentials
        assert old is not None

        new = await mac.rotate()
        assert (new.device_id, new.device_token == old.device_token) == (mac.device_id, False)
        await mac.heartbeat()
        refused = await refusal(api.heartbeat(old_token))
        assert (refused.status, refused.code) == (401, "token_revoked")

        device = await admin.device(mac.device_id)
        assert sorted(t["state"] for t in device.get("tokens", [])) == ["active", "rotated"]
        actions = [e["action"] for e in await admin.audit(device_id=mac.device_id)]
        assert "device.token.rotated" in actions


async def test_new_push_token_shows_in_the_console(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        phone = target.scanner(api, "iphone-15-pro-beta")
        await phone.pair_by_qr((await admin.mint_code()).pairing_uri)
        assert phone.device_id is not None
        before = phone.identity.push_token
        after = await phone.new_push_token()
        assert after != before
        device = await admin.device(phone.device_id)
        assert (device["pushTokenLast8"], device["apnsEnvironment"]) == (after[-8:], "sandbox")


async def test_device_off_the_network_goes_offline_and_back_and_a_lost_one_stays_away(
    target: Target,
) -> None:
    async with signed_in(target) as (api, admin):
        roaming, lost = target.scanner(api, "ipad-air"), target.scanner(api, "mac-mini")
        for device in (roaming, lost):
            await device.pair_by_qr((await admin.mint_code()).pairing_uri)
            await device.heartbeat()
            assert device.device_id is not None
            await shows_online(admin, device.device_id)
        assert roaming.device_id is not None
        assert lost.device_id is not None
        roaming.drop_off()
        lost.lose()

        async def both_offline() -> bool:
            ids = [d for d in (roaming.device_id, lost.device_id) if d is not None]
            views = [await admin.device(d) for d in ids]
            return not any(v["online"] for v in views)

        await eventually(both_offline, within=target.online_window + 10)
        offline = await admin.all_devices(online=False, q=roaming.identity.label)
        assert [d["deviceId"] for d in offline] == [roaming.device_id]

        roaming.come_back()
        await roaming.heartbeat()
        await shows_online(admin, roaming.device_id)
        with pytest.raises(DeviceLost):
            await lost.heartbeat()
        assert (await admin.device(lost.device_id))["online"] is False


async def test_admin_app_jwt_drives_a_pairing_without_the_console_session(
    target: Target,
) -> None:
    async with signed_in(target) as (api, console):
        connected = await console.connect_admin_app(
            device_name="QA lead's phone", device_identifier="sim-admin-app-1"
        )
        async with admin_http_client(target.admin_url) as bare:
            app_admin = AdminApi(bare)
            app_admin.use_bearer(connected.access_token)
            phone = target.scanner(api, "iphone-15-pro")
            await phone.pair_by_qr((await app_admin.mint_code()).pairing_uri)
            assert phone.device_id is not None
            device = await app_admin.device(phone.device_id)
            assert device["ownerEmail"] == target.admin_email
            await app_admin.deregister(phone.device_id)
            refused = await refusal(phone.heartbeat())
            assert (refused.status, refused.code) == (401, "token_revoked")
