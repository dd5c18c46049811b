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
from statemachines import CredentialVerdict, credential_verdict

# A rotated-out credential seen this soon after its rotation comes from a request that raced
# the rotation, not from a copy coming back: refused as a conflict, without cutting the
# device off.
ROTATION_RACE_WINDOW = timedelta(seconds=10)


async def find_presented(
    shape: re.Pattern[str], token: str, secret: str | None = None
) -> DeviceToken | None:
    """The row (with its device) whose lookup id `token` carries, if `token` and `secret`
    match its hashes. Unknown and wrong answer in the same time: with no row, the hashes
    are compared against a stand-in."""
    match = shape.fullmatch(token)
    row = None
    if match:
        row = await DeviceToken.get_or_none(lookup_id=match.group(1)).select_related("device")
    token_ok = matches(row.token_hash if row else ABSENT_HASH, sha256_hex(token))
    secret_ok = secret is None or matches(
        row.secret_hash if row else ABSENT_HASH, sha256_hex(secret)
    )
    return row if row is not None and token_ok and secret_ok else None


def verdict(row: DeviceToken, now: datetime) -> CredentialVerdict:
    """What the row is worth now; its `device` must be loaded."""
    return credential_verdict(
        token_state=row.state,
        device_state=row.device.state,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        now=now,
        race_window=ROTATION_RACE_WINDOW,
    )
