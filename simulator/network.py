"""A network that loses answers: the request reaches the server, which acts on it, and the
answer never comes back (a tunnel, a lift, a flaky Wi-Fi hand-over). Then, for a while,
nothing gets through at all. What a device retrying with an `Idempotency-Key` must survive.
"""

from __future__ import annotations

import time

import httpx


class LossyNetwork(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._lose: dict[str, int] = {}
        self._down_until = 0.0
        self._outage = 0.0
        self.lost_answers = 0
        self.refused_requests = 0

    def lose_next_answer(self, path: str, *, then_down_for: float = 0.0) -> None:
        """The next request to `path` is served but its answer is lost; the network then
        stays down for `then_down_for` seconds."""
        self._lose[path] = self._lose.get(path, 0) + 1
        self._outage = then_down_for

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if time.monotonic() < self._down_until:
            self.refused_requests += 1
            raise httpx.ConnectError("the network is down", request=request)
        response = await self._inner.handle_async_request(request)
        path = request.url.path
        if self._lose.get(path):
            self._lose[path] -= 1
            # Read to the end, so the server saw its answer leave and finished the request.
            await response.aread()
            await response.aclose()
            self.lost_answers += 1
            self._down_until = time.monotonic() + self._outage
            raise httpx.ReadError("the connection dropped before the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
