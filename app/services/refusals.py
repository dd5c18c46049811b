"""Why a pairing session cannot do what was asked, in each protocol's own words: one table
per protocol from the session's (effective) state to a named domain error.

Every table covers every state, so a new state cannot slip through unanswered.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import (
    AccessDenied,
    CodeAlreadyUsed,
    CodeExpired,
    Conflict,
    DomainError,
    ExpiredToken,
    InvalidCode,
    SessionBurned,
)
from statemachines import PairingState

Refusal = tuple[type[DomainError], str | None]
RefusalTable = Mapping[PairingState, Refusal]

# A scanner presenting a code (POST /api/devices/register). `minted` is answered only when
# the code's deadline passed between the read and the conditional write.
REDEEM: RefusalTable = {
    PairingState.minted: (CodeExpired, None),
    PairingState.pending_approval: (CodeAlreadyUsed, None),
    PairingState.redeemed: (CodeAlreadyUsed, None),
    PairingState.rejected: (AccessDenied, None),
    PairingState.expired: (CodeExpired, None),
    PairingState.cancelled: (InvalidCode, None),
    PairingState.burned: (SessionBurned, None),
}

# A scanner polling for its approval (POST /api/devices/register/poll), RFC 8628's words.
# `pending_approval` and an uncollected `redeemed` are not refusals; they never get here.
POLL: RefusalTable = {
    PairingState.minted: (CodeAlreadyUsed, None),
    PairingState.pending_approval: (CodeAlreadyUsed, None),
    PairingState.redeemed: (CodeAlreadyUsed, None),
    PairingState.rejected: (AccessDenied, None),
    PairingState.expired: (ExpiredToken, None),
    PairingState.cancelled: (ExpiredToken, None),
    PairingState.burned: (SessionBurned, None),
}

# The admin app exchanging its QR token (POST /api/v1/admin/app/exchange-token).
APP_EXCHANGE: RefusalTable = {
    PairingState.minted: (CodeExpired, "This QR code has expired; generate a new one."),
    PairingState.pending_approval: (InvalidCode, "This QR code is not valid."),
    PairingState.redeemed: (CodeAlreadyUsed, "This QR code was already used; generate a new one."),
    PairingState.rejected: (InvalidCode, "This QR code is not valid."),
    PairingState.expired: (CodeExpired, "This QR code has expired; generate a new one."),
    PairingState.cancelled: (CodeExpired, "This QR code was withdrawn; generate a new one."),
    PairingState.burned: (InvalidCode, "This QR code is not valid."),
}

# An admin deciding on a typed-code pairing (approve, reject, cancel).
DECIDE: RefusalTable = {
    PairingState.minted: (Conflict, "The pairing session is minted."),
    PairingState.pending_approval: (Conflict, "The pairing session is pending approval."),
    PairingState.redeemed: (Conflict, "The pairing session is redeemed."),
    PairingState.rejected: (Conflict, "The pairing session is rejected."),
    PairingState.expired: (CodeExpired, None),
    PairingState.cancelled: (Conflict, "The pairing session is cancelled."),
    PairingState.burned: (Conflict, "The pairing session is burned."),
}

ALL_TABLES = {"redeem": REDEEM, "poll": POLL, "app_exchange": APP_EXCHANGE, "decide": DECIDE}


def refusal(table: RefusalTable, state: PairingState) -> DomainError:
    error, message = table[state]
    return error(message)
