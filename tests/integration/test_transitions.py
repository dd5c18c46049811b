"""The conditional write: of many racing requests firing one event, exactly one wins."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app import clock
from app.errors import StaleState
from app.models import AuditAction, AuditEvent, Kind, PairingSession, Role
from app.services import audit
from app.services.transitions import fire
from statemachines import PairingSessionMachine, TransitionNotAllowed
from tests.factories import make_user

pytestmark = pytest.mark.usefixtures("orm")


async def _minted_session(ttl: timedelta = timedelta(seconds=60)) -> PairingSession:
    admin = await make_user(Role.ADMIN)
    now = clock.now()
    return await PairingSession.create(
        kind=Kind.SCANNER,
        code_hash=f"hash-{now.timestamp()}",
        created_by=admin,
        created_at=now,
        expires_at=now + ttl,
    )


def _entry(session: PairingSession, n: int) -> audit.Entry:
    return audit.Entry(
        action=AuditAction.PAIRING_APPROVED,
        actor=audit.Actor.system(),
        target_type="pairing_session",
        target_id=str(session.id),
        metadata={"attempt": n},
    )


async def test_fire_moves_state_and_writes_audit_together() -> None:
    session = await _minted_session()
    await fire(
        session,
        PairingSessionMachine,
        "redeem",
        now=clock.now(),
        changes={"resolved_at": clock.now()},
        entry=_entry(session, 0),
    )
    stored = await PairingSession.get(id=session.id)
    assert stored.state == "redeemed"
    assert stored.resolved_at is not None
    assert await AuditEvent.filter(target_id=str(session.id)).count() == 1


async def test_forbidden_event_changes_nothing() -> None:
    session = await _minted_session()
    with pytest.raises(StaleState) as refused:
        await fire(
            session, PairingSessionMachine, "approve", now=clock.now(), entry=_entry(session, 0)
        )
    assert isinstance(refused.value.__cause__, TransitionNotAllowed)
    assert session.state == "minted"
    assert (await PairingSession.get(id=session.id)).state == "minted"
    assert await AuditEvent.filter(action=AuditAction.PAIRING_APPROVED).count() == 0


async def test_stale_row_loses_and_rolls_back_its_audit() -> None:
    session = await _minted_session()
    stale_copy = await PairingSession.get(id=session.id)
    await fire(session, PairingSessionMachine, "cancel", now=clock.now())
    with pytest.raises(StaleState):
        await fire(
            stale_copy,
            PairingSessionMachine,
            "redeem",
            now=clock.now(),
            entry=_entry(stale_copy, 1),
        )
    assert stale_copy.state == "minted"  # the in-memory row is put back as it was read
    assert (await PairingSession.get(id=session.id)).state == "cancelled"
    assert await AuditEvent.filter(action=AuditAction.PAIRING_APPROVED).count() == 0


async def test_fifty_concurrent_redemptions_have_one_winner() -> None:
    session = await _minted_session()
    copies = [await PairingSession.get(id=session.id) for _ in range(50)]

    async def attempt(n: int, row: PairingSession) -> bool:
        try:
            await fire(row, PairingSessionMachine, "redeem", now=clock.now(), entry=_entry(row, n))
        except StaleState:
            return False
        return True

    results = await asyncio.gather(*(attempt(n, row) for n, row in enumerate(copies)))

    assert results.count(True) == 1
    assert (await PairingSession.get(id=session.id)).state == "redeemed"
    assert await AuditEvent.filter(target_id=str(session.id)).count() == 1
