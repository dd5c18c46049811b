"""The three lifecycle machines, from one table per machine: every (state, event) pair, and
what firing the event does there: the state it moves to, or the named refusal."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pytest
from tortoise.models import Model

from app.models import Device, DeviceToken, PairingSession
from statemachines import (
    MAX_FAILED_PROOFS,
    DeadlineNotReached,
    DeadlinePassed,
    DeviceMachine,
    DeviceState,
    DeviceTokenMachine,
    LifecycleMachine,
    PairingSessionMachine,
    PairingState,
    TokenState,
    TransitionNotAllowed,
)
from statemachines.pairing_session import AttemptsRemain

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
AHEAD = NOW + timedelta(seconds=30)  # the deadline is still to come
DUE = NOW  # the deadline is this very instant: it counts as passed
BEHIND = NOW - timedelta(seconds=1)


@dataclass
class Row:
    """What a machine binds to: the fields the machines and their validators read."""

    state: str
    expires_at: datetime
    failed_attempts: int = 0


Outcome = StrEnum | type[Exception]


@dataclass(frozen=True)
class Case:
    state: StrEnum
    event: str
    expected: Outcome
    expires_at: datetime = AHEAD
    failed_attempts: int = 0

    def row(self) -> Row:
        # As the database hands it over: a plain string, not the enum member.
        return Row(self.state.value, self.expires_at, self.failed_attempts)

    @property
    def refused(self) -> bool:
        return isinstance(self.expected, type)

    @property
    def id(self) -> str:
        deadline = {AHEAD: "ahead", DUE: "due", BEHIND: "behind"}[self.expires_at]
        outcome = self.expected.__name__ if isinstance(self.expected, type) else self.expected
        return (
            f"{self.state.value}-{self.event}-deadline_{deadline}"
            f"-failed_{self.failed_attempts}-{outcome}"
        )


def refused_everywhere(states: Sequence[StrEnum], events: Sequence[str]) -> list[Case]:
    """Final states: no event leaves them, whatever the deadline or the attempt count."""
    return [
        Case(state, event, TransitionNotAllowed, expires_at=expires_at, failed_attempts=failed)
        for state, event in itertools.product(states, events)
        for expires_at, failed in ((AHEAD, 0), (BEHIND, MAX_FAILED_PROOFS))
    ]


P = PairingState
EXHAUSTED = MAX_FAILED_PROOFS

PAIRING_SESSION = [
    Case(P.minted, "redeem", P.redeemed),
    Case(P.minted, "redeem", DeadlinePassed, expires_at=DUE),
    Case(P.minted, "redeem", DeadlinePassed, expires_at=BEHIND),
    Case(P.minted, "claim", P.pending_approval),
    Case(P.minted, "claim", DeadlinePassed, expires_at=DUE),
    Case(P.minted, "approve", TransitionNotAllowed),
    Case(P.minted, "reject", TransitionNotAllowed),
    Case(P.minted, "expire", DeadlineNotReached),
    Case(P.minted, "expire", P.expired, expires_at=DUE),
    Case(P.minted, "expire", P.expired, expires_at=BEHIND),
    Case(P.minted, "cancel", P.cancelled),
    Case(P.minted, "cancel", DeadlinePassed, expires_at=DUE),
    Case(P.minted, "cancel", DeadlinePassed, expires_at=BEHIND),
    Case(P.minted, "burn", AttemptsRemain),
    Case(P.minted, "burn", AttemptsRemain, failed_attempts=EXHAUSTED - 1),
    Case(P.minted, "burn", P.burned, failed_attempts=EXHAUSTED),
    Case(P.minted, "burn", P.burned, failed_attempts=EXHAUSTED + 1),
    Case(P.minted, "burn", P.burned, expires_at=BEHIND, failed_attempts=EXHAUSTED),
    Case(P.pending_approval, "redeem", TransitionNotAllowed),
    Case(P.pending_approval, "claim", TransitionNotAllowed),
    Case(P.pending_approval, "approve", P.redeemed),
    Case(P.pending_approval, "approve", DeadlinePassed, expires_at=DUE),
    Case(P.pending_approval, "reject", P.rejected),
    Case(P.pending_approval, "reject", DeadlinePassed, expires_at=DUE),
    Case(P.pending_approval, "reject", DeadlinePassed, expires_at=BEHIND),
    Case(P.pending_approval, "expire", DeadlineNotReached),
    Case(P.pending_approval, "expire", P.expired, expires_at=DUE),
    Case(P.pending_approval, "cancel", TransitionNotAllowed),
    Case(P.pending_approval, "burn", AttemptsRemain, failed_attempts=EXHAUSTED - 1),
    Case(P.pending_approval, "burn", P.burned, failed_attempts=EXHAUSTED),
    *refused_everywhere(
        [P.redeemed, P.rejected, P.expired, P.cancelled, P.burned],
        ["redeem", "claim", "approve", "reject", "expire", "cancel", "burn"],
    ),
]

DEVICE = [
    Case(DeviceState.active, "deregister", DeviceState.deregistered),
    Case(DeviceState.active, "deregister", DeviceState.deregistered, expires_at=BEHIND),
    *refused_everywhere([DeviceState.deregistered], ["deregister"]),
]

T = TokenState
DEVICE_TOKEN = [
    Case(T.active, "rotate", T.rotated),
    Case(T.active, "rotate", DeadlinePassed, expires_at=DUE),
    Case(T.active, "rotate", DeadlinePassed, expires_at=BEHIND),
    Case(T.active, "revoke", T.revoked),
    Case(T.active, "revoke", T.revoked, expires_at=BEHIND),
    Case(T.active, "expire", DeadlineNotReached),
    Case(T.active, "expire", T.expired, expires_at=DUE),
    Case(T.active, "expire", T.expired, expires_at=BEHIND),
    *refused_everywhere([T.rotated, T.revoked, T.expired], ["rotate", "revoke", "expire"]),
]

TABLES: list[tuple[type[LifecycleMachine], list[Case]]] = [
    (PairingSessionMachine, PAIRING_SESSION),
    (DeviceMachine, DEVICE),
    (DeviceTokenMachine, DEVICE_TOKEN),
]


def cases(table: list[Case]) -> list[object]:
    return [pytest.param(case, id=case.id) for case in table]


def refused_cases() -> list[object]:
    return [
        pytest.param(machine, case, id=f"{machine.__name__}-{case.id}")
        for machine, table in TABLES
        for case in table
        if case.refused
    ]


def fire(machine: type[LifecycleMachine], case: Case) -> Row:
    """Bind the machine to a fresh row as the services do, send the event, return the row."""
    row = case.row()
    bound = machine(model=row, state_field="state")
    if case.refused:
        with pytest.raises(Exception) as refusal:  # noqa: PT011 - the exact type is checked
            bound.send(case.event, now=NOW)
        assert refusal.type is case.expected, refusal.value
    else:
        bound.send(case.event, now=NOW)
    return row


@pytest.mark.parametrize("case", cases(PAIRING_SESSION))
def test_pairing_session_event_moves_or_names_its_refusal(case: Case) -> None:
    row = fire(PairingSessionMachine, case)

    assert row.state == (case.state if case.refused else case.expected)


@pytest.mark.parametrize("case", cases(DEVICE))
def test_device_event_moves_or_names_its_refusal(case: Case) -> None:
    row = fire(DeviceMachine, case)

    assert row.state == (case.state if case.refused else case.expected)


@pytest.mark.parametrize("case", cases(DEVICE_TOKEN))
def test_device_token_event_moves_or_names_its_refusal(case: Case) -> None:
    row = fire(DeviceTokenMachine, case)

    assert row.state == (case.state if case.refused else case.expected)


@pytest.mark.parametrize(
    ("machine", "table"), TABLES, ids=[machine.__name__ for machine, _ in TABLES]
)
def test_table_covers_every_state_and_event_of_its_machine(
    machine: type[LifecycleMachine], table: list[Case]
) -> None:
    state_ids = [state.id for state in machine.states]
    # On the class, `events` is the metaclass's list; the stubs only know the instance's.
    event_ids = [event.id for event in machine.events]  # type: ignore[attr-defined]
    declared = set(itertools.product(state_ids, event_ids))

    covered = {(case.state.name, case.event) for case in table}

    assert covered == declared, {
        "missing": sorted(declared - covered),
        "unknown": sorted(covered - declared),
    }


@pytest.mark.parametrize(("machine", "case"), refused_cases())
def test_refused_event_leaves_the_model_as_it_was(
    machine: type[LifecycleMachine], case: Case
) -> None:
    before = case.row()

    after = fire(machine, case)

    assert after == before
    assert type(after.state) is str  # not even swapped for its enum member


@pytest.mark.parametrize(
    ("machine", "state", "refused_event", "event", "target"),
    [
        (PairingSessionMachine, P.minted, "approve", "redeem", P.redeemed),
        (PairingSessionMachine, P.pending_approval, "expire", "reject", P.rejected),
        (DeviceTokenMachine, T.active, "expire", "rotate", T.rotated),
    ],
    ids=["pairing-not-allowed-then-redeem", "pairing-not-due-then-reject", "token-not-due"],
)
def test_a_refusal_leaves_the_bound_machine_ready_for_the_next_event(
    machine: type[LifecycleMachine],
    state: StrEnum,
    refused_event: str,
    event: str,
    target: StrEnum,
) -> None:
    row = Row(state.value, AHEAD)
    bound = machine(model=row, state_field="state")

    with pytest.raises((TransitionNotAllowed, DeadlineNotReached)):
        bound.send(refused_event, now=NOW)
    bound.send(event, now=NOW)

    assert row.state == target


@pytest.mark.parametrize(
    ("machine", "open_states"),
    [
        (PairingSessionMachine, {PairingState.minted, PairingState.pending_approval}),
        (DeviceMachine, {DeviceState.active}),
        (DeviceTokenMachine, {TokenState.active}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_open_states_are_the_states_a_row_can_still_leave(
    machine: type[LifecycleMachine], open_states: set[StrEnum]
) -> None:
    assert machine.open_states() == open_states
    assert machine.open_states() == {s.value for s in machine.states if not s.final}


@pytest.mark.parametrize(
    ("machine", "states", "model"),
    [
        (PairingSessionMachine, PairingState, PairingSession),
        (DeviceMachine, DeviceState, Device),
        (DeviceTokenMachine, TokenState, DeviceToken),
    ],
    ids=["pairing_session", "device", "device_token"],
)
def test_state_enum_column_and_machine_agree(
    machine: type[LifecycleMachine], states: type[StrEnum], model: type[Model]
) -> None:
    column = model._meta.fields_map["state"]

    assert [(s.id, s.value) for s in machine.states] == [(m.name, m.value) for m in states]
    assert column.enum_type is states  # type: ignore[attr-defined]
    initial = next(s for s in machine.states if s.initial)
    assert column.default == initial.value
