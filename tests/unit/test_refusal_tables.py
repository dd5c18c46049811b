"""Why a pairing session cannot do what was asked: each protocol's refusal per state."""

from __future__ import annotations

import itertools

import pytest

from app.errors import DomainError
from app.services.refusals import ALL_TABLES, APP_EXCHANGE, DECIDE, POLL, REDEEM, refusal
from statemachines import PairingState

S = PairingState
EXPIRED_QR = "This QR code has expired; generate a new one."
INVALID_QR = "This QR code is not valid."

# (table, state) -> (DESIGN §7 code, message; None: the error's own default message)
EXPECTED: dict[tuple[str, PairingState], tuple[str, str | None]] = {
    ("redeem", S.minted): ("code_expired", None),
    ("redeem", S.pending_approval): ("code_already_used", None),
    ("redeem", S.redeemed): ("code_already_used", None),
    ("redeem", S.rejected): ("access_denied", None),
    ("redeem", S.expired): ("code_expired", None),
    ("redeem", S.cancelled): ("invalid_code", None),
    ("redeem", S.burned): ("session_burned", None),
    ("poll", S.minted): ("code_already_used", None),
    ("poll", S.pending_approval): ("code_already_used", None),
    ("poll", S.redeemed): ("code_already_used", None),
    ("poll", S.rejected): ("access_denied", None),
    ("poll", S.expired): ("expired_token", None),
    ("poll", S.cancelled): ("expired_token", None),
    ("poll", S.burned): ("session_burned", None),
    ("app_exchange", S.minted): ("code_expired", EXPIRED_QR),
    ("app_exchange", S.pending_approval): ("invalid_code", INVALID_QR),
    ("app_exchange", S.redeemed): (
        "code_already_used",
        "This QR code was already used; generate a new one.",
    ),
    ("app_exchange", S.rejected): ("invalid_code", INVALID_QR),
    ("app_exchange", S.expired): ("code_expired", EXPIRED_QR),
    ("app_exchange", S.cancelled): (
        "code_expired",
        "This QR code was withdrawn; generate a new one.",
    ),
    ("app_exchange", S.burned): ("invalid_code", INVALID_QR),
    ("decide", S.minted): ("conflict", "The pairing session is minted."),
    ("decide", S.pending_approval): ("conflict", "The pairing session is pending approval."),
    ("decide", S.redeemed): ("conflict", "The pairing session is redeemed."),
    ("decide", S.rejected): ("conflict", "The pairing session is rejected."),
    ("decide", S.expired): ("code_expired", None),
    ("decide", S.cancelled): ("conflict", "The pairing session is cancelled."),
    ("decide", S.burned): ("conflict", "The pairing session is burned."),
}

TABLES = {"redeem": REDEEM, "poll": POLL, "app_exchange": APP_EXCHANGE, "decide": DECIDE}


@pytest.mark.parametrize("name", ALL_TABLES)
def test_every_table_answers_every_state(name: str) -> None:
    assert set(ALL_TABLES[name]) == set(PairingState)


def test_all_tables_names_each_protocol_table() -> None:
    assert ALL_TABLES == TABLES


def test_expectations_cover_every_table_and_state() -> None:
    assert set(EXPECTED) == set(itertools.product(ALL_TABLES, PairingState))


@pytest.mark.parametrize(
    ("name", "state", "code", "message"),
    [
        pytest.param(name, state, code, message, id=f"{name}-{state}-{code}")
        for (name, state), (code, message) in EXPECTED.items()
    ],
)
def test_refusal_names_the_protocol_error(
    name: str, state: PairingState, code: str, message: str | None
) -> None:
    error = refusal(ALL_TABLES[name], state)

    assert isinstance(error, DomainError)
    assert error.code == code
    assert error.message == (message or type(error).default_message)


def _raised(error: DomainError) -> DomainError:
    try:
        raise error
    except DomainError as caught:
        return caught


@pytest.mark.parametrize("name", ALL_TABLES)
def test_refusal_is_a_fresh_error_each_time(name: str) -> None:
    table = ALL_TABLES[name]

    first = _raised(refusal(table, PairingState.expired))
    first_traceback = first.__traceback__
    second = _raised(refusal(table, PairingState.expired))

    assert first is not second
    assert first.__traceback__ is first_traceback
    assert second.__traceback__ is not first_traceback
