"""A scanner that misbehaves on purpose, and the refusal each misdeed must meet."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from simulator.problems import ProblemError, problem_from
from simulator.protocol import (
    HEARTBEAT,
    REGISTER,
    TOKEN,
    PairingUri,
    PkcePair,
    parse_pairing_uri,
)
from simulator.scanner import SimulatedScanner

# Past DESIGN §8's 16 KiB request limit.
OVERSIZED_BYTES = 17 * 1024


class Accepted(AssertionError):
    """The server accepted something it must refuse."""


async def refusal(call: Awaitable[Any]) -> ProblemError:
    """The problem the server answered with; `Accepted` if it said yes."""
    try:
        outcome = await call
    except ProblemError as exc:
        return exc
    raise Accepted(f"the server accepted it: {outcome!r}")


def _as_uri(uri: PairingUri | str) -> PairingUri:
    return parse_pairing_uri(uri) if isinstance(uri, str) else uri


async def wrong_proof(scanner: SimulatedScanner, uri: PairingUri | str) -> ProblemError:
    """Scan a QR code whose proof was tampered with: `invalid_proof` (the fifth burns it)."""
    forged = replace(_as_uri(uri), proof=PkcePair.generate(43).verifier)
    return await refusal(scanner.pair_by_qr(forged))


async def replayed_code(scanner: SimulatedScanner, uri: PairingUri | str) -> ProblemError:
    """Redeem a QR code that already paired a device: `code_already_used`."""
    return await refusal(scanner.pair_by_qr(uri))


async def expired_code(
    scanner: SimulatedScanner, uri: PairingUri | str, expires_at_iso: str
) -> ProblemError:
    """Wait out the code's life, then scan it: `code_expired`."""
    expires_at = datetime.fromisoformat(expires_at_iso.replace("Z", "+00:00"))
    wait = (expires_at - datetime.now(UTC)).total_seconds()
    if wait > 0:
        await asyncio.sleep(wait + 0.5)
    return await refusal(scanner.pair_by_qr(uri))


async def stolen_credentials(thief: SimulatedScanner) -> ProblemError:
    """A clone trades credentials the real device has since rotated: `token_revoked`.

    The server takes this as theft and cuts the real device off too. Within a few seconds
    of the rotation it answers `conflict` instead (a racing retry of the same device).
    """
    assert thief.session is not None
    thief.session.forget_token()
    return await refusal(thief.session.token())


@dataclass(frozen=True)
class Garbage:
    name: str
    method: str
    path: str
    content: bytes
    content_type: str
    expected_status: int
    expected_code: str
    needs_token: bool = False


@dataclass(frozen=True)
class GarbageOutcome:
    garbage: Garbage
    status: int
    code: str

    @property
    def as_expected(self) -> bool:
        return (self.status, self.code) == (
            self.garbage.expected_status,
            self.garbage.expected_code,
        )


def _register_body(scanner: SimulatedScanner, **changes: Any) -> bytes:
    body = {
        "code": "K7QXM2PD",
        "codeChallenge": PkcePair.generate().challenge,
        **scanner.identity.fields().wire(),
        **changes,
    }
    return orjson.dumps(body)


def _unsigned_jwt(subject: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": subject, "typ": "device+jwt", "iat": now, "exp": now + 600}
    return f"{part({'alg': 'none', 'typ': 'device+jwt'})}.{part(claims)}."


def garbage_requests(scanner: SimulatedScanner) -> list[Garbage]:
    json_type = "application/json"
    return [
        Garbage(
            "truncated JSON",
            "POST",
            REGISTER,
            b'{"code": "K7QX',
            json_type,
            400,
            "validation_error",
        ),
        Garbage("JSON array", "POST", REGISTER, b"[1, 2, 3]", json_type, 400, "validation_error"),
        Garbage(
            "form body",
            "POST",
            REGISTER,
            b"code=K7QXM2PD",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        Garbage(
            "oversized body",
            "POST",
            REGISTER,
            _register_body(scanner, label="x" * OVERSIZED_BYTES),
            json_type,
            413,
            "payload_too_large",
        ),
        Garbage(
            "unknown field",
            "POST",
            REGISTER,
            _register_body(scanner, ownerUserId="someone-else"),
            json_type,
            400,
            "validation_error",
        ),
        Garbage(
            "malformed challenge",
            "POST",
            REGISTER,
            _register_body(scanner, codeChallenge="plain-text-challenge"),
            json_type,
            400,
            "validation_error",
        ),
        Garbage(
            "unknown platform",
            "POST",
            REGISTER,
            _register_body(scanner, platform="windows"),
            json_type,
            400,
            "validation_error",
        ),
        Garbage(
            "malformed credentials",
            "POST",
            TOKEN,
            orjson.dumps({"deviceToken": "", "deviceSecret": 42}),
            json_type,
            400,
            "validation_error",
        ),
        Garbage(
            "made-up credentials",
            "POST",
            TOKEN,
            orjson.dumps({"deviceToken": "pxd_nope_nope", "deviceSecret": "pxs_nope"}),
            json_type,
            401,
            "invalid_credentials",
        ),
        Garbage(
            "battery above 100 %",
            "POST",
            HEARTBEAT,
            orjson.dumps({"batteryLevel": 7}),
            json_type,
            400,
            "validation_error",
            needs_token=True,
        ),
        Garbage(
            "unknown heartbeat field",
            "POST",
            HEARTBEAT,
            orjson.dumps({"lat": 48.85, "lon": 2.35}),
            json_type,
            400,
            "validation_error",
            needs_token=True,
        ),
    ]


def forged_bearers(device_id: str) -> list[tuple[str, str]]:
    return [
        ("not a JWT", "not.a.jwt"),
        ("alg none", _unsigned_jwt(device_id)),
    ]


async def _send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    content: bytes,
    content_type: str,
    bearer: str | None = None,
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    response = await client.request(method, path, content=content, headers=headers)
    if response.status_code < 400:
        return response.status_code, "accepted"
    return response.status_code, problem_from(response).code


async def send_garbage(scanner: SimulatedScanner) -> list[GarbageOutcome]:
    """Every malformed request in the book; each must get its own refusal, never a 500.

    Requests that need a valid access token are sent only if the scanner is paired.
    """
    client = scanner.api.client
    token = (await scanner.session.token()).token if scanner.session else None
    outcomes = []
    for garbage in garbage_requests(scanner):
        if garbage.needs_token and token is None:
            continue
        bearer = token if garbage.needs_token else None
        status, code = await _send(
            client, garbage.method, garbage.path, garbage.content, garbage.content_type, bearer
        )
        outcomes.append(GarbageOutcome(garbage, status, code))
    for name, forged in forged_bearers(scanner.device_id or "00000000-0000-0000-0000-000000000000"):
        garbage = Garbage(
            f"forged bearer: {name}", "POST", HEARTBEAT, b"{}", "", 401, "invalid_credentials"
        )
        status, code = await _send(client, "POST", HEARTBEAT, b"{}", "application/json", forged)
        outcomes.append(GarbageOutcome(garbage, status, code))
    return outcomes
