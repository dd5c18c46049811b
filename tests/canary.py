"""The secrets canary: every secret a run hands out or sends, and a search for each of them,
or a telling piece of one, wherever none may be (logs, audit rows, answers, metrics).

What counts as the secret part of a value:

- `pxd_<lookup id>_<random>` and `pxr_<lookup id>_<random>`: the random part. The lookup id
  is public by design: it only selects the row whose hash the random part must match, and it
  is stored in the clear to do so.
- `pxs_<random>`: the random part.
- An access JWT: its signature. Its header is the same for every token of a key, and its
  claims are readable by whoever holds the token; the signature is what cannot be made again.
- A one-time code: its 8 characters, in any case, with or without the hyphen it is shown with.
- Anything else (proofs, verifiers, passwords, session ids, CSRF tokens, admin-app QR tokens,
  the server's own keys): the whole value.

Each secret part is looked for whole and as every run of `WINDOW` characters in it, in any
case, so a truncated, prefixed, split or lowercased copy is found too. A window of 16
base64url characters carries 96 random bits (over 80 once case is ignored): nothing else in a
log or an answer matches one by chance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

WINDOW = 16
_LOOKUP_TOKEN = re.compile(r"px[dr]_[0-9a-f]+_(?P<random>.+)")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.(?P<signature>[A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Secret:
    kind: str
    value: str
    pieces: tuple[str, ...]
    any_case: bool = False

    @property
    def shown(self) -> str:
        return f"{self.value[:6]}…" if len(self.value) > 8 else "…"


def secret_pieces(value: str) -> tuple[str, ...]:
    if match := _LOOKUP_TOKEN.fullmatch(value):
        return (match["random"],)
    if value.startswith("pxs_"):
        return (value.removeprefix("pxs_"),)
    if match := _JWT.fullmatch(value):
        return (match["signature"],)
    return (value,)


@dataclass(frozen=True)
class Haystack:
    """Text searched for secrets; `allowed` holds the values this text was made to carry."""

    where: str
    text: str
    allowed: frozenset[str] = frozenset()
    lines: bool = False


@dataclass(frozen=True)
class Hit:
    where: str
    kind: str
    how: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} ({self.how}) in …{self.excerpt}…"


@dataclass
class Canary:
    secrets: list[Secret] = field(default_factory=list)

    def add(self, kind: str, value: str) -> str:
        if value and all(s.value != value for s in self.secrets):
            self.secrets.append(Secret(kind, value, secret_pieces(value)))
        return value

    def add_code(self, code: str) -> str:
        """A one-time code, as the API hands it out (`K7QXM2PD`)."""
        cleaned = code.replace("-", "").upper()
        shown = f"{cleaned[:4]}-{cleaned[4:]}"
        self.secrets.append(Secret("one-time code", code, (cleaned, shown), any_case=True))
        return code

    @property
    def kinds(self) -> set[str]:
        return {s.kind for s in self.secrets}

    def search(self, haystacks: Iterable[Haystack]) -> list[Hit]:
        windows: dict[str, Secret] = {}
        for secret in self.secrets:
            for piece in secret.pieces:
                for start in range(len(piece) - WINDOW + 1):
                    windows.setdefault(piece[start : start + WINDOW].casefold(), secret)
        hits: list[Hit] = []
        for haystack in haystacks:
            hits.extend(self._search_one(haystack, windows))
        return hits

    def _search_one(self, haystack: Haystack, windows: dict[str, Secret]) -> list[Hit]:
        text = haystack.text
        # Case-folded: a lowercased copy (an email field lowercases what it is given) is
        # still a leak, and a folded 16-character window still carries over 80 bits.
        folded = text.casefold()
        found: dict[str, Hit] = {}

        def note(secret: Secret, at: int, how: str) -> None:
            if secret.value in haystack.allowed or secret.value in found:
                return
            where = haystack.where
            if haystack.lines:
                where += f" line {text.count(chr(10), 0, at) + 1}"
            excerpt = text[max(at - 60, 0) : at + 60].replace("\n", "⏎")
            found[secret.value] = Hit(where, secret.kind, how, excerpt)

        for secret in self.secrets:
            for piece in secret.pieces:
                if (at := text.find(piece)) >= 0 or (at := folded.find(piece.casefold())) >= 0:
                    how = "whole value" if piece == secret.value else "secret part"
                    if text.find(piece) < 0 and not secret.any_case:
                        how += ", in another case"
                    note(secret, at, how)
        for start in range(len(folded) - WINDOW + 1):
            windowed = windows.get(folded[start : start + WINDOW])
            if windowed is not None:
                note(windowed, start, f"{WINDOW}-character fragment")
        return list(found.values())


@dataclass
class Answer:
    """One HTTP answer the run received, and the secrets it was the one meant to hand out."""

    response: httpx.Response
    issues: set[str] = field(default_factory=set)

    def haystack(self) -> Haystack:
        response = self.response
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
        request = response.request
        where = f"{request.method} {request.url.raw_path.decode()} → {response.status_code}"
        return Haystack(where, f"{headers}\n\n{response.text}", frozenset(self.issues))


@dataclass
class Answers:
    """Every answer, recorded by an httpx response hook."""

    answers: list[Answer] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        response.read()
        self.answers.append(Answer(response))

    def issued(self, response: httpx.Response, *values: str) -> None:
        for answer in reversed(self.answers):
            if answer.response is response:
                answer.issues.update(values)
                return
        raise AssertionError(f"not a recorded answer: {response}")

    @property
    def errors(self) -> list[Answer]:
        return [a for a in self.answers if a.response.status_code >= 400]

    def client(self, base_url: str, **options: object) -> httpx.Client:
        return httpx.Client(
            base_url=base_url,
            timeout=15,
            event_hooks={"response": [self.record]},
            **options,  # type: ignore[arg-type]
        )
