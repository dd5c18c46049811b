"""What a presented credential is worth: token state by device state by timing, one table."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from statemachines import CredentialVerdict, DeviceState, TokenState, credential_verdict

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=10)

# How long ago the row ended (rotated, revoked, expired); None: it never did.
NEVER = None
JUST = WINDOW - timedelta(microseconds=1)  # inside the race window
EDGE = WINDOW  # the window is half-open: this is already outside
LONG_AGO = timedelta(hours=1)
# Where its expiry lies.
AHEAD = timedelta(days=1)
AT = timedelta(0)  # expires this very instant: counts as past
BEHIND = -timedelta(seconds=1)

T, D, V = TokenState, DeviceState, CredentialVerdict


@dataclass(frozen=True)
class Case:
    token: TokenState
    device: DeviceState
    ended_ago: timedelta | None
    expires_in: timedelta
    expected: CredentialVerdict
    race_window: timedelta = WINDOW

    @property
    def id(self) -> str:
        ended = "never" if self.ended_ago is None else f"ended_{self.ended_ago.total_seconds():g}s"
        window = "" if self.race_window == WINDOW else f"-window_{self.race_window.seconds}s"
        return (
            f"{self.token}-{self.device}-{ended}-expires_{self.expires_in.total_seconds():g}s"
            f"{window}-{self.expected}"
        )


TABLE = [
    # A live device: the credential's own state and times decide.
    Case(T.active, D.active, NEVER, AHEAD, V.valid),
    Case(T.active, D.active, NEVER, AT, V.lapsed),
    Case(T.active, D.active, NEVER, BEHIND, V.lapsed),
    Case(T.rotated, D.active, JUST, AHEAD, V.just_rotated),
    Case(T.rotated, D.active, timedelta(0), AHEAD, V.just_rotated),
    # Judged before expiry: a racing request stays a race even past the expiry.
    Case(T.rotated, D.active, JUST, BEHIND, V.just_rotated),
    Case(T.rotated, D.active, EDGE, AHEAD, V.reused),
    Case(T.rotated, D.active, LONG_AGO, AHEAD, V.reused),
    # ... and an old copy is caught even after it would have expired.
    Case(T.rotated, D.active, LONG_AGO, BEHIND, V.reused),
    # No end time recorded: nothing proves a race, so it is a copy.
    Case(T.rotated, D.active, NEVER, AHEAD, V.reused),
    Case(T.rotated, D.active, timedelta(seconds=59), AHEAD, V.just_rotated, timedelta(minutes=1)),
    Case(T.rotated, D.active, timedelta(seconds=60), AHEAD, V.reused, timedelta(minutes=1)),
    Case(T.revoked, D.active, JUST, AHEAD, V.revoked),
    Case(T.revoked, D.active, LONG_AGO, BEHIND, V.revoked),
    Case(T.expired, D.active, LONG_AGO, BEHIND, V.expired),
    # The row's word outranks the clock: expired stays expired.
    Case(T.expired, D.active, JUST, AHEAD, V.expired),
    # A deregistered device outranks everything its credentials say.
    *[
        Case(token, D.deregistered, ended_ago, expires_in, V.revoked)
        for token in TokenState
        for ended_ago, expires_in in ((NEVER, AHEAD), (JUST, AHEAD), (LONG_AGO, BEHIND))
    ],
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in TABLE])
def test_credential_verdict(case: Case) -> None:
    verdict = credential_verdict(
        token_state=case.token.value,
        device_state=case.device.value,
        expires_at=NOW + case.expires_in,
        ended_at=None if case.ended_ago is None else NOW - case.ended_ago,
        now=NOW,
        race_window=case.race_window,
    )

    assert verdict is case.expected


def test_table_covers_every_token_state_on_every_device_state() -> None:
    covered = {(case.token, case.device) for case in TABLE}

    assert covered == set(itertools.product(TokenState, DeviceState))


def test_every_verdict_is_reachable() -> None:
    assert {case.expected for case in TABLE} == set(CredentialVerdict)
