"""How the Locust users put the protocol on the wire: JSON bodies built by `simulator.protocol`,
sent over Locust's FastHttpSession, each request named by its path template so the stats of
a thousand devices add up to one row per endpoint, and failures named by problem code."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from locust.contrib.fasthttp import FastHttpSession

from simulator.protocol import IDEMPOTENCY_KEY, JSON_HEADERS, USER_AGENT

HEADERS = {**JSON_HEADERS, "User-Agent": USER_AGENT}

# Given the parsed body of an answer with an accepted status: why it is wrong, or None.
Verify = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(repr=False)
    # False when Locust counted the request as a failure.
    ok: bool

    @property
    def code(self) -> str | None:
        code = self.body.get("code")
        return code if isinstance(code, str) else None


def idempotent() -> dict[str, str]:
    """A fresh `Idempotency-Key`, as the apps send on register, poll and rotate."""
    return {IDEMPOTENCY_KEY: str(uuid.uuid4())}


def send(
    session: FastHttpSession,
    method: str,
    path: str,
    *,
    name: str | None = None,
    body: Mapping[str, Any] | None = None,
    bearer: str | None = None,
    headers: Mapping[str, str] | None = None,
    ok: Collection[int] = (200,),
    expected: Collection[str] = (),
    verify: Verify | None = None,
) -> Answer:
    """One request, counted by Locust under `name` (the path template; `path` by default).

    A status in `ok` succeeds; so does a refusal whose problem code is in `expected` (an
    answer the flow waits through, such as `authorization_pending`). Anything else is a
    failure named by status and problem code: never a body, which may carry secrets.
    """
    sent = {**HEADERS, **(headers or {})}
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    # FastHttpSession takes a str body (geventhttpclient encodes it as UTF-8).
    data = orjson.dumps(body).decode() if body is not None else None
    with session.request(
        method, path, name=name or path, data=data, headers=sent, catch_response=True
    ) as response:
        status = int(response.status_code or 0)
        parsed = _parsed(response.content)
        answer = Answer(status, parsed, ok=True)
        problem: str | None
        if status in ok:
            problem = verify(parsed) if verify is not None else None
        elif answer.code is not None and answer.code in expected:
            problem = None
        else:
            problem = describe(status, answer.code)
        if problem is None:
            response.success()
            return answer
        response.failure(problem)
        return Answer(status, parsed, ok=False)


def has_field(name: str) -> Verify:
    """A check that a success carries `name`: a 200 without it is no answer a device can use."""

    def verify(body: dict[str, Any]) -> str | None:
        return None if name in body else f"answer without {name}"

    return verify


def describe(status: int, code: str | None) -> str:
    """`401 token_revoked`; `0` when no answer came (a network error)."""
    return f"{status} {code}" if code else f"{status}"


def _parsed(content: bytes | None) -> dict[str, Any]:
    if not content:
        return {}
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
