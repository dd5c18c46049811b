"""The admin a pairing user works with: signed in on the console API (session cookie and CSRF
token) on a client of its own, so the console cookie never rides on a device's request."""

from __future__ import annotations

from typing import Any

from locust.contrib.fasthttp import FastHttpSession, FastHttpUser

from loadtests.locust_wire import Answer, Verify, has_field, idempotent, send
from simulator.admin import DEVICES, LOGIN, PAIRING_SESSIONS, MintedCode

# Request names: one stats row per endpoint, whatever the session or device id.
PAIRING_SESSION = f"{PAIRING_SESSIONS}/{{pairingSessionId}}"
APPROVE = f"{PAIRING_SESSION}/approve"
DEVICE = f"{DEVICES}/{{deviceId}}"


class AdminSession:
    def __init__(self, user: FastHttpUser, email: str, password: str) -> None:
        self.client = FastHttpSession(
            base_url=user.host,
            request_event=user.environment.events.request,
            user=user,
            insecure=user.insecure,
            network_timeout=user.network_timeout,
            connection_timeout=user.connection_timeout,
        )
        self._email = email
        self._password = password
        self._csrf: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"AdminSession({self._email!r})"

    def sign_in(self) -> bool:
        answer = send(
            self.client,
            "POST",
            LOGIN,
            body={"email": self._email, "password": self._password},
            verify=has_field("csrfToken"),
        )
        if answer.ok:
            self._csrf = {"X-CSRF-Token": str(answer.body["csrfToken"])}
        return answer.ok

    def ready(self) -> bool:
        """Signed in, signing in first if need be (each try is a request Locust counts)."""
        return bool(self._csrf) or self.sign_in()

    def _call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        verify: Verify | None = None,
    ) -> Answer:
        def attempt(expected: tuple[str, ...]) -> Answer:
            return send(
                self.client,
                method,
                path,
                name=name,
                body=body,
                headers={**self._csrf, **(headers or {})},
                ok=ok,
                expected=expected,
                verify=verify,
            )

        # A console session ends when idle or old (DESIGN §8): sign in again, once.
        answer = attempt(("not_authenticated",))
        if answer.status == 401 and self.sign_in():
            return attempt(())
        return answer

    def mint(self) -> MintedCode | None:
        answer = self._call(
            "POST", PAIRING_SESSIONS, name=PAIRING_SESSIONS, ok=(201,), verify=has_field("code")
        )
        if not answer.ok:
            return None
        return MintedCode(
            pairing_session_id=str(answer.body["pairingSessionId"]),
            code=str(answer.body["code"]),
            pairing_uri=str(answer.body["pairingUri"]),
            expires_at_iso=str(answer.body["expiresAtIso"]),
        )

    def confirm_pending(self, session_id: str, check_code: str) -> bool:
        """What the admin's open dialog shows: the pending device, with the check code the
        device shows. A different one is a stranger's device, and a failure."""

        def same_check_code(body: dict[str, Any]) -> str | None:
            pending = body.get("pendingDevice") or {}
            if body.get("state") != "pending_approval":
                return f"session {body.get('state')}, not pending_approval"
            if pending.get("checkCode") != check_code:
                return "the pending device shows another check code"
            return None

        answer = self._call(
            "GET", f"{PAIRING_SESSIONS}/{session_id}", name=PAIRING_SESSION, verify=same_check_code
        )
        return answer.ok

    def approve(self, session_id: str) -> bool:
        path = f"{PAIRING_SESSIONS}/{session_id}/approve"
        return self._call("POST", path, name=APPROVE, body={}).ok

    def deregister(self, device_id: str) -> bool:
        answer = self._call(
            "DELETE", f"{DEVICES}/{device_id}", name=DEVICE, ok=(204,), headers=idempotent()
        )
        return answer.ok
