"""One kept-alive HTTP/1.1 connection on bare asyncio streams, one request at a time.

httpx spends about a millisecond of client CPU on each request, more than a refusal costs
the server: its overhead and jitter would drown what is measured. Here nothing sits between
the clock and the socket but the bytes. Polaris answers with `Content-Length` (or none for
a 204), never chunked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

_NO_BODY = frozenset({204, 304})


class ProtocolBreach(RuntimeError):
    """An answer this client cannot read (chunked, or no length)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def problem_code(self) -> str:
        """The problem+json `code`, or "-" for any other answer."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return "-"
        return str(self.json().get("code", "-"))


class KeptAliveConnection:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"an http:// URL with a host, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._host_header = parts.netloc
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> KeptAliveConnection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    def encode(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> bytes:
        """The request's bytes, built before the clock starts."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, request: bytes) -> Answer:
        """Write the request, read the whole answer."""
        if self._reader is None or self._writer is None:
            raise RuntimeError("open the connection with `async with` first")
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise ProtocolBreach(f"a {headers['transfer-encoding']} answer")
        if status in _NO_BODY:
            return Answer(status, headers, b"")
        if "content-length" not in headers:
            raise ProtocolBreach(f"a {status} answer without Content-Length")
        body = await self._reader.readexactly(int(headers["content-length"]))
        return Answer(status, headers, body)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        return await self.send(self.encode(method, path, body, headers))
