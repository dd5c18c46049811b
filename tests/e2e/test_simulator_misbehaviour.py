"""Simulated devices misbehaving on purpose: each misdeed meets its own refusal.

Runs against the embedded server and, in the postgres pass, against the replica stack.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator import misbehaviour
from simulator.misbehaviour import refusal
from tests.e2e.simulator_fixtures import Target, signed_in

pytestmark = [pytest.mark.slow]


async def test_forged_proofs_are_refused_and_the_fifth_burns_the_code(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        intruder = target.scanner(api)
        codes = [(await misbehaviour.wrong_proof(intruder, minted.pairing_uri)) for _ in range(5)]
        assert [(e.status, e.code) for e in codes] == [(400, "invalid_proof")] * 4 + [
            (410, "session_burned")
        ]
        genuine = await misbehaviour.replayed_code(target.scanner(api), minted.pairing_uri)
        assert (genuine.status, genuine.code) == (410, "session_burned")
        session = await admin.pairing_session(minted.pairing_session_id)
        assert session["state"] == "burned"
        assert "deviceId" not in session


async def test_replayed_code_is_refused_scanned_or_typed(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        first, second = target.scanner(api), target.scanner(api)
        await first.pair_by_qr(minted.pairing_uri)
        scanned = await misbehaviour.replayed_code(second, minted.pairing_uri)
        assert (scanned.status, scanned.code) == (409, "code_already_used")
        typed = await refusal(second.pair_by_code(minted.code, within=5))
        assert (typed.status, typed.code) == (409, "code_already_used")
        assert second.device_id is None
        session = await admin.pairing_session(minted.pairing_session_id)
        assert session.get("deviceId") == first.device_id
        assert await admin.all_devices(q=second.identity.label) == []


async def test_expired_code_is_refused(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        minted = await admin.mint_code()
        late = await misbehaviour.expired_code(
            target.scanner(api), minted.pairing_uri, minted.expires_at_iso
        )
        assert (late.status, late.code) == (410, "code_expired")
        session = await admin.pairing_session(minted.pairing_session_id)
        assert session["state"] == "expired"


async def test_clone_with_rotated_out_credentials_cuts_the_device_off(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        phone = target.scanner(api)
        await phone.pair_by_qr((await admin.mint_code()).pairing_uri)
        assert phone.device_id is not None
        thief = phone.clone()
        await phone.rotate()
        await phone.heartbeat()

        # Straight after a rotation the old pair may be the device's own retry.
        racing = await misbehaviour.stolen_credentials(thief)
        assert (racing.status, racing.code) == (409, "conflict")
        await phone.heartbeat()

        await asyncio.sleep(target.race_window + 0.5)
        stolen = await misbehaviour.stolen_credentials(thief)
        assert (stolen.status, stolen.code) == (401, "token_revoked")
        assert phone.session is not None
        phone.session.forget_token()
        cut_off = await refusal(phone.heartbeat())
        assert (cut_off.status, cut_off.code) == (401, "token_revoked")

        device = await admin.device(phone.device_id)
        assert {t["state"] for t in device.get("tokens", [])} == {"rotated", "revoked"}
        actions = [e["action"] for e in await admin.audit(device_id=phone.device_id)]
        assert "device.token.reuse_detected" in actions


async def test_garbage_gets_its_own_refusal_never_a_server_error(target: Target) -> None:
    async with signed_in(target) as (api, admin):
        phone = target.scanner(api)
        await phone.pair_by_qr((await admin.mint_code()).pairing_uri)
        outcomes = await misbehaviour.send_garbage(phone)
        assert len(outcomes) == len(misbehaviour.garbage_requests(phone)) + 2
        wrong = {
            o.garbage.name: (o.status, o.code, "expected", o.garbage.expected_code)
            for o in outcomes
            if not o.as_expected
        }
        assert wrong == {}
        await phone.heartbeat()
