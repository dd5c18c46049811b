"""What a presented credential is worth now: one rule for device credential pairs,
admin-app refresh tokens and the rows behind every access token. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from statemachines.states import DeviceState, TokenState


class CredentialVerdict(StrEnum):
    valid = "valid"
    # Rotated a moment ago: a request that raced the rotation, not a copy coming back.
    just_rotated = "just_rotated"
    # Rotated out long enough ago that only a kept copy can explain it.
    reused = "reused"
    revoked = "revoked"
    expired = "expired"
    # Past its expiry but still `active` in the row: the caller fires `expire`.
    lapsed = "lapsed"


def credential_verdict(
    *,
    token_state: str,
    device_state: str,
    expires_at: datetime,
    ended_at: datetime | None,
    now: datetime,
    race_window: timedelta,
) -> CredentialVerdict:
    """A dead device outranks everything its credentials say; a rotated-out credential is
    judged before its expiry, so an old copy is caught even after it would have expired."""
    if device_state != DeviceState.active or token_state == TokenState.revoked:
        return CredentialVerdict.revoked
    if token_state == TokenState.rotated:
        recent = ended_at is not None and now - ended_at < race_window
        return CredentialVerdict.just_rotated if recent else CredentialVerdict.reused
    if token_state == TokenState.expired:
        return CredentialVerdict.expired
    if now >= expires_at:
        return CredentialVerdict.lapsed
    return CredentialVerdict.valid
