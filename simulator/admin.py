"""The admin JSON API calls QA needs (DESIGN §6), so a whole scenario runs without a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import httpx
import orjson

from simulator.problems import raise_for_problem
from simulator.protocol import USER_AGENT, PairingUri, parse_pairing_uri

LOGIN = "/api/v1/auth/login"
PAIRING_SESSIONS = "/api/v1/admin/pairing-sessions"
DEVICES = "/api/v1/admin/devices"
AUDIT = "/api/v1/admin/audit"
APP_QR = "/api/v1/admin/app/generate-qr"
APP_EXCHANGE = "/api/v1/admin/app/exchange-token"


_JSON = {"Content-Type": "application/json"}


class TokenView(TypedDict):
    tokenId: str
    state: str
    issuedAtIso: str
    expiresAtIso: str


class DeviceView(TypedDict):
    deviceId: str
    kind: str
    label: str
    platform: str
    model: str
    osVersion: str
    appVersion: str
    apnsEnvironment: str
    pushTokenLast8: str | None
    capabilities: list[str]
    ownerUserId: str
    ownerEmail: str
    state: str
    online: bool
    lastSeenAtIso: str | None
    registeredAtIso: str
    cloneSuspectedAtIso: NotRequired[str | None]
    # A server that does not send them leaves them out.
    credentialExpiresAtIso: NotRequired[str | None]
    credentialExpiresSoon: NotRequired[bool]
    tokens: NotRequired[list[TokenView]]


class AuditEventView(TypedDict):
    id: str
    atIso: str
    action: str
    actor: dict[str, Any]
    target: dict[str, Any]
    metadata: dict[str, Any]


class PendingDeviceView(TypedDict):
    label: str
    platform: str
    model: str
    ip: str | None
    checkCode: str
    capabilities: list[str]


class PairingSessionView(TypedDict):
    pairingSessionId: str
    state: str
    expiresAtIso: str
    pendingDevice: NotRequired[PendingDeviceView]
    deviceId: NotRequired[str]


@dataclass(frozen=True)
class MintedCode:
    """A fresh scanner code; `pairing_uri` carries the console proof and is shown once."""

    pairing_session_id: str
    code: str = field(repr=False)
    pairing_uri: str = field(repr=False)
    expires_at_iso: str

    @property
    def scanned(self) -> PairingUri:
        return parse_pairing_uri(self.pairing_uri)


@dataclass(frozen=True)
class AdminAppTokens:
    """What the admin mobile app holds after scanning the console's QR code."""

    device_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int


def admin_http_client(base_url: str, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """Its own cookie jar: the console session cookie never reaches the device client."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers={"User-Agent": USER_AGENT})


class AdminApi:
    """Signed in by email and password (session cookie + CSRF token) or by an admin-app JWT."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._auth_headers: dict[str, str] = {}
        self.user: dict[str, Any] | None = None

    async def login(self, email: str, password: str) -> dict[str, Any]:
        response = raise_for_problem(
            await self.client.post(LOGIN, json={"email": email, "password": password})
        )
        body = response.json()
        self._auth_headers = {"X-CSRF-Token": str(body["csrfToken"])}
        user: dict[str, Any] = body["user"]
        self.user = user
        return user

    def use_bearer(self, access_token: str) -> None:
        """An admin-app access token: no cookie, no CSRF token (DESIGN §6)."""
        self.client.cookies.clear()
        self._auth_headers = {"Authorization": f"Bearer {access_token}"}

    async def connect_admin_app(
        self, *, device_name: str, device_identifier: str, platform: str = "ios"
    ) -> AdminAppTokens:
        """Play the admin mobile app: the console shows a QR code, the phone redeems it.

        Needs a console session (email + password): only a signed-in console shows the QR.
        """
        payload = (await self._call("POST", APP_QR)).json()["payload"]
        body = {
            "token": payload["token"],
            "deviceName": device_name,
            "platform": platform,
            "deviceIdentifier": device_identifier,
        }
        # The phone is another client: no console cookie, just the QR code's token.
        async with admin_http_client(str(self.client.base_url)) as phone:
            answer = raise_for_problem(
                await phone.post(APP_EXCHANGE, content=orjson.dumps(body), headers=_JSON)
            ).json()
        return AdminAppTokens(
            device_id=str(answer["deviceId"]),
            access_token=str(answer["accessToken"]),
            refresh_token=str(answer["refreshToken"]),
            expires_in=int(answer["expiresIn"]),
        )

    async def _call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = dict(self._auth_headers)
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        response = await self.client.request(
            method, path, content=content, headers=headers, params=params
        )
        return raise_for_problem(response)

    async def mint_code(self) -> MintedCode:
        body = (await self._call("POST", PAIRING_SESSIONS)).json()
        return MintedCode(
            pairing_session_id=str(body["pairingSessionId"]),
            code=str(body["code"]),
            pairing_uri=str(body["pairingUri"]),
            expires_at_iso=str(body["expiresAtIso"]),
        )

    async def pairing_session(self, session_id: str) -> PairingSessionView:
        view: PairingSessionView = (
            await self._call("GET", f"{PAIRING_SESSIONS}/{session_id}")
        ).json()
        return view

    async def approve(
        self, session_id: str, *, capabilities: list[str] | None = None
    ) -> PairingSessionView:
        body = {"capabilities": capabilities} if capabilities is not None else {}
        answer = await self._call("POST", f"{PAIRING_SESSIONS}/{session_id}/approve", body=body)
        view: PairingSessionView = answer.json()
        return view

    async def reject(self, session_id: str) -> PairingSessionView:
        answer = await self._call("POST", f"{PAIRING_SESSIONS}/{session_id}/reject")
        view: PairingSessionView = answer.json()
        return view

    async def cancel(self, session_id: str) -> None:
        await self._call("DELETE", f"{PAIRING_SESSIONS}/{session_id}")

    async def device(self, device_id: str) -> DeviceView:
        view: DeviceView = (await self._call("GET", f"{DEVICES}/{device_id}")).json()
        return view

    async def devices_page(
        self,
        *,
        cursor: str | None = None,
        limit: int = 200,
        **filters: str | bool | None,
    ) -> tuple[list[DeviceView], str | None]:
        return await self._devices_page(cursor, limit, filters)

    async def _devices_page(
        self, cursor: str | None, limit: int, filters: dict[str, str | bool | None]
    ) -> tuple[list[DeviceView], str | None]:
        params: dict[str, Any] = {"limit": limit}
        for name, value in filters.items():
            if value is not None:
                params[name] = str(value).lower() if isinstance(value, bool) else value
        if cursor:
            params["cursor"] = cursor
        body = (await self._call("GET", DEVICES, params=params)).json()
        return body["items"], body.get("nextCursor")

    async def iter_devices(self, **filters: str | bool | None) -> AsyncIterator[DeviceView]:
        cursor: str | None = None
        while True:
            items, cursor = await self._devices_page(cursor, 200, filters)
            for item in items:
                yield item
            if not cursor:
                return

    async def all_devices(self, **filters: str | bool | None) -> list[DeviceView]:
        return [device async for device in self.iter_devices(**filters)]

    async def deregister(self, device_id: str) -> None:
        await self._call("DELETE", f"{DEVICES}/{device_id}")

    async def revoke_token(self, device_id: str, token_id: str) -> TokenView:
        answer = await self._call("POST", f"{DEVICES}/{device_id}/tokens/{token_id}/revoke")
        view: TokenView = answer.json()
        return view

    async def audit(
        self, *, action: str | None = None, device_id: str | None = None, limit: int = 50
    ) -> list[AuditEventView]:
        params: dict[str, Any] = {"limit": limit}
        if action:
            params["action"] = action
        if device_id:
            params["deviceId"] = device_id
        events: list[AuditEventView] = (await self._call("GET", AUDIT, params=params)).json()[
            "items"
        ]
        return events
