"""Refused redemptions and polls of an existing pairing session, kept for the admin who
minted its code: when, why (the problem code answered), and from which address and client.
Never what was sent: a wrong proof is still a guess at a secret.

A refused redemption runs the same statements whether or not its code matched a session,
in the transaction of its audit row, so recording the attempt does not tell a known code
from an unknown one by time. (A poll names its session by a random UUID: an unknown one is
refused with no write, since its time has no code to give away.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Subquery

from app.models import PairingAttempt

# The newest attempts kept per session; older ones go in the write that adds one.
KEPT_PER_SESSION = 20
USER_AGENT_CHARS = 256
_IP_CHARS = 64
# Matches no session: an unknown code runs the same statements and inserts nothing.
_NO_SESSION = UUID(int=0)


class Outcome(StrEnum):
    REFUSED = "refused"
    BURNED = "burned"  # the wrong proof that closed the session


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from, as the device's side of the wire told it."""

    ip: str | None
    user_agent: str | None


def _clip_user_agent(user_agent: str | None) -> str | None:
    return user_agent[:USER_AGENT_CHARS] if user_agent else None


# INSERT … SELECT: the row exists only if the session does, decided by the same statement.
_INSERT = {
    "postgres": "INSERT INTO pairing_attempts (id, session_id, at, outcome, reason, ip, user_agent)"
    " SELECT $1, id, $2, $3, $4, $5, $6 FROM pairing_sessions WHERE id = $7",
    "sqlite": "INSERT INTO pairing_attempts (id, session_id, at, outcome, reason, ip, user_agent)"
    " SELECT ?, id, ?, ?, ?, ?, ? FROM pairing_sessions WHERE id = ?",
}


async def record(
    *,
    session_id: UUID | None,
    outcome: Outcome,
    reason: str,
    client: Client,
    at: datetime,
    using_db: BaseDBAsyncClient,
) -> None:
    """Add an attempt to the session (none when `session_id` is None) and drop the oldest
    beyond `KEPT_PER_SESSION`, in the caller's transaction."""
    target = session_id or _NO_SESSION
    await using_db.execute_query(
        _INSERT[using_db.capabilities.dialect],
        [
            str(uuid4()),
            at,
            outcome.value,
            reason,
            client.ip[:_IP_CHARS] if client.ip else None,
            _clip_user_agent(client.user_agent),
            str(target),
        ],
    )
    kept = (
        PairingAttempt.filter(session_id=target)
        .order_by("-at", "-id")
        .limit(KEPT_PER_SESSION)
        .values("id")
    )
    await (
        PairingAttempt.filter(session_id=target)
        .exclude(id__in=Subquery(kept))
        .using_db(using_db)
        .delete()
    )


async def recent(session_id: UUID) -> list[PairingAttempt]:
    """The session's kept attempts, newest first."""
    return await PairingAttempt.filter(session_id=session_id).order_by("-at", "-id")
