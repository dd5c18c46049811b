"""Find the credential row a client presents, and judge it.

Device credential pairs (`pxd_<lookup id>_…` + `pxs_…`) and admin-app refresh tokens
(`pxr_<lookup id>_…`) are both `DeviceToken` rows found by their public lookup id and
compared by hash in constant time; one verdict (`statemachines.credential_verdict`) says
what either is worth.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from app.auth.hashing import ABSENT_HASH, matches, sha256_hex
from app.models import DeviceToken
from app.prepared import PreparedSelect
from app.settings import Settings
from statemachines import CredentialVerdict, credential_verdict

_ABSENT_LOOKUP_ID = "-" * 16
# Every token exchange, rotation and admin-app refresh reads one row by its lookup id.
_BY_LOOKUP_ID = PreparedSelect(
    DeviceToken,
    lambda lookup_id: DeviceToken.filter(lookup_id=lookup_id).select_related("device").limit(1),
)


def race_window(settings: Settings) -> timedelta:
    """A rotated-out credential seen this soon after its rotation comes from a request that
    raced the rotation, not from a copy coming back: refused as a conflict (and audited),
    without cutting the device off."""
    return timedelta(seconds=settings.rotation_race_window_seconds)


async def find_presented(
    shape: re.Pattern[str], token: str, secret: str | None = None
) -> DeviceToken | None:
    """The row (with its device) whose lookup id `token` carries, if `token` and `secret`
    match its hashes. Unknown and wrong answer in the same time: with no row, the hashes
    are compared against a stand-in."""
    match = shape.fullmatch(token)
    # A malformed token is looked up too, under an id no row has (issued ids are hex), so
    # that its refusal takes the read a well-formed one takes.
    lookup_id = match.group(1) if match else _ABSENT_LOOKUP_ID
    row = await _BY_LOOKUP_ID.first(lookup_id)
    token_ok = matches(row.token_hash if row else ABSENT_HASH, sha256_hex(token))
    secret_ok = secret is None or matches(
        row.secret_hash if row else ABSENT_HASH, sha256_hex(secret)
    )
    return row if row is not None and token_ok and secret_ok else None


def verdict(row: DeviceToken, now: datetime, *, race_window: timedelta) -> CredentialVerdict:
    """What the row is worth now; its `device` must be loaded."""
    return credential_verdict(
        token_state=row.state,
        device_state=row.device.state,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        now=now,
        race_window=race_window,
    )


def rotated_seconds_ago(row: DeviceToken, now: datetime) -> float:
    """How long ago a rotated-out row was rotated, for the audit row of its replay."""
    assert row.ended_at is not None
    return round((now - row.ended_at).total_seconds(), 3)
