"""Selects whose SQL is built once, for the hottest reads.

Tortoise builds a query's SQL afresh on every await: for the credential lookup of a token
exchange that was about half of the request's CPU (copying pypika terms and formatting their
names), for a statement that never changes but for one value. A `PreparedSelect` asks
Tortoise for the SQL and the row layout once per dialect, then runs that text with the value
and lets Tortoise's own executor turn the rows into models, related ones included, exactly
as the queryset would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import QuerySet

M = TypeVar("M", bound=Model)

# Stands for the value while the SQL is built; found again among the built parameters.
_PLACEHOLDER = "\x00prepared-select-value\x00"


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    values: tuple[Any, ...]
    slot: int
    select_related_idx: list[Any]


class PreparedSelect(Generic[M]):
    """`query(value)` built once per dialect; `first(value)` runs it with another value."""

    def __init__(self, model: type[M], query: Callable[[Any], QuerySet[M]]) -> None:
        self._model = model
        self._query = query
        self._plans: dict[str, _Plan] = {}

    def _plan(self, db: BaseDBAsyncClient) -> _Plan:
        dialect = db.capabilities.dialect
        plan = self._plans.get(dialect)
        if plan is None:
            queryset = self._query(_PLACEHOLDER).using_db(db)
            queryset._make_query()
            sql, values = queryset.query.get_parameterized_sql()
            if values.count(_PLACEHOLDER) != 1:
                raise ValueError("a prepared select takes its value exactly once")
            plan = _Plan(
                sql=sql,
                values=tuple(values),
                slot=values.index(_PLACEHOLDER),
                select_related_idx=list(queryset._select_related_idx),
            )
            self._plans[dialect] = plan
        return plan

    async def first(self, value: Any) -> M | None:
        # `_meta.db` is the connection of the current transaction, if any: as a queryset's.
        db = self._model._meta.db
        plan = self._plan(db)
        values = list(plan.values)
        values[plan.slot] = value
        executor = db.executor_class(
            model=self._model, db=db, select_related_idx=plan.select_related_idx
        )
        rows: list[M] = await executor.execute_select(plan.sql, values)
        return rows[0] if rows else None
