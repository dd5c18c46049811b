"""The device side of the wire protocol (DESIGN §4, §5), as a typed async client.

Only the public HTTP protocol: nothing here knows how the server is built, so the same
client tests a laptop's `polaris serve` and a production deployment.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from simulator.problems import (
    AuthorizationPending,
    IdempotencyKeyInFlight,
    ProblemError,
    SlowDown,
    TokenExpired,
    raise_for_problem,
)

REGISTER = "/api/devices/register"
POLL = "/api/devices/register/poll"
TOKEN = "/api/devices/token"
HEARTBEAT = "/api/devices/heartbeat"
PUSH_TOKEN = "/api/devices/push-token"
ROTATE = "/api/devices/credentials/rotate"
JWKS = "/.well-known/jwks.json"

IDEMPOTENCY_KEY = "Idempotency-Key"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
USER_AGENT = "polaris-sim/1.0"
VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# Retries of a request sent with an Idempotency-Key, after a network error: 0.5, 1, 2 s.
RETRIES = 3
RETRY_DELAY = 0.5
# RFC 8628 §3.5: each slow_down adds five seconds to the polling interval.
SLOW_DOWN_STEP = 5.0


def s256_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class PkcePair:
    """The device's own proof: it sends the challenge and alone can show the verifier."""

    verifier: str
    challenge: str

    @classmethod
    def generate(cls, length: int = 64) -> PkcePair:
        if not 43 <= length <= 128:
            raise ValueError("a PKCE verifier is 43 to 128 characters")
        # 3 random bytes make 4 url-safe characters, all in the verifier alphabet.
        verifier = secrets.token_urlsafe(length)[:length]
        return cls.from_verifier(verifier)

    @classmethod
    def from_verifier(cls, verifier: str) -> PkcePair:
        if not VERIFIER_PATTERN.fullmatch(verifier):
            raise ValueError("a PKCE verifier is 43 to 128 characters of [A-Za-z0-9-._~]")
        return cls(verifier, s256_challenge(verifier))

    def __repr__(self) -> str:
        return f"PkcePair(challenge={self.challenge!r}, verifier=***)"


class InvalidPairingUri(ValueError):
    pass


@dataclass(frozen=True)
class PairingUri:
    """What the console's QR code holds: `polaris://pair?code=…&proof=…&origin=…`."""

    code: str
    proof: str
    origin: str

    def __repr__(self) -> str:
        return f"PairingUri(code=***, proof=***, origin={self.origin!r})"


def parse_pairing_uri(uri: str) -> PairingUri:
    parts = urlsplit(uri.strip())
    if parts.scheme != "polaris" or parts.netloc != "pair":
        raise InvalidPairingUri("not a polaris://pair URI")
    query = parse_qs(parts.query, keep_blank_values=True)
    values: dict[str, str] = {}
    for name in ("code", "proof", "origin"):
        found = query.get(name, [])
        if len(found) != 1 or not found[0]:
            raise InvalidPairingUri(f"the URI needs exactly one {name!r}")
        values[name] = found[0]
    if not VERIFIER_PATTERN.fullmatch(values["proof"]):
        raise InvalidPairingUri("the proof is not a PKCE verifier")
    origin = urlsplit(values["origin"])
    if origin.scheme not in ("http", "https") or not origin.netloc:
        raise InvalidPairingUri("the origin is not an http(s) URL")
    return PairingUri(values["code"], values["proof"], values["origin"].rstrip("/"))


def display_code(code: str) -> str:
    """`K7QXM2PD` as a person reads it off the console: `K7QX-M2PD`."""
    cleaned = code.replace("-", "").replace(" ", "").upper()
    return f"{cleaned[:4]}-{cleaned[4:]}" if len(cleaned) == 8 else cleaned


@dataclass(frozen=True)
class DeviceFields:
    """What a device says about itself when it registers (DESIGN §4)."""

    label: str
    platform: str
    model: str
    os_version: str
    app_version: str
    apns_environment: str
    capabilities: tuple[str, ...]
    push_token: str | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "label": self.label,
            "platform": self.platform,
            "model": self.model,
            "osVersion": self.os_version,
            "appVersion": self.app_version,
            "apnsEnvironment": self.apns_environment,
            "capabilities": list(self.capabilities),
        }
        if self.push_token is not None:
            body["pushToken"] = self.push_token
        return body


@dataclass(frozen=True)
class Credentials:
    """The long-lived pair. Returned once by the server; never printed."""

    device_id: str
    device_token: str
    device_secret: str = field(repr=False)
    expires_at_iso: str | None = None
    capabilities: tuple[str, ...] = ()
    # The app install holding the pair: made at pairing, kept beside it, sent with it.
    installation_id: str | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any], *, installation_id: str | None = None) -> Credentials:
        return cls(
            device_id=str(body["deviceId"]),
            device_token=str(body["deviceToken"]),
            device_secret=str(body["deviceSecret"]),
            expires_at_iso=body.get("expiresAtIso"),
            capabilities=tuple(body.get("capabilities", ())),
            installation_id=installation_id,
        )

    def wire(self) -> dict[str, str]:
        body = {"deviceToken": self.device_token, "deviceSecret": self.device_secret}
        if self.installation_id is not None:
            body["installationId"] = self.installation_id
        return body

    def __repr__(self) -> str:
        return f"Credentials(device_id={self.device_id!r}, device_token={self.device_token[:12]}…)"


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_in: int
    # On this process's monotonic clock, so a wall-clock jump never keeps a stale token.
    expires_at: float

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) + seconds >= self.expires_at


@dataclass(frozen=True)
class HeartbeatAnswer:
    next_in_seconds: float
    # None from a server that does not send them.
    credentials_expire_at: datetime | None = None
    rotate_after: datetime | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> HeartbeatAnswer:
        return cls(
            float(body["nextHeartbeatInSeconds"]),
            _instant(body.get("credentialsExpireAtIso")),
            _instant(body.get("rotateAfterIso")),
        )


def _instant(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class PendingPairing:
    """A typed code was accepted; an admin must approve before the device can collect."""

    pairing_id: str
    check_code: str
    interval: float
    expires_at_iso: str

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> PendingPairing:
        return cls(
            pairing_id=str(body["pairingId"]),
            check_code=str(body["checkCode"]),
            interval=float(body["interval"]),
            expires_at_iso=str(body["expiresAtIso"]),
        )


# The request bodies, as pure functions: DeviceApi sends them, and so does any other client
# (Locust's) that must speak the same protocol without this module's httpx transport.


def register_body(
    *, code: str, pkce: PkcePair, fields: DeviceFields, proof: str | None = None
) -> dict[str, Any]:
    """`POST /api/devices/register`: with the console `proof` when scanned, without when typed."""
    body: dict[str, Any] = {"code": code, "codeChallenge": pkce.challenge, **fields.wire()}
    if proof is not None:
        body["pairingProof"] = proof
    return body


def poll_body(pairing_id: str, verifier: str) -> dict[str, str]:
    return {"pairingId": pairing_id, "codeVerifier": verifier}


def heartbeat_body(
    *,
    app_version: str | None = None,
    os_version: str | None = None,
    battery_level: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if app_version is not None:
        body["appVersion"] = app_version
    if os_version is not None:
        body["osVersion"] = os_version
    if battery_level is not None:
        body["batteryLevel"] = round(battery_level, 2)
    return body


def push_token_body(*, push_token: str, apns_environment: str) -> dict[str, str]:
    return {"pushToken": push_token, "apnsEnvironment": apns_environment}


def device_http_client(
    base_url: str, *, connections: int = 10, timeout: float = 15.0
) -> httpx.AsyncClient:
    """A cookie-less client with a bounded pool: many devices share few connections."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=60
    )
    return httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        # Waiting for a free pooled connection is not a server failure: no pool timeout.
        timeout=httpx.Timeout(timeout, pool=None),
        headers={"User-Agent": USER_AGENT},
    )


# Connections per httpx client when a fleet shards its devices over several clients.
CONNECTIONS_PER_CLIENT = 8


def device_http_clients(
    base_url: str, *, connections: int, per_client: int = CONNECTIONS_PER_CLIENT
) -> list[httpx.AsyncClient]:
    """`connections` spread over small pools (see `Fleet`): close each one when done."""
    count = max(1, -(-connections // per_client))
    size = max(1, connections // count)
    return [device_http_client(base_url, connections=size) for _ in range(count)]


def new_installation_id() -> str:
    """What an app makes once per install, at pairing, and keeps beside its credentials."""
    return str(uuid.uuid4())


def _dumps(body: Any) -> bytes:
    return orjson.dumps(body)


class DeviceApi:
    """Stateless calls of the device API; a `DeviceSession` keeps the tokens."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_in_flight: int | None = None,
        retries: int = RETRIES,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.client = client
        # httpx's pool scans every waiting request on each change, so thousands queued in it
        # cost quadratic CPU; waiting here instead keeps its queue empty.
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.retries = retries
        self.retry_delay = retry_delay

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        bearer: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {**JSON_HEADERS, **(headers or {})}
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        content = _dumps(body) if body is not None else None
        if self._gate is None:
            response = await self.client.request(method, path, content=content, headers=sent)
        else:
            async with self._gate:
                response = await self.client.request(method, path, content=content, headers=sent)
        return raise_for_problem(response)

    async def _send_idempotent(self, method: str, path: str, body: Any) -> httpx.Response:
        """Send with a fresh `Idempotency-Key`, and send again with the same key when the
        network fails or the first attempt is still being answered: a lost answer (new
        credentials, say) is then answered again instead of acted on twice."""
        headers = {IDEMPOTENCY_KEY: str(uuid.uuid4())}
        for attempt in range(self.retries + 1):
            try:
                return await self._send(method, path, body, headers=headers)
            except (httpx.TransportError, IdempotencyKeyInFlight):
                if attempt == self.retries:
                    raise
            await asyncio.sleep(self.retry_delay * 2**attempt)
        raise AssertionError("unreachable")

    async def register(
        self, *, code: str, pkce: PkcePair, fields: DeviceFields, proof: str | None = None
    ) -> Credentials | PendingPairing:
        body = register_body(code=code, pkce=pkce, fields=fields, proof=proof)
        answer = (await self._send_idempotent("POST", REGISTER, body)).json()
        if answer.get("status") == "pending_approval":
            return PendingPairing.from_wire(answer)
        return Credentials.from_wire(answer, installation_id=new_installation_id())

    async def register_scanned(
        self, uri: PairingUri | str, *, pkce: PkcePair, fields: DeviceFields
    ) -> Credentials:
        scanned = parse_pairing_uri(uri) if isinstance(uri, str) else uri
        outcome = await self.register(
            code=scanned.code, pkce=pkce, fields=fields, proof=scanned.proof
        )
        if not isinstance(outcome, Credentials):
            raise ProblemError("unexpected_pending", 202, "a scanned code asked for approval")
        return outcome

    async def register_typed(
        self, code: str, *, pkce: PkcePair, fields: DeviceFields
    ) -> PendingPairing:
        outcome = await self.register(code=code, pkce=pkce, fields=fields)
        if not isinstance(outcome, PendingPairing):
            raise ProblemError("unexpected_credentials", 201, "a typed code paired at once")
        return outcome

    async def poll(self, pairing_id: str, verifier: str) -> Credentials:
        answer = (await self._send_idempotent("POST", POLL, poll_body(pairing_id, verifier))).json()
        return Credentials.from_wire(answer, installation_id=new_installation_id())

    async def wait_for_approval(
        self,
        pending: PendingPairing,
        pkce: PkcePair,
        *,
        within: float = 600.0,
        on_poll: Callable[[str], Awaitable[None] | None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Credentials:
        """Poll as RFC 8628 asks: every `interval` seconds, five more after each slow_down.

        Ends with the credentials, or with the refusal the server gave (`access_denied`,
        `expired_token`, …). `on_poll` hears each answer's code, e.g. to show progress.
        """
        interval = pending.interval
        deadline = time.monotonic() + within
        while True:
            # A little over the interval: the server measures between its own receipts.
            await sleep(interval + 0.05)
            try:
                return await self.poll(pending.pairing_id, pkce.verifier)
            except SlowDown as exc:
                interval += SLOW_DOWN_STEP
                outcome = exc.code
            except AuthorizationPending as exc:
                outcome = exc.code
            if on_poll is not None:
                maybe = on_poll(outcome)
                if maybe is not None:
                    await maybe
            if time.monotonic() >= deadline:
                raise TimeoutError("no decision on the pending device in time")

    async def access_token(self, credentials: Credentials) -> AccessToken:
        started = time.monotonic()
        answer = (await self._send("POST", TOKEN, credentials.wire())).json()
        expires_in = int(answer["expiresIn"])
        return AccessToken(str(answer["accessToken"]), expires_in, started + expires_in)

    async def heartbeat(
        self,
        token: AccessToken | str,
        *,
        app_version: str | None = None,
        os_version: str | None = None,
        battery_level: float | None = None,
    ) -> float:
        """Returns the `nextHeartbeatInSeconds` the server asks for."""
        answer = await self.heartbeat_answer(
            token, app_version=app_version, os_version=os_version, battery_level=battery_level
        )
        return answer.next_in_seconds

    async def heartbeat_answer(
        self,
        token: AccessToken | str,
        *,
        app_version: str | None = None,
        os_version: str | None = None,
        battery_level: float | None = None,
    ) -> HeartbeatAnswer:
        """The whole answer: when to beat again, and when to renew the credentials."""
        body = heartbeat_body(
            app_version=app_version, os_version=os_version, battery_level=battery_level
        )
        raw = token.token if isinstance(token, AccessToken) else token
        answer = await self._send("POST", HEARTBEAT, body, bearer=raw)
        return HeartbeatAnswer.from_wire(answer.json())

    async def upload_push_token(
        self, token: AccessToken | str, *, push_token: str, apns_environment: str
    ) -> None:
        raw = token.token if isinstance(token, AccessToken) else token
        body = push_token_body(push_token=push_token, apns_environment=apns_environment)
        await self._send("PUT", PUSH_TOKEN, body, bearer=raw)

    async def rotate(self, credentials: Credentials) -> Credentials:
        answer = await self._send_idempotent("POST", ROTATE, credentials.wire())
        # The new pair stays with the install that holds the old one.
        return Credentials.from_wire(answer.json(), installation_id=credentials.installation_id)

    async def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = (await self._send("GET", JWKS)).json()
        return keys


class DeviceSession:
    """One paired device's credentials, with an access token refreshed before it expires and
    the credentials rotated once a heartbeat's `rotateAfterIso` has passed."""

    def __init__(
        self,
        api: DeviceApi,
        credentials: Credentials,
        *,
        refresh_margin: float = 60.0,
        rotate_when_due: bool = True,
    ) -> None:
        self.api = api
        self.credentials = credentials
        self.refresh_margin = refresh_margin
        self.rotate_when_due = rotate_when_due
        self._token: AccessToken | None = None
        self.token_exchanges = 0
        # What the last heartbeat said of the current pair; None until one did.
        self.rotate_after: datetime | None = None
        self.credentials_expire_at: datetime | None = None
        self.rotations = 0

    @property
    def device_id(self) -> str:
        return self.credentials.device_id

    async def token(self) -> AccessToken:
        current = self._token
        margin = min(self.refresh_margin, current.expires_in / 4) if current else 0.0
        if current is None or current.expires_within(margin):
            current = await self.api.access_token(self.credentials)
            self.token_exchanges += 1
            self._token = current
        return current

    def forget_token(self) -> None:
        self._token = None

    async def _with_token(self, call: Callable[[AccessToken], Awaitable[Any]]) -> Any:
        try:
            return await call(await self.token())
        except TokenExpired:
            # Our clock and the server's disagree: one fresh token, one retry.
            self.forget_token()
            return await call(await self.token())

    async def heartbeat(self, **fields: Any) -> float:
        """One heartbeat; then, if the server's `rotateAfterIso` has passed on this device's
        clock, a rotation, as the real app renews its credentials well before they expire."""
        answer: HeartbeatAnswer = await self._with_token(
            lambda t: self.api.heartbeat_answer(t, **fields)
        )
        self.rotate_after = answer.rotate_after
        self.credentials_expire_at = answer.credentials_expire_at
        if self.rotate_when_due and self.rotation_due():
            await self.rotate()
        return answer.next_in_seconds

    def rotation_due(self, now: datetime | None = None) -> bool:
        return self.rotate_after is not None and self.rotate_after <= (now or datetime.now(UTC))

    async def upload_push_token(self, *, push_token: str, apns_environment: str) -> None:
        await self._with_token(
            lambda t: self.api.upload_push_token(
                t, push_token=push_token, apns_environment=apns_environment
            )
        )

    async def rotate(self) -> Credentials:
        self.credentials = await self.api.rotate(self.credentials)
        # Access tokens minted from the rotated-out pair die with it.
        self.forget_token()
        # Until a heartbeat speaks of the new pair, there is nothing to rotate.
        self.rotate_after = None
        self.credentials_expire_at = None
        self.rotations += 1
        return self.credentials
