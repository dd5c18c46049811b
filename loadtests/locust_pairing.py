"""Pairing a new device through the public API, both ways DESIGN §4 allows: the QR code
scanned (code and console proof: credentials at once), or the code typed (pending until the
admin who minted it approves; the device polls and collects the credentials)."""

from __future__ import annotations

import random
import secrets
import time

from locust.contrib.fasthttp import FastHttpSession

from loadtests.locust_admin import AdminSession
from loadtests.locust_device_calls import PlayedDevice
from loadtests.locust_wire import has_field, idempotent, send
from simulator.profiles import FLEET_MIX, Identity, identity
from simulator.protocol import (
    POLL,
    REGISTER,
    SLOW_DOWN_STEP,
    Credentials,
    PendingPairing,
    PkcePair,
    display_code,
    new_installation_id,
    poll_body,
    register_body,
)

# How many polls a typed pairing makes after its approval before it gives up on it.
POLLS_AFTER_APPROVAL = 3


def new_identity() -> Identity:
    """A phone, iPad or Mac drawn from the simulator's fleet mix, with a serial of its own."""
    names = [name for name, _ in FLEET_MIX]
    weights = [weight for _, weight in FLEET_MIX]
    return identity(random.choices(names, weights)[0], f"LOCUST-{secrets.token_hex(5).upper()}")


def pair_scanned(client: FastHttpSession, admin: AdminSession) -> PlayedDevice | None:
    minted = admin.mint()
    if minted is None:
        return None
    scanned = minted.scanned
    pkce = PkcePair.generate()
    phone = new_identity()
    body = register_body(code=scanned.code, pkce=pkce, fields=phone.fields(), proof=scanned.proof)
    answer = send(
        client,
        "POST",
        REGISTER,
        body=body,
        headers=idempotent(),
        ok=(201,),
        verify=has_field("deviceSecret"),
    )
    if not answer.ok:
        return None
    return PlayedDevice(
        phone, Credentials.from_wire(answer.body, installation_id=new_installation_id())
    )


def pair_typed(client: FastHttpSession, admin: AdminSession) -> PlayedDevice | None:
    minted = admin.mint()
    if minted is None:
        return None
    pkce = PkcePair.generate()
    phone = new_identity()
    # Typed as a person reads it off the console; the server ignores the hyphen.
    body = register_body(code=display_code(minted.code), pkce=pkce, fields=phone.fields())
    answer = send(
        client,
        "POST",
        REGISTER,
        body=body,
        headers=idempotent(),
        ok=(202,),
        verify=has_field("pairingId"),
    )
    if not answer.ok:
        return None
    pending = PendingPairing.from_wire(answer.body)
    # Before the admin decides, a poll is told to wait (a 201 now would be a failure).
    waited = _poll(client, pending, pkce, pending.interval, ok=())
    if not isinstance(waited, float):
        return None
    if not admin.confirm_pending(minted.pairing_session_id, pending.check_code):
        return None
    if not admin.approve(minted.pairing_session_id):
        return None
    for _ in range(POLLS_AFTER_APPROVAL):
        outcome = _poll(client, pending, pkce, waited, ok=(201,))
        if isinstance(outcome, Credentials):
            return PlayedDevice(phone, outcome)
        if outcome is None:
            return None
        waited = outcome
    return None


def _poll(
    client: FastHttpSession,
    pending: PendingPairing,
    pkce: PkcePair,
    interval: float,
    *,
    ok: tuple[int, ...],
) -> Credentials | float | None:
    """One poll, `interval` after the last (RFC 8628): the credentials once they come, else
    the interval before the next poll, or None after a failure."""
    # A little over the interval: the server measures between its own receipts. Locust has
    # patched time.sleep into gevent's, so the other users run meanwhile.
    time.sleep(interval + 0.05)
    answer = send(
        client,
        "POST",
        POLL,
        body=poll_body(pending.pairing_id, pkce.verifier),
        headers=idempotent(),
        ok=ok,
        expected=("authorization_pending", "slow_down"),
        verify=has_field("deviceSecret"),
    )
    if not answer.ok:
        return None
    if answer.status == 201:
        return Credentials.from_wire(answer.body, installation_id=new_installation_id())
    return interval + SLOW_DOWN_STEP if answer.code == "slow_down" else interval
