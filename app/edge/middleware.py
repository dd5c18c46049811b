"""ASGI middleware: security headers, access log, body limit, CSRF."""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_csrf.middleware import CSRFMiddleware

from app.edge.problems import domain_problem, problem
from app.edge.request_metrics import observe, route_template
from app.errors import PayloadTooLarge
from app.logging import DirectLogger

access_log = DirectLogger("polaris.access")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)


def new_request_id() -> str:
    """A random (version 4) UUID in hex, as `uuid.uuid4().hex` makes it at a third of its
    cost: one is made for every request that arrives without one."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries, as raw ASGI pairs."""
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self._raw = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A header the response already set wins over the default (ASGI header names
                # are lower-case).
                headers = message.get("headers", ())
                present = {name for name, _ in headers}
                message["headers"] = [*headers, *(h for h in self._raw if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLogMiddleware:
    """One line per request: the path without its query string, so nothing secret leaks.
    With `metrics`, the request is counted too, by its route's template."""

    def __init__(self, app: ASGIApp, *, metrics: bool = False) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log_request(scope, status, started)
            if self.metrics:
                observe(
                    scope["method"],
                    route_template(scope, root_path),
                    status,
                    time.perf_counter() - started,
                )


def log_request(scope: Scope, status: int, started: float) -> None:
    """The access-log line of one request; `started` is its `time.perf_counter()`."""
    access_log.info(
        "request",
        method=scope["method"],
        path=scope["path"],
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )


class ConsoleCSRFMiddleware(CSRFMiddleware):
    """starlette-csrf, answering in problem+json and leaving a freshly rotated token alone."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        cookie_name: str,
        header_name: str,
        cookie_secure: bool,
        sensitive_cookies: set[str],
        required_urls: Iterable[str],
        exempt_urls: Iterable[str],
    ) -> None:
        super().__init__(
            app,
            secret,
            cookie_name=cookie_name,
            header_name=header_name,
            cookie_secure=cookie_secure,
            sensitive_cookies=sensitive_cookies,
            required_urls=[re.compile(p) for p in required_urls],
            exempt_urls=[re.compile(p) for p in exempt_urls],
        )
        self._exempt = _any_of(self.exempt_urls or [])
        self._required = _any_of(self.required_urls or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Exempt paths serve clients without cookies (devices, token exchanges): nothing to
        # check, and a CSRF cookie planted in their responses would only cost a signature.
        path = scope["path"]
        if self._exempt.match(path) and not self._required.match(path):
            await self.app(scope, receive, send)
            return
        # starlette-csrf checks "required" URLs even on GET; a page view never needs a token.
        if scope["method"] in self.safe_methods:
            await self.app(scope, receive, functools.partial(self.send, send=send, scope=scope))
            return
        await super().__call__(scope, receive, send)

    async def send(self, message: Message, send: Send, scope: Scope) -> None:
        if message["type"] != "http.response.start" or any(
            name == b"set-cookie" and value.startswith(self.cookie_name.encode() + b"=")
            for name, value in message.get("headers", [])
        ):
            await send(message)
            return
        await super().send(message, send, scope)

    def _get_error_response(self, _: Request) -> Response:
        return problem("forbidden", "Missing or invalid CSRF token (X-CSRF-Token header).")


def _any_of(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern matching where any of `patterns` matches (none: matches nothing)."""
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns) or r"(?!)")


class BodyLimitMiddleware:
    """Refuse bodies over the limit: by Content-Length up front, and by the bytes that
    actually arrive (a server may let chunked framing win over a declared length)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await domain_problem(PayloadTooLarge())(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised inside the route's body read, so the exception handlers answer.
                raise PayloadTooLarge
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
