"""Named scenarios: each drives a real server like QA would, and checks what admins see.

A scenario raises `ScenarioFailed` at the first thing that is not as it should be, and
otherwise returns the facts it established (device ids, refusal codes) for the caller.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from simulator import misbehaviour
from simulator.admin import AdminApi, DeviceView, MintedCode
from simulator.network import LossyNetwork
from simulator.problems import ProblemError
from simulator.profiles import identity
from simulator.protocol import REGISTER, ROTATE, USER_AGENT, DeviceApi, PendingPairing
from simulator.scanner import DeviceLost, SimulatedScanner

# The server's grace for a device retrying its own rotation (ROTATION_RACE_WINDOW_SECONDS);
# after it, reuse means theft.
ROTATION_RACE_WINDOW = 10.0
PRESENCE_PROPAGATION = 2.0

Facts = dict[str, Any]


class CloneResponse(StrEnum):
    """The server's CLONE_RESPONSE."""

    FLAG = "flag"
    REVOKE = "revoke"


class ScenarioFailed(AssertionError):
    pass


@dataclass
class ScenarioContext:
    device_client: httpx.AsyncClient
    admin: AdminApi
    # The server's HEARTBEAT_ONLINE_WINDOW_SECONDS: how long silence takes to show offline.
    online_window: float = 90.0
    # The server's ROTATION_RACE_WINDOW_SECONDS.
    race_window: float = ROTATION_RACE_WINDOW
    # The server's CLONE_RESPONSE: `flag` a pair used from two installs, or `revoke` it too.
    clone_response: CloneResponse = CloneResponse.FLAG
    profile: str = "iphone-14"
    log: Callable[[str], None] = lambda _: None
    run_id: str = field(default_factory=lambda: secrets.token_hex(3).upper())
    _serials: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def api(self) -> DeviceApi:
        return DeviceApi(self.device_client)

    def scanner(
        self, profile: str | None = None, *, api: DeviceApi | None = None
    ) -> SimulatedScanner:
        serial = f"QA-{self.run_id}-{next(self._serials):02d}"
        return SimulatedScanner(identity(profile or self.profile, serial), api or self.api)

    @asynccontextmanager
    async def lossy_network(
        self, *, retries: int = 6
    ) -> AsyncIterator[tuple[LossyNetwork, DeviceApi]]:
        """A device API over a network that can lose answers; it retries with backoff."""
        network = LossyNetwork()
        async with httpx.AsyncClient(
            base_url=self.device_client.base_url,
            transport=network,
            headers={"User-Agent": USER_AGENT},
            timeout=15.0,
        ) as client:
            yield network, DeviceApi(client, retries=retries)

    def step(self, message: str) -> None:
        self.log(message)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise ScenarioFailed(message)
        self.log(f"  ✓ {message}")

    async def eventually(
        self, probe: Callable[[], Awaitable[bool]], *, within: float, what: str
    ) -> float:
        started = time.monotonic()
        while True:
            if await probe():
                took = time.monotonic() - started
                self.log(f"  ✓ {what} (after {took:.1f} s)")
                return took
            if time.monotonic() - started > within:
                raise ScenarioFailed(f"not within {within:.0f} s: {what}")
            await asyncio.sleep(0.25)

    async def online(self, device_id: str) -> bool:
        return (await self.admin.device(device_id))["online"]

    async def shows_online(self, device_id: str, what: str) -> None:
        # Replicas may batch heartbeats into their shared store (Polaris: every ~100 ms),
        # so the admin's replica can see a heartbeat a moment after the device's answered.
        await self.eventually(
            lambda: self.online(device_id), within=PRESENCE_PROPAGATION, what=what
        )

    def refused(self, error: ProblemError, status: int, code: str, what: str) -> None:
        matches = (error.status, error.code) == (status, code)
        got = "" if matches else f" (got {error.status} {error.code})"
        self.check(matches, f"{what}: {status} {code}{got}")


async def _paired_by_qr(ctx: ScenarioContext, scanner: SimulatedScanner) -> MintedCode:
    minted = await ctx.admin.mint_code()
    await scanner.pair_by_qr(minted.pairing_uri)
    return minted


async def runbook(ctx: ScenarioContext) -> Facts:
    """The register-a-scanner runbook by QR, then deregistration and a fresh pairing."""
    phone = ctx.scanner()
    ctx.step(f"{phone.identity.label} scans the console's QR code")
    await _paired_by_qr(ctx, phone)
    device_id = phone.device_id
    assert device_id is not None
    await phone.heartbeat()

    listed = [d for d in await ctx.admin.all_devices(q=phone.identity.label)]
    ctx.check([d["deviceId"] for d in listed] == [device_id], "the device is listed")
    device: DeviceView = await ctx.admin.device(device_id)
    ctx.check(device["ownerEmail"] == (ctx.admin.user or {}).get("email"), "owned by the admin")
    ctx.check(len(device.get("tokens", [])) == 1, "one credential issued")
    ctx.check(
        device["pushTokenLast8"] == phone.identity.push_token[-8:],
        "push token last 8 match the phone's",
    )
    ctx.check(
        (device["platform"], device["model"], device["apnsEnvironment"])
        == (
            phone.identity.profile.platform.value,
            phone.identity.profile.model,
            phone.identity.profile.apns_environment,
        ),
        "platform, model and APNs environment as the phone said",
    )
    await ctx.shows_online(device_id, "online after its heartbeat")
    events = await ctx.admin.audit(device_id=device_id)
    actions = sorted(e["action"] for e in events if e["metadata"].get("deviceId") == device_id)
    ctx.check(
        actions == ["device.registered", "device.token.issued"],
        "audited: device.registered and device.token.issued, with the deviceId",
    )

    await ctx.eventually(
        lambda: _not(ctx.online(device_id)),
        within=ctx.online_window + 10,
        what="offline once silent for the online window",
    )

    await ctx.admin.deregister(device_id)
    refusal = await misbehaviour.refusal(phone.heartbeat())
    ctx.refused(refusal, 401, "token_revoked", "heartbeat after deregistration")

    phone.forget_pairing()
    await _paired_by_qr(ctx, phone)
    ctx.check(phone.device_id not in (None, device_id), "the same phone paired again gets a new id")
    await phone.heartbeat()
    return {"deviceId": device_id, "newDeviceId": phone.device_id}


async def _not(probe: Awaitable[bool]) -> bool:
    return not await probe


def _offline(ctx: ScenarioContext, device_id: str) -> Callable[[], Awaitable[bool]]:
    return lambda: _not(ctx.online(device_id))


async def _typed(ctx: ScenarioContext, decide: str) -> tuple[SimulatedScanner, Facts]:
    minted = await ctx.admin.mint_code()
    phone = ctx.scanner("ipad-air")
    facts: Facts = {"pairingSessionId": minted.pairing_session_id}

    async def admin_decides(pending: PendingPairing) -> None:
        ctx.step(f"the device shows check code {pending.check_code}; the admin sees:")
        session = await ctx.admin.pairing_session(minted.pairing_session_id)
        shown = session.get("pendingDevice")
        ctx.check(session["state"] == "pending_approval", "the session awaits approval")
        ctx.check(
            shown is not None and shown["checkCode"] == pending.check_code,
            "the console shows the same check code",
        )
        assert shown is not None
        ctx.check(
            (shown["label"], shown["model"])
            == (phone.identity.label, phone.identity.profile.model),
            "and the device's label and model",
        )
        facts["checkCode"] = pending.check_code
        if decide == "approve":
            await ctx.admin.approve(minted.pairing_session_id)
        else:
            await ctx.admin.reject(minted.pairing_session_id)

    ctx.step(f"{phone.identity.label} types the code (in lower case)")
    try:
        await phone.pair_by_code(minted.code.lower(), on_pending=admin_decides, within=60)
    except ProblemError as exc:
        facts["refusal"] = exc
    return phone, facts


async def typed_approve(ctx: ScenarioContext) -> Facts:
    """Typed code, pending approval, the admin approves, the device collects once."""
    phone, facts = await _typed(ctx, "approve")
    ctx.check(phone.device_id is not None, "the device collected its credentials")
    assert phone.device_id is not None
    await phone.heartbeat()
    session = await ctx.admin.pairing_session(facts["pairingSessionId"])
    ctx.check(session.get("deviceId") == phone.device_id, "the session names the new device")
    await ctx.shows_online(phone.device_id, "online after its heartbeat")
    assert phone.last_pending is not None
    assert phone.last_pkce is not None
    again = await misbehaviour.refusal(
        phone.api.poll(phone.last_pending.pairing_id, phone.last_pkce.verifier)
    )
    ctx.refused(again, 409, "code_already_used", "collecting the credentials a second time")
    return {**facts, "deviceId": phone.device_id}


async def typed_reject(ctx: ScenarioContext) -> Facts:
    """Typed code, the admin rejects: the device hears access_denied and no device exists."""
    phone, facts = await _typed(ctx, "reject")
    refusal = facts.get("refusal")
    ctx.check(isinstance(refusal, ProblemError), "the device was refused")
    assert isinstance(refusal, ProblemError)
    ctx.refused(refusal, 403, "access_denied", "polling after rejection")
    session = await ctx.admin.pairing_session(facts["pairingSessionId"])
    ctx.check(session["state"] == "rejected" and "deviceId" not in session, "no device was created")
    listed = await ctx.admin.all_devices(q=phone.identity.label)
    ctx.check(listed == [], "nothing listed under the device's label")
    return {**facts, "refusal": refusal.code}


async def rotate(ctx: ScenarioContext) -> Facts:
    """The app rotates its credentials: the new pair works, the old access token is dead."""
    phone = ctx.scanner("macbook-air")
    await _paired_by_qr(ctx, phone)
    assert phone.session is not None
    assert phone.device_id is not None
    old_token = await phone.session.token()
    old = phone.credentials
    await phone.rotate()
    ctx.check(phone.credentials != old, "a new credential pair")
    await phone.heartbeat()
    ctx.check(True, "the new pair trades for a token that heartbeats")
    refusal = await misbehaviour.refusal(phone.api.heartbeat(old_token))
    ctx.refused(refusal, 401, "token_revoked", "an access token of the old pair")
    device = await ctx.admin.device(phone.device_id)
    states = sorted(t["state"] for t in device.get("tokens", []))
    ctx.check(states == ["active", "rotated"], "the console shows one active, one rotated")
    actions = {e["action"] for e in await ctx.admin.audit(device_id=phone.device_id)}
    ctx.check("device.token.rotated" in actions, "audited: device.token.rotated")
    return {"deviceId": phone.device_id}


async def push_token(ctx: ScenarioContext) -> Facts:
    """A reinstall gives the app a new APNs token; the console shows its last 8."""
    phone = ctx.scanner("iphone-15-pro-beta")
    await _paired_by_qr(ctx, phone)
    assert phone.device_id is not None
    before = phone.identity.push_token
    after = await phone.new_push_token()
    ctx.check(after != before, "the app got a new push token")
    device = await ctx.admin.device(phone.device_id)
    ctx.check(device["pushTokenLast8"] == after[-8:], "the console shows the new token's last 8")
    ctx.check(device["apnsEnvironment"] == "sandbox", "TestFlight build: APNs sandbox")
    return {"deviceId": phone.device_id, "pushTokenLast8": after[-8:]}


async def presence(ctx: ScenarioContext) -> Facts:
    """One device drops off the network and comes back; another is lost for good."""
    roaming, lost = ctx.scanner("iphone-15-pro"), ctx.scanner("iphone-se")
    for phone in (roaming, lost):
        await _paired_by_qr(ctx, phone)
        await phone.heartbeat()
    assert roaming.device_id is not None
    assert lost.device_id is not None
    for phone in (roaming, lost):
        assert phone.device_id is not None
        await ctx.shows_online(phone.device_id, f"{phone.identity.label} online after a heartbeat")
    roaming.drop_off()
    lost.lose()
    for phone in (roaming, lost):
        device_id = phone.device_id
        assert device_id is not None
        await ctx.eventually(
            _offline(ctx, device_id),
            within=ctx.online_window + 10,
            what=f"{phone.identity.label} offline after the window",
        )
    roaming.come_back()
    await roaming.heartbeat()
    await ctx.shows_online(roaming.device_id, "back online with its next heartbeat")
    try:
        await lost.heartbeat()
    except DeviceLost:
        ctx.check(True, "the lost device never sends again")
    else:
        raise ScenarioFailed("the lost device sent a heartbeat")
    ctx.check(not await ctx.online(lost.device_id), "the lost device stays offline")
    return {"roamingDeviceId": roaming.device_id, "lostDeviceId": lost.device_id}


async def wrong_proof(ctx: ScenarioContext) -> Facts:
    """Five forged proofs: four invalid_proof, then the session burns, even for the real one."""
    minted = await ctx.admin.mint_code()
    phone = ctx.scanner()
    codes = []
    for _ in range(5):
        codes.append((await misbehaviour.wrong_proof(phone, minted.pairing_uri)).code)
    ctx.check(codes == ["invalid_proof"] * 4 + ["session_burned"], f"refusals: {codes}")
    real = await misbehaviour.replayed_code(phone, minted.pairing_uri)
    ctx.refused(real, 410, "session_burned", "the genuine proof after the burn")
    session = await ctx.admin.pairing_session(minted.pairing_session_id)
    ctx.check(session["state"] == "burned", "the console shows the session burned")
    return {"refusals": codes}


async def replayed_code(ctx: ScenarioContext) -> Facts:
    """A second redemption of a used code, scanned or typed, is refused: one device only."""
    first, second = ctx.scanner(), ctx.scanner()
    minted = await _paired_by_qr(ctx, first)
    scanned = await misbehaviour.replayed_code(second, minted.pairing_uri)
    ctx.refused(scanned, 409, "code_already_used", "the same QR code scanned again")
    typed = await misbehaviour.refusal(second.pair_by_code(minted.code, within=5))
    ctx.refused(typed, 409, "code_already_used", "the same code typed again")
    session = await ctx.admin.pairing_session(minted.pairing_session_id)
    ctx.check(session.get("deviceId") == first.device_id, "the session paired only the first")
    return {"deviceId": first.device_id, "refusal": scanned.code}


async def expired_code(ctx: ScenarioContext) -> Facts:
    """A code scanned after its life: code_expired."""
    minted = await ctx.admin.mint_code()
    ctx.step(f"waiting for the code to expire at {minted.expires_at_iso}")
    refusal = await misbehaviour.expired_code(
        ctx.scanner(), minted.pairing_uri, minted.expires_at_iso
    )
    ctx.refused(refusal, 410, "code_expired", "scanning an expired code")
    session = await ctx.admin.pairing_session(minted.pairing_session_id)
    ctx.check(session["state"] == "expired", "the console shows the session expired")
    return {"refusal": refusal.code}


async def stolen_credentials(ctx: ScenarioContext) -> Facts:
    """A clone keeps the credentials; the phone rotates; the clone's try cuts both off."""
    phone = ctx.scanner()
    await _paired_by_qr(ctx, phone)
    assert phone.device_id is not None
    thief = phone.clone()
    await phone.rotate()
    await phone.heartbeat()
    racing = await misbehaviour.stolen_credentials(thief)
    ctx.refused(racing, 409, "conflict", "the old pair straight after rotating (a racing retry)")
    ctx.step(f"waiting {ctx.race_window:.0f} s: a retry of the rotation itself is no theft")
    await asyncio.sleep(ctx.race_window + 0.5)
    refusal = await misbehaviour.stolen_credentials(thief)
    ctx.refused(refusal, 401, "token_revoked", "the clone's rotated-out credentials")
    assert phone.session is not None
    phone.session.forget_token()
    cut_off = await misbehaviour.refusal(phone.heartbeat())
    ctx.refused(cut_off, 401, "token_revoked", "the real phone is cut off too")
    actions = {e["action"] for e in await ctx.admin.audit(device_id=phone.device_id)}
    ctx.check("device.token.reuse_detected" in actions, "audited: device.token.reuse_detected")
    return {"deviceId": phone.device_id, "refusal": refusal.code}


async def _refused_or_none(call: Awaitable[Any]) -> ProblemError | None:
    try:
        await call
    except ProblemError as exc:
        return exc
    return None


async def clone(ctx: ScenarioContext) -> Facts:
    """The pair is copied to a second install: the console flags the device (and, with
    CLONE_RESPONSE=revoke, both installs are cut off)."""
    phone = ctx.scanner()
    await _paired_by_qr(ctx, phone)
    assert phone.device_id is not None
    await phone.heartbeat()
    copy = phone.clone()
    ctx.step("the same pair, copied to another install, trades for an access token")
    outcome = await _refused_or_none(copy.heartbeat())
    assert phone.session is not None
    phone.session.forget_token()
    original = await _refused_or_none(phone.heartbeat())
    if ctx.clone_response is CloneResponse.REVOKE:
        for what, refusal in (("the copy", outcome), ("the original", original)):
            ctx.check(refusal is not None, f"{what} is refused")
            assert refusal is not None
            ctx.refused(refusal, 401, "token_revoked", f"{what} after the revocation")
    else:
        ctx.check(outcome is None, "the copy keeps working (CLONE_RESPONSE=flag)")
        ctx.check(original is None, "the original keeps working")
    device = await ctx.admin.device(phone.device_id)
    ctx.check(bool(device.get("cloneSuspectedAtIso")), "the console flags a suspected clone")
    if ctx.clone_response is CloneResponse.REVOKE:
        states = {t["state"] for t in device.get("tokens", [])}
        ctx.check(states == {"revoked"}, "every credential of the device is revoked")
    actions = [e["action"] for e in await ctx.admin.audit(device_id=phone.device_id)]
    ctx.check(actions.count("device.clone_suspected") == 1, "audited once: device.clone_suspected")
    return {"deviceId": phone.device_id, "cloneResponse": ctx.clone_response.value}


async def lost_response(ctx: ScenarioContext) -> Facts:
    """The register answer is lost on its way back; the retry gets the same pair, once."""
    async with ctx.lossy_network() as (network, api):
        phone = ctx.scanner(api=api)
        minted = await ctx.admin.mint_code()
        network.lose_next_answer(REGISTER)
        await phone.pair_by_qr(minted.pairing_uri)
        ctx.check(network.lost_answers == 1, "the first register answer was lost")
        assert phone.device_id is not None
        await phone.heartbeat()
        ctx.check(True, "the credentials of the retry trade for a token that heartbeats")
        session = await ctx.admin.pairing_session(minted.pairing_session_id)
        ctx.check(session.get("deviceId") == phone.device_id, "the code paired this device")
        actions = [e["action"] for e in await ctx.admin.audit(device_id=phone.device_id)]
        ctx.check(actions.count("device.registered") == 1, "audited: registered once")
    return {"deviceId": phone.device_id}


async def lost_rotation(ctx: ScenarioContext) -> Facts:
    """The rotate answer is lost, the network stays down past the race window; the retry
    gets the new pair and nothing is revoked."""
    async with ctx.lossy_network() as (network, api):
        phone = ctx.scanner("macbook-air", api=api)
        await _paired_by_qr(ctx, phone)
        assert phone.device_id is not None
        old = phone.credentials
        outage = ctx.race_window + 0.5
        network.lose_next_answer(ROTATE, then_down_for=outage)
        ctx.step(f"the rotate answer is lost, then the network is down for {outage:.1f} s")
        await phone.rotate()
        ctx.check(
            network.lost_answers == 1 and network.refused_requests > 0,
            "the retries outlasted the outage",
        )
        ctx.check(phone.credentials != old, "the retry got the new pair")
        await phone.heartbeat()
        ctx.check(True, "the new pair trades for a token that heartbeats")
        device = await ctx.admin.device(phone.device_id)
        states = sorted(t["state"] for t in device.get("tokens", []))
        ctx.check(states == ["active", "rotated"], "one active pair, one rotated: no revocation")
        actions = [e["action"] for e in await ctx.admin.audit(device_id=phone.device_id)]
        ctx.check(actions.count("device.token.rotated") == 1, "audited: rotated once")
        ctx.check("device.token.reuse_detected" not in actions, "no reuse detected")
    return {"deviceId": phone.device_id}


async def garbage(ctx: ScenarioContext) -> Facts:
    """Malformed, oversized, mistyped and forged requests: each its refusal, never a 500."""
    phone = ctx.scanner()
    await _paired_by_qr(ctx, phone)
    outcomes = await misbehaviour.send_garbage(phone)
    for outcome in outcomes:
        expected = outcome.garbage
        ctx.check(
            outcome.as_expected,
            f"{expected.name}: {expected.expected_status} {expected.expected_code}"
            + ("" if outcome.as_expected else f" (got {outcome.status} {outcome.code})"),
        )
    await phone.heartbeat()
    ctx.check(True, "the device still heartbeats afterwards")
    return {"outcomes": {o.garbage.name: (o.status, o.code) for o in outcomes}}


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[ScenarioContext], Awaitable[Facts]]

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("runbook", runbook),
        Scenario("typed-approve", typed_approve),
        Scenario("typed-reject", typed_reject),
        Scenario("rotate", rotate),
        Scenario("push-token", push_token),
        Scenario("presence", presence),
        Scenario("wrong-proof", wrong_proof),
        Scenario("replayed-code", replayed_code),
        Scenario("expired-code", expired_code),
        Scenario("stolen-credentials", stolen_credentials),
        Scenario("clone", clone),
        Scenario("lost-response", lost_response),
        Scenario("lost-rotation", lost_rotation),
        Scenario("garbage", garbage),
    )
}
