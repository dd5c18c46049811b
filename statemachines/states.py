"""The lifecycle vocabulary: every state a row can be in, as the machines declare them.

Members are named as the machines' state ids, so `PairingState.minted` is both the value
stored in the `state` column and the state `PairingSessionMachine.minted`.
"""

from __future__ import annotations

from enum import StrEnum


class PairingState(StrEnum):
    minted = "minted"
    pending_approval = "pending_approval"
    redeemed = "redeemed"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"
    burned = "burned"


class DeviceState(StrEnum):
    active = "active"
    deregistered = "deregistered"


class TokenState(StrEnum):
    active = "active"
    rotated = "rotated"
    revoked = "revoked"
    expired = "expired"
