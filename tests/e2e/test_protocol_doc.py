"""docs/device-protocol.md, replayed: every request it shows goes, in order, to a real
`polaris serve`, and every answer must be the one it shows.

The convention the page follows: an ```http fence holds one HTTP message. A request (its
first line a method and a path) is followed by its answer (first line `HTTP/1.1 <status>`):
the status, each header shown and the JSON body must match; an answer without a body must be
empty. `{{name}}` marks a value that varies: in an answer it must have the shape `SHAPES`
gives it and is remembered (or, if already remembered, must be equal), in a request it is
replaced by what was remembered. `<!-- replay: name -->` lines are the admin's part, done here
through the admin API: `new-pairing` forgets every value, makes the app's PKCE pair and mints
a code; `admin-approves` approves the pending typed-code pairing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx

from simulator.admin import AdminApi, admin_http_client
from simulator.protocol import (
    HEARTBEAT,
    JWKS,
    POLL,
    PUSH_TOKEN,
    REGISTER,
    ROTATE,
    TOKEN,
    PkcePair,
    display_code,
    new_installation_id,
    s256_challenge,
)
from tests.harness import REPO_ROOT, ServerProcess

DOC = REPO_ROOT / "docs" / "device-protocol.md"
FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!-- replay: ([\w-]+) -->$")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
WHOLE_PLACEHOLDER = re.compile(r"^\{\{(\w+)\}\}$")
TABLE_ROW = re.compile(r"^\| (`\{\{\w+\}\}`(?:, `\{\{\w+\}\}`)*) \| .* \| `([^`]+)` \|$")

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
_VERIFIER = r"[A-Za-z0-9\-._~]{43,128}"
_B64URL_256_BITS = r"[A-Za-z0-9_-]{43}"
_CROCKFORD = "0-9A-HJKMNP-TV-Z"
_DEVICE_TOKEN = r"pxd_[0-9a-f]{16}_[A-Za-z0-9_-]{32}"
_DEVICE_SECRET = r"pxs_[A-Za-z0-9_-]{43}"
SHAPES: dict[str, str] = {
    "codeVerifier": _VERIFIER,
    "codeChallenge": _B64URL_256_BITS,
    "code": f"[{_CROCKFORD}]{{8}}",
    "typedCode": f"[{_CROCKFORD.lower()}]{{4}}-[{_CROCKFORD.lower()}]{{4}}",
    "pairingProof": _VERIFIER,
    "deviceId": _UUID,
    "deviceToken": _DEVICE_TOKEN,
    "deviceSecret": _DEVICE_SECRET,
    "credentialsExpiresAtIso": _ISO_UTC,
    "rotateAfterIso": _ISO_UTC,
    "pairingId": _UUID,
    "checkCode": r"\d{6}",
    "codeExpiresAtIso": _ISO_UTC,
    "accessToken": r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}",
    "accessTokenExpiresAtIso": _ISO_UTC,
    "newDeviceToken": _DEVICE_TOKEN,
    "newDeviceSecret": _DEVICE_SECRET,
    "newCredentialsExpiresAtIso": _ISO_UTC,
    "keyId": r"[0-9a-f]{32}",
    "publicKey": _B64URL_256_BITS,
    "installationId": _UUID,
}
DEVICE_API = {
    ("POST", REGISTER),
    ("POST", POLL),
    ("POST", TOKEN),
    ("POST", HEARTBEAT),
    ("PUT", PUSH_TOKEN),
    ("POST", ROTATE),
    ("GET", JWKS),
}
# Sent by any HTTP client on its own; the doc may show them, the replay leaves them to httpx.
CLIENT_HEADERS = {"host", "content-length"}


@dataclass(frozen=True)
class Message:
    """One ```http fence: a request or an answer."""

    start: str
    headers: tuple[tuple[str, str], ...]
    body: str
    line: int

    @property
    def is_answer(self) -> bool:
        return self.start.startswith("HTTP/")


@dataclass(frozen=True)
class Exchange:
    request: Message
    answer: Message


@dataclass(frozen=True)
class Directive:
    name: str
    line: int


Step = Exchange | Directive


def _message(lines: list[str], line: int) -> Message:
    start, *rest = lines
    headers: list[tuple[str, str]] = []
    while rest and rest[0].strip():
        name, _, value = rest.pop(0).partition(":")
        headers.append((name.strip(), value.strip()))
    return Message(start.strip(), tuple(headers), "\n".join(rest).strip(), line)


def _fences(text: str) -> Iterator[Message | Directive]:
    """The http fences and replay directives, in the page's order."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        directive = DIRECTIVE.match(lines[index].strip())
        fence = FENCE.match(lines[index])
        if directive:
            yield Directive(directive.group(1), index + 1)
        elif fence and fence.group(1):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if fence.group(1) == "http":
                yield _message(lines[index + 1 : end], index + 2)
            index = end
        index += 1


def steps(text: str) -> list[Step]:
    found: list[Step] = []
    pending: Message | None = None
    for item in _fences(text):
        if isinstance(item, Message) and item.is_answer:
            assert pending is not None, f"line {item.line}: an answer with no request before it"
            found.append(Exchange(pending, item))
            pending = None
            continue
        assert pending is None, f"line {pending.line}: a request with no answer after it"
        if isinstance(item, Message):
            pending = item
        else:
            found.append(item)
    assert pending is None, f"line {pending.line}: a request with no answer after it"
    return found


def placeholder_table(text: str) -> dict[str, str]:
    """The page's table of placeholders: each name and its example value."""
    table: dict[str, str] = {}
    for line in text.splitlines():
        row = TABLE_ROW.match(line)
        if row:
            for name in PLACEHOLDER.findall(row.group(1)):
                table[name] = row.group(2)
    return table


@dataclass
class Bindings:
    values: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.values, f"{{{{{name}}}}} is used before any answer gave it"
            return self.values[name]

        return PLACEHOLDER.sub(value, text)

    def compare(self, shown: Any, actual: Any, where: str) -> Iterator[str]:
        """What differs between the answer the page shows and the one the server gave."""
        placeholder = WHOLE_PLACEHOLDER.match(shown) if isinstance(shown, str) else None
        if placeholder:
            yield from self._bind(placeholder.group(1), actual, where)
        elif isinstance(shown, dict) and isinstance(actual, dict):
            if shown.keys() != actual.keys():
                yield f"{where}: fields {sorted(actual)}, the page shows {sorted(shown)}"
            for key in shown.keys() & actual.keys():
                yield from self.compare(shown[key], actual[key], f"{where}.{key}")
        elif isinstance(shown, list) and isinstance(actual, list) and len(shown) == len(actual):
            for index, (one, other) in enumerate(zip(shown, actual, strict=True)):
                yield from self.compare(one, other, f"{where}[{index}]")
        elif shown != actual or type(shown) is not type(actual):
            yield f"{where}: {actual!r}, the page shows {shown!r}"

    def _bind(self, name: str, actual: Any, where: str) -> Iterator[str]:
        if name not in SHAPES:
            yield f"{where}: {{{{{name}}}}} has no shape in SHAPES"
        elif not isinstance(actual, str) or not re.fullmatch(SHAPES[name], actual):
            yield f"{where}: {actual!r} does not look like {{{{{name}}}}}"
        elif name in self.values and self.values[name] != actual:
            yield f"{where}: not the same {{{{{name}}}}} as before"
        else:
            self.values[name] = actual


@dataclass
class Replay:
    device: httpx.AsyncClient
    admin: AdminApi
    bindings: Bindings = field(default_factory=Bindings)

    async def send(self, request: Message) -> httpx.Response:
        method, target, _ = self.bindings.fill(request.start).split(" ", 2)
        headers = {
            name: self.bindings.fill(value)
            for name, value in request.headers
            if name.lower() not in CLIENT_HEADERS
        }
        body = self.bindings.fill(request.body).encode() if request.body else None
        return await self.device.request(method, target, headers=headers, content=body)

    def differences(self, answer: Message, response: httpx.Response) -> list[str]:
        where = f"line {answer.line}"
        status = int(answer.start.split()[1])
        found = []
        if response.status_code != status:
            found.append(f"{where}: status {response.status_code}, the page shows {status}")
        if answer.start != f"HTTP/1.1 {status} {HTTPStatus(status).phrase}":
            found.append(f"{where}: {answer.start!r} is not a status line")
        for name, value in answer.headers:
            if response.headers.get(name) != value:
                found.append(f"{where}: {name}: {response.headers.get(name)}, shown {value}")
        if not answer.body:
            if response.content:
                found.append(f"{where}: a body ({response.text[:80]}), the page shows none")
            return found
        return [*found, *self.bindings.compare(json.loads(answer.body), response.json(), where)]

    async def new_pairing(self) -> None:
        self.bindings.values.clear()
        pkce = PkcePair.generate()
        scanned = (await self.admin.mint_code()).scanned
        self.bindings.values.update(
            codeVerifier=pkce.verifier,
            codeChallenge=pkce.challenge,
            code=scanned.code,
            typedCode=display_code(scanned.code).lower(),
            pairingProof=scanned.proof,
            installationId=new_installation_id(),
        )

    async def admin_approves(self) -> None:
        await self.admin.approve(self.bindings.values["pairingId"])


DIRECTIVES: dict[str, Callable[[Replay], Awaitable[None]]] = {
    "new-pairing": Replay.new_pairing,
    "admin-approves": Replay.admin_approves,
}


def _page() -> str:
    return DOC.read_text()


def _requests() -> list[Message]:
    return [step.request for step in steps(_page()) if isinstance(step, Exchange)]


def test_the_page_walks_through_every_device_call() -> None:
    shown = {tuple(request.start.split(" ")[:2]) for request in _requests()}
    assert shown >= DEVICE_API
    assert all(step.name in DIRECTIVES for step in steps(_page()) if isinstance(step, Directive))


def test_every_placeholder_is_explained_with_a_true_example() -> None:
    text = _page()
    table = placeholder_table(text)
    used = {name for message in _fences(text) for name in PLACEHOLDER.findall(str(message))}
    assert used == set(table) == set(SHAPES)
    for name, example in table.items():
        if "…" not in example:  # abbreviated: an access token does not fit in a table cell
            assert re.fullmatch(SHAPES[name], example), (name, example)
    assert s256_challenge(table["codeVerifier"]) == table["codeChallenge"]
    assert display_code(table["code"]).lower() == table["typedCode"]


async def test_every_example_answers_as_documented(server: ServerProcess) -> None:
    email, password = server.first_admin()
    async with (
        admin_http_client(server.url) as admin_client,
        httpx.AsyncClient(base_url=server.url, timeout=15) as device,
    ):
        admin = AdminApi(admin_client)
        await admin.login(email, password)
        replay = Replay(device, admin)
        differences: list[str] = []
        for step in steps(_page()):
            if isinstance(step, Directive):
                await DIRECTIVES[step.name](replay)
                continue
            response = await replay.send(step.request)
            differences += replay.differences(step.answer, response)
        assert not differences, "\n".join(differences)
