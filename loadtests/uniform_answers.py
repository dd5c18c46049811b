"""Refusals that must not tell their reasons apart by time: p50/p99 of each kind.

    python -m loadtests.uniform_answers [--requests 2000] [--warmup 100]
                                        [--backend embedded|redis] [--no-pin] [--seed N]

Code redemption (`POST /api/devices/register`, a typed code) refused as unknown, expired,
used and burned, and the token exchange (`POST /api/devices/token`) refused for an unknown
deviceToken, a known deviceToken with a wrong deviceSecret and a malformed deviceToken.
One `polaris serve` worker (pinned to one CPU, this client to another) answers one request
at a time over one kept-alive connection on bare asyncio streams (`http1.py`); each round
sends every kind once, in a fresh random order, so drift on a busy machine falls on all of
them alike. Latency is measured here, from the first byte sent to the last byte read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import orjson

from loadtests.cpus import Pinning, busy_elsewhere, plan_cpus
from loadtests.devices import FIELDS
from loadtests.errors import BenchError
from loadtests.http1 import KeptAliveConnection, ProtocolBreach
from loadtests.latency import percentile
from loadtests.servers import POSTGRES_URL, REDIS_URL, Polaris
from simulator.admin import AdminApi, MintedCode, admin_http_client
from simulator.problems import ProblemError
from simulator.protocol import (
    JSON_HEADERS,
    REGISTER,
    TOKEN,
    Credentials,
    DeviceApi,
    PkcePair,
    device_http_client,
)

# Failure budgets no measurement can spend: a 429 would be a different, cheaper answer.
UNSPENDABLE_BUDGET = "1000000000/minute"
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# A real code is single use and lives long enough to be burned by hand; then it expires.
CODE_TTL_SECONDS = 4
WRONG_PROOFS_ALLOWED = 10
REDEEM = "redemption"
EXCHANGE = "token exchange"


@dataclass(frozen=True)
class Refusal:
    """One kind of refused request: what it sends (a fresh body each time) and must get."""

    name: str
    group: str
    path: str
    status: int
    code: str
    body: Callable[[], dict[str, object]] = field(repr=False)


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)


@dataclass(frozen=True)
class Summary:
    p50_us: float
    p99_us: float
    mean_us: float


@dataclass
class RefusingPolaris(Polaris):
    """A Polaris whose failure budgets never refuse and whose codes expire in seconds."""

    code_ttl: int = CODE_TTL_SECONDS

    def env(self, port: int) -> dict[str, str]:
        return {
            **super().env(port),
            "REDEEM_FAILURES_PER_IP": UNSPENDABLE_BUDGET,
            "REDEEM_FAILURES_GLOBAL": UNSPENDABLE_BUDGET,
            "PAIRING_CODE_TTL_SECONDS": str(self.code_ttl),
        }


def _random_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def _typed(code: Callable[[], str]) -> Callable[[], dict[str, object]]:
    """A typed code (no proof), as someone guessing codes sends it."""
    return lambda: {"code": code(), "codeChallenge": PkcePair.generate().challenge, **FIELDS.wire()}


def _pair(token: Callable[[], str]) -> Callable[[], dict[str, object]]:
    return lambda: {"deviceToken": token(), "deviceSecret": f"pxs_{secrets.token_urlsafe(32)}"}


def _unknown_device_token() -> str:
    return f"pxd_{secrets.token_hex(8)}_{secrets.token_urlsafe(24)}"


def _malformed_device_token() -> str:
    # As long as a real one, but its lookup id is not hex: it can name no row.
    return f"pxd_{'z' * 16}_{secrets.token_urlsafe(24)}"


def refusals(*, expired: str, used: str, burned: str, known: Credentials) -> list[Refusal]:
    """Every kind measured, with the answer the protocol documents for it."""
    return [
        Refusal("unknown code", REDEEM, REGISTER, 400, "invalid_code", _typed(_random_code)),
        Refusal("expired code", REDEEM, REGISTER, 410, "code_expired", _typed(lambda: expired)),
        Refusal("used code", REDEEM, REGISTER, 409, "code_already_used", _typed(lambda: used)),
        Refusal("burned code", REDEEM, REGISTER, 410, "session_burned", _typed(lambda: burned)),
        Refusal(
            "unknown deviceToken",
            EXCHANGE,
            TOKEN,
            401,
            "invalid_credentials",
            _pair(_unknown_device_token),
        ),
        Refusal(
            "known deviceToken, wrong secret",
            EXCHANGE,
            TOKEN,
            401,
            "invalid_credentials",
            _pair(lambda: known.device_token),
        ),
        Refusal(
            "malformed deviceToken",
            EXCHANGE,
            TOKEN,
            401,
            "invalid_credentials",
            _pair(_malformed_device_token),
        ),
    ]


async def _burn(api: DeviceApi, minted: MintedCode) -> None:
    """Wrong proofs until the session is burned (the fifth, by the protocol)."""
    for _ in range(WRONG_PROOFS_ALLOWED):
        try:
            await api.register(
                code=minted.code,
                pkce=PkcePair.generate(),
                fields=FIELDS,
                proof=PkcePair.generate().verifier,
            )
        except ProblemError as exc:
            if exc.code == "session_burned":
                return
            if exc.code != "invalid_proof":
                raise BenchError(f"a wrong proof was answered {exc.status} {exc.code}") from exc
        else:
            raise BenchError("a wrong proof paired a device")
    raise BenchError(f"{WRONG_PROOFS_ALLOWED} wrong proofs did not burn the code")


async def prepare(base_url: str, email: str, password: str) -> list[Refusal]:
    """Mint the codes each refusal needs, through the admin API, and let one expire."""
    async with (
        admin_http_client(base_url) as admin_client,
        device_http_client(base_url, connections=1) as device_client,
    ):
        admin = AdminApi(admin_client)
        api = DeviceApi(device_client)
        try:
            await admin.login(email, password)
            expired = await admin.mint_code()
            used, burned = await admin.mint_code(), await admin.mint_code()
            known = await api.register_scanned(
                used.scanned, pkce=PkcePair.generate(), fields=FIELDS
            )
            await _burn(api, burned)
        except (ProblemError, httpx.HTTPError) as exc:
            raise BenchError(f"preparing the refused codes failed: {exc}") from exc
    expires_at = datetime.fromisoformat(expired.expires_at_iso)
    await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.5)
    return refusals(expired=expired.code, used=used.code, burned=burned.code, known=known)


async def measure(
    base_url: str, kinds: Sequence[Refusal], *, requests: int, warmup: int, seed: int
) -> dict[str, Tally]:
    """`warmup + requests` rounds, each kind once per round in a fresh order, one at a time."""
    tallies = {kind.name: Tally() for kind in kinds}
    order = random.Random(seed)
    async with KeptAliveConnection(base_url) as connection:
        for round_number in range(warmup + requests):
            for kind in order.sample(list(kinds), len(kinds)):
                request = connection.encode(
                    "POST", kind.path, orjson.dumps(kind.body()), JSON_HEADERS
                )
                started = time.perf_counter_ns()
                answer = await connection.send(request)
                took = time.perf_counter_ns() - started
                if round_number < warmup:
                    continue
                tally = tallies[kind.name]
                tally.latencies_ns.append(took)
                tally.answers[(answer.status, answer.problem_code)] += 1
    return tallies


def summarise(latencies_ns: Sequence[int]) -> Summary:
    ordered = sorted(latencies_ns)
    return Summary(
        p50_us=percentile(ordered, 0.50) / 1000,
        p99_us=percentile(ordered, 0.99) / 1000,
        mean_us=sum(ordered) / len(ordered) / 1000,
    )


def _answer(tally: Tally) -> str:
    return ", ".join(f"{status} {code}" for (status, code), _ in tally.answers.most_common())


def report(
    args: argparse.Namespace,
    pinned: str,
    kinds: Sequence[Refusal],
    tallies: dict[str, Tally],
    busy: float,
) -> int:
    """Print the table; 1 if any kind got another answer than its own, 0 otherwise."""
    summaries = {name: summarise(tally.latencies_ns) for name, tally in tallies.items()}
    print()
    print(
        f"{args.requests} requests per kind after {args.warmup} of warm-up, interleaved in a "
        f"random order each round, one at a time over one kept-alive connection; one uvicorn "
        f"worker, {pinned}; backend {args.backend}."
    )
    print(
        f"REDEEM_FAILURES_PER_IP={UNSPENDABLE_BUDGET} and REDEEM_FAILURES_GLOBAL="
        f"{UNSPENDABLE_BUDGET} for this run: no refusal is a 429. PAIRING_CODE_TTL_SECONDS="
        f"{CODE_TTL_SECONDS}, so a real code expires during preparation."
    )
    print("p50/group: the kind's p50 over the mean of its group's p50s.")
    print()
    print(
        f"{'group':<16}{'kind':<33}{'answer':<26}{'p50 us':>9}{'p99 us':>9}{'mean us':>9}"
        f"{'p50/group':>11}"
    )
    failures: list[str] = []
    for group in (REDEEM, EXCHANGE):
        members = [kind for kind in kinds if kind.group == group]
        group_p50 = sum(summaries[k.name].p50_us for k in members) / len(members)
        for kind in members:
            tally, figures = tallies[kind.name], summaries[kind.name]
            print(
                f"{group:<16}{kind.name:<33}{_answer(tally):<26}{figures.p50_us:>9.0f}"
                f"{figures.p99_us:>9.0f}{figures.mean_us:>9.0f}"
                f"{figures.p50_us / group_p50:>11.3f}"
            )
            expected = (kind.status, kind.code)
            if set(tally.answers) != {expected}:
                failures.append(
                    f"{kind.name} was answered {_answer(tally)}, not {kind.status} {kind.code}"
                )
        spread = [summaries[k.name].p50_us for k in members]
        print(
            f"{'':<16}largest p50 gap in the {group}s: {max(spread) - min(spread):.0f} us "
            f"({(max(spread) - min(spread)) / group_p50:.1%} of the group's p50)"
        )
    if busy > 0.1:
        print(
            f"Note: other processes used {busy:.0%} of the machine's CPU just before the run; "
            "figures are noisy under such load."
        )
    for failure in failures:
        print(f"INVALID RUN: {failure}", file=sys.stderr)
    return 1 if failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.uniform_answers",
        description=(__doc__ or "").split("\n\n", 1)[0],
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per kind")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured rounds first")
    parser.add_argument("--backend", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--redis-url", default=REDIS_URL, help="with --backend redis")
    parser.add_argument(
        "--database-url",
        help=f"default: SQLite in a temporary directory; {POSTGRES_URL} with --backend redis",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the request order")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip CPU pinning")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be >= 1 and --warmup >= 0")
    return args


def _pin_client(pinning: Pinning) -> str:
    """This process measures: it runs on the CPU the bench gives its load generator."""
    if not pinning.load:
        return "not pinned"
    server_cpu, client_cpu = pinning.server[-1], pinning.load[-1]
    os.sched_setaffinity(0, {int(client_cpu)})
    return f"server pinned to CPU {server_cpu}, this client to CPU {client_cpu}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        pinning = plan_cpus(args.pin)
        busy = busy_elsewhere()
        workdir = Path(tempfile.mkdtemp(prefix="polaris-uniform-"))
        polaris = RefusingPolaris(
            workdir,
            pinning,
            args.backend,
            redis_url=args.redis_url,
            database_url=args.database_url,
        )
        email = f"timing-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(18)
        try:
            polaris.prepare(email, password)
            with polaris.serve() as server:
                print(f"Polaris ({args.backend}): preparing the refused codes …", flush=True)
                kinds = asyncio.run(prepare(server.base_url, email, password))
                pinned = _pin_client(pinning)
                print(f"  measuring {len(kinds)} kinds, {args.requests} each …", flush=True)
                tallies = asyncio.run(
                    measure(
                        server.base_url,
                        kinds,
                        requests=args.requests,
                        warmup=args.warmup,
                        seed=args.seed,
                    )
                )
            return report(args, pinned, kinds, tallies, busy)
        finally:
            if args.keep:
                print(f"Work directory kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    except (BenchError, ProtocolBreach) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
