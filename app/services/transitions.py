"""Fire a lifecycle event and persist it race-free.

The machine validates the move against the row as it was read; the write is
`UPDATE … WHERE id = ? AND state = <state read>`, so of two racing requests exactly one
changes the row and the other gets `StaleState`. The audit row, if any, commits with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.errors import StaleState
from app.models import Device, DeviceToken, PairingSession
from app.services import audit
from statemachines import LifecycleMachine, TransitionNotAllowed

Row = TypeVar("Row", PairingSession, Device, DeviceToken)


async def fire(
    row: Row,
    machine: type[LifecycleMachine],
    event: str,
    *,
    changes: dict[str, Any] | None = None,
    entry: audit.Entry | None = None,
    where: dict[str, Any] | None = None,
    using_db: BaseDBAsyncClient | None = None,
    **event_kwargs: Any,
) -> Row:
    """Run `event` on `row`; on success the row carries its new state and `changes`.

    `where` adds conditions to the write (e.g. `expires_at__gt=now`, so expiry is checked by
    the same statement); `using_db` joins the caller's transaction instead of opening one.
    Raises `StaleState` when the move lost its race (the state read forbids the event, or
    the write matched no row), and the machine's `TransitionRefused` when a validator (a
    deadline, the attempt count) refuses it.
    """
    expected = row.state
    try:
        try:
            machine(model=row, state_field="state").send(event, **event_kwargs)
        except TransitionNotAllowed as exc:
            raise StaleState from exc
        values = {"state": row.state, **(changes or {})}
        async with _transaction(using_db) as connection:
            updated = (
                await type(row)
                .filter(pk=row.pk, state=expected, **(where or {}))
                .using_db(connection)
                .update(**values)
            )
            if updated != 1:
                raise StaleState
            if entry is not None:
                await audit.record(entry, using_db=connection)
    except BaseException:
        row.state = expected
        raise
    for name, value in (changes or {}).items():
        setattr(row, name, value)
    return row


@asynccontextmanager
async def _transaction(using_db: BaseDBAsyncClient | None) -> AsyncIterator[BaseDBAsyncClient]:
    if using_db is not None:
        yield using_db
        return
    async with in_transaction() as connection:
        yield connection
