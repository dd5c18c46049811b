"""Faults injected into a production-shape stack: Redis SIGKILLed under load (and back empty),
the worker stopped, an app process SIGKILLed mid-registration, PostgreSQL connections dropped.

Two `polaris serve` replicas and a `polaris worker` on PostgreSQL and a private
`redis-server` this module starts, so it can kill it. `POLARIS_FAULT_OUTAGE_SECONDS` sets how
long Redis stays dead (3 s by default; 20 s is the long run).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from simulator.protocol import HEARTBEAT, REGISTER, TOKEN
from tests import backends
from tests.e2e.simulator_fixtures import CODE_TTL, ONLINE_WINDOW, SHORT_WINDOWS
from tests.harness import ServerProcess, WorkerProcess, base_env, run_cli
from tests.redis_server import RedisServer
from tests.scanner import bearer, scan_body

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

OUTAGE_SECONDS = float(os.environ.get("POLARIS_FAULT_OUTAGE_SECONDS", "3"))
# From Redis (or the worker) back to every part serving again: the longest retry wait (2 s)
# plus a job interval, with ample room for a busy machine.
RECOVERY_BOUND_SECONDS = 15.0
HEARTBEATING_DEVICES = 25
HEARTBEATS_PER_DEVICE_PER_SECOND = 1.0
EXCHANGES_PER_SECOND = 5.0
REGISTRATIONS_PER_SECOND = 2.0

ADMIN_EMAIL = "fault-lead@example.com"
ADMIN_PASSWORD = "fault injection password 42"


def _faults_database(suite_postgres_url: str) -> str:
    name = urlsplit(suite_postgres_url).path.lstrip("/") or "test"
    return f"{name}_faults"


FAULTS_DATABASE = _faults_database(backends.POSTGRES_URL)


@dataclass
class FaultStack:
    redis: RedisServer
    a: ServerProcess
    b: ServerProcess
    worker: WorkerProcess
    database_url: str

    @property
    def dsn(self) -> str:
        return self.database_url.replace("postgres://", "postgresql://", 1)

    def restart_worker(self) -> None:
        offset = len(self.worker.output())
        self.worker.spawn(["worker"], self.worker.env)
        self.worker.wait_until(
            lambda: "worker_started" in self.worker.output()[offset:], 30, "worker"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    workdir = tmp_path_factory.mktemp("faults")
    database_url = backends.fresh_postgres_database(backends.POSTGRES_URL, FAULTS_DATABASE)
    redis = RedisServer(workdir / "redis").start()
    env = base_env(
        workdir,
        DATABASE_URL=database_url,
        REDIS_URL=redis.url,
        SECRET_KEY="fault-secret-key-shared-by-every-process-0123456789",
        PUBLIC_BASE_URL="http://polaris.faults.test",
        LAST_SEEN_FLUSH_EVERY_SECONDS="1",
        HEARTBEATS_PER_DEVICE="6000/minute",
        REDEEM_FAILURES_GLOBAL="100000/minute",
        LOG_JSON="true",
        **SHORT_WINDOWS,
    )
    a, b, worker = (
        ServerProcess(workdir, env),
        ServerProcess(workdir, env),
        WorkerProcess(workdir, env),
    )
    try:
        assert run_cli(["migrate"], env).returncode == 0
        admin = ["create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]
        created = run_cli(admin, env)
        assert created.returncode == 0, created.stdout + created.stderr
        a.start()
        b.start()
        worker.start()
        yield FaultStack(redis, a, b, worker, database_url)
    finally:
        for process in (a, b, worker):
            process.stop()
        redis.stop()


# -- clients ------------------------------------------------------------------------------


@dataclass
class Admin:
    client: httpx.AsyncClient
    csrf: dict[str, str]

    async def mint(self) -> dict[str, Any]:
        minted = await self.client.post("/api/v1/admin/pairing-sessions", headers=self.csrf)
        assert minted.status_code == 201, minted.text
        body: dict[str, Any] = minted.json()
        return body

    async def revoke(self, device_id: str) -> httpx.Response:
        detail = (await self.client.get(f"/api/v1/admin/devices/{device_id}")).json()
        token_id = detail["tokens"][0]["tokenId"]
        return await self.client.post(
            f"/api/v1/admin/devices/{device_id}/tokens/{token_id}/revoke", headers=self.csrf
        )

    async def device(self, device_id: str) -> dict[str, Any]:
        detail = await self.client.get(f"/api/v1/admin/devices/{device_id}")
        assert detail.status_code == 200, detail.text
        body: dict[str, Any] = detail.json()
        return body


@asynccontextmanager
async def signed_in(server: ServerProcess) -> AsyncIterator[Admin]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield Admin(client, {"X-CSRF-Token": login.json()["csrfToken"]})


@dataclass
class Paired:
    device_id: str
    credentials: dict[str, str]
    access_token: str = ""


async def pair(admin: Admin, device: httpx.AsyncClient, url: str) -> Paired:
    minted = await admin.mint()
    registered = await device.post(f"{url}{REGISTER}", json=scan_body(minted["pairingUri"]))
    assert registered.status_code == 201, registered.text
    body = registered.json()
    paired = Paired(body["deviceId"], {k: body[k] for k in ("deviceToken", "deviceSecret")})
    exchanged = await device.post(f"{url}{TOKEN}", json=paired.credentials)
    assert exchanged.status_code == 200, exchanged.text
    paired.access_token = exchanged.json()["accessToken"]
    return paired


def _code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return str(response.json()["code"])
    return None


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until `check` held; fails after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"still not true after {within} s")


def events(text: str) -> list[str]:
    """The event names of the JSON log lines in `text`."""
    names = []
    for line in text.splitlines():
        try:
            names.append(str(json.loads(line).get("event")))
        except (json.JSONDecodeError, AttributeError):
            names.append(line)
    return names


# -- load ---------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float
    kind: str
    status: int
    code: str | None
    device_id: str | None = None


@dataclass
class Load:
    """Heartbeats, token exchanges and registrations at steady rates over both replicas."""

    stack: FaultStack
    admin: Admin
    client: httpx.AsyncClient
    live: list[Paired]
    revoked: list[Paired]
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def _url(self, i: int) -> str:
        return (self.stack.a, self.stack.b)[i % 2].url

    async def _send(self, kind: str, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        """Send and note the answer, timed from when it was sent."""
        sent = time.monotonic()
        try:
            response = await request
        except httpx.TransportError as exc:
            self.answers.append(Answer(sent, kind, 0, type(exc).__name__))
            return None
        self.answers.append(Answer(sent, kind, response.status_code, _code(response)))
        return response

    async def _every(self, period: float, step: Callable[[int], Awaitable[None]]) -> None:
        i = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            await step(i)
            i += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _heartbeats(self, device: Paired, kind: str, offset: float) -> None:
        await asyncio.sleep(offset)

        async def beat(i: int) -> None:
            await self._send(
                kind,
                self.client.post(
                    f"{self._url(i)}{HEARTBEAT}", json={}, headers=bearer(device.access_token)
                ),
            )

        await self._every(1 / HEARTBEATS_PER_DEVICE_PER_SECOND, beat)

    async def _exchanges(self) -> None:
        async def exchange(i: int) -> None:
            device = self.live[i % len(self.live)]
            await self._send(
                "exchange", self.client.post(f"{self._url(i)}{TOKEN}", json=device.credentials)
            )

        await self._every(1 / EXCHANGES_PER_SECOND, exchange)

    async def _registrations(self) -> None:
        async def register(i: int) -> None:
            minted = await self._send(
                "mint",
                self.admin.client.post("/api/v1/admin/pairing-sessions", headers=self.admin.csrf),
            )
            if minted is None or minted.status_code != 201:
                return
            response = await self._send(
                "register",
                self.client.post(
                    f"{self._url(i + 1)}{REGISTER}", json=scan_body(minted.json()["pairingUri"])
                ),
            )
            if response is not None and response.status_code == 201:
                self.answers[-1].device_id = response.json()["deviceId"]

        await self._every(1 / REGISTRATIONS_PER_SECOND, register)

    def watch_revoked(self, device: Paired) -> None:
        """Heartbeat from now on with a credential just revoked."""
        self.revoked.append(device)
        self.tasks.append(asyncio.create_task(self._heartbeats(device, "revoked", 0.0)))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        period = 1 / HEARTBEATS_PER_DEVICE_PER_SECOND
        self.tasks = [
            *(
                asyncio.create_task(self._heartbeats(d, "heartbeat", period * i / len(self.live)))
                for i, d in enumerate(self.live)
            ),
            *(
                asyncio.create_task(self._heartbeats(d, "revoked", period * i / len(self.revoked)))
                for i, d in enumerate(self.revoked)
            ),
            asyncio.create_task(self._exchanges()),
            asyncio.create_task(self._registrations()),
        ]
        try:
            yield
        finally:
            self.stopping.set()
            await asyncio.gather(*self.tasks)

    def tally(self, kind: str, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        return Counter(
            f"{a.status} {a.code}" if a.code else str(a.status)
            for a in self.answers
            if a.kind == kind and since <= a.sent < until
        )


def _rate(counted: Counter[str], seconds: float) -> float:
    return sum(counted.values()) / seconds


# -- the database's word ------------------------------------------------------------------


async def _registered_devices_are_whole(dsn: str, device_ids: set[str]) -> dict[str, int]:
    """Every device has its credential and both registration audit rows; returns counts."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
            SELECT d.id::text AS id,
                   (SELECT count(*) FROM device_tokens t WHERE t.device_id = d.id) AS tokens,
                   (SELECT count(*) FROM audit_events e
                     WHERE e.action = 'device.registered' AND e.target_id = d.id::text)
                     AS registered,
                   (SELECT count(*) FROM audit_events e
                     WHERE e.action = 'device.token.issued' AND e.target_id = d.id::text)
                     AS issued,
                   (SELECT count(*) FROM pairing_sessions s
                     WHERE s.device_id = d.id AND s.state = 'redeemed') AS sessions
            FROM devices d WHERE d.kind = 'scanner'
            """
        )
    finally:
        await connection.close()
    whole = {row["id"] for row in rows if min(row["tokens"], row["registered"], row["issued"])}
    partial = [dict(row) for row in rows if row["id"] not in whole]
    assert not partial, f"devices missing their credential or audit rows: {partial}"
    assert all(row["sessions"] == 1 for row in rows), "a device without its redeemed session"
    missing = device_ids - whole
    assert not missing, f"answered 201 but not in the database: {missing}"
    return {"devices": len(rows)}


async def _audited_revocations(dsn: str, device_ids: list[str]) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(DISTINCT target_id) FROM audit_events"
                " WHERE action = 'device.token.revoked' AND target_id = ANY($1::text[])",
                device_ids,
            )
        )
    finally:
        await connection.close()


# -- Redis killed -------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_redis_killed_under_load_loses_nothing_and_recovers(stack: FaultStack) -> None:
    async with signed_in(stack.a) as admin, httpx.AsyncClient(timeout=10) as client:
        devices = [await pair(admin, client, stack.b.url) for _ in range(HEARTBEATING_DEVICES + 5)]
        live, revoked_before, revoked_during = devices[:-5], devices[-5:-2], devices[-2:]
        for device in revoked_before:
            assert (await admin.revoke(device.device_id)).status_code == 200
        load = Load(stack, admin, client, live, revoked_before)
        logs = {"worker": stack.worker, "a": stack.a, "b": stack.b}
        async with load.running():
            await asyncio.sleep(1.5)
            offsets = {name: len(p.output()) for name, p in logs.items()}
            killed_at = time.monotonic()
            stack.redis.kill()

            # Revoked while Redis is down: no fan-out, and yet every replica refuses it.
            revocations = [await admin.revoke(d.device_id) for d in revoked_during]
            for device in revoked_during:
                load.watch_revoked(device)

            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed_at)))
            outage_logs = {name: p.output()[offsets[name] :] for name, p in logs.items()}
            worker_alive = stack.worker.process is not None and stack.worker.process.poll() is None
            restarting_at = time.monotonic()
            await asyncio.to_thread(stack.redis.start)
            back_at = time.monotonic()
            down = back_at - killed_at

            async def registers() -> bool:
                return any(a.kind == "register" and a.status == 201 for a in load.answers
                           if a.sent > back_at)  # fmt: skip

            async def ready() -> bool:
                answers = [await client.get(f"{s.url}/readyz") for s in (stack.a, stack.b)]
                return all(r.status_code == 200 for r in answers)

            async def worker_back() -> bool:
                return "worker_redis_back" in stack.worker.output()[offsets["worker"] :]

            async def listeners_back() -> bool:
                return all(
                    "revocation_listener_back" in p.output()[offsets[n] :]
                    for n, p in logs.items()
                    if n != "worker"
                )

            async def presence_flushed() -> bool:
                # Redis came back empty: the heartbeats kept in memory reach it again.
                with stack.redis.client() as redis:
                    return all(redis.zscore("polaris:presence", d.device_id) for d in live)

            recovery = {
                "registration": await eventually(registers, within=RECOVERY_BOUND_SECONDS),
                "readiness": await eventually(ready, within=RECOVERY_BOUND_SECONDS),
                "worker": await eventually(worker_back, within=RECOVERY_BOUND_SECONDS),
                "revocation listeners": await eventually(
                    listeners_back, within=RECOVERY_BOUND_SECONDS
                ),
                "presence": await eventually(presence_flushed, within=RECOVERY_BOUND_SECONDS),
            }
            await asyncio.sleep(1.0)
        ended_at = time.monotonic()

    assert [r.status_code for r in revocations] == [200, 200]
    during = (killed_at, restarting_at)
    heartbeats_during = load.tally("heartbeat", *during)
    heartbeats = load.tally("heartbeat")
    refused = load.tally("revoked")
    exchanges = load.tally("exchange")
    registrations_during = load.tally("register", *during)
    registrations = load.tally("register")
    registered = {a.device_id for a in load.answers if a.device_id is not None}
    whole = await _registered_devices_are_whole(stack.dsn, registered)
    audited = await _audited_revocations(
        stack.dsn, [d.device_id for d in revoked_before + revoked_during]
    )
    seconds = ended_at - load.answers[0].sent
    worker_events = events(outage_logs["worker"])
    # Each refused request and each revocation has its line; the retrying loops must not.
    per_request = {"request", "backend_unavailable", "revocation_publish_failed"}
    app_events = {
        n: Counter(e for e in events(outage_logs[n]) if e not in per_request) for n in ("a", "b")
    }
    print(
        f"\nRedis SIGKILLed for {down:.1f} s under {_rate(heartbeats, seconds):.0f} heartbeats/s"
        f" + {_rate(exchanges, seconds):.1f} exchanges/s"
        f" + {_rate(load.tally('mint'), seconds):.1f} registrations/s:"
        f" heartbeats answered {heartbeats['200']}/{sum(heartbeats.values())}"
        f" ({heartbeats_during['200']}/{sum(heartbeats_during.values())} during the outage),"
        f" exchanges {dict(exchanges)}, registrations {dict(registrations)}"
        f" (during the outage {dict(registrations_during)}), mints {dict(load.tally('mint'))},"
        f" revoked credentials refused {refused['401 token_revoked']}/{sum(refused.values())},"
        f" revocations audited {audited}/5, {whole['devices']} devices whole;"
        f" recovery after Redis returned (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in recovery.items())
        + f"; worker log lines during the outage: {len(worker_events)} {worker_events};"
        f" app log lines of the retrying loops: {app_events}"
    )
    assert worker_alive, stack.worker.output()[-3000:]
    assert heartbeats["200"] == sum(heartbeats.values()), heartbeats
    assert refused["401 token_revoked"] == sum(refused.values()), refused
    assert audited == 5
    # The declared policy: redemption budgets live in Redis, so a registration is refused
    # with 503 while it is away, never let through uncounted and never a 500.
    assert set(registrations) <= {"201", "503 unavailable"}, registrations
    assert registrations_during["201"] == 0
    assert registrations_during["503 unavailable"] > 0
    assert set(exchanges) <= {"200", "503 unavailable"}, exchanges
    # One line when Redis went and (after) one when it came back, not one per attempt.
    # (Jobs that were running when Redis went may still log their end.)
    assert Counter(worker_events)["worker_redis_lost"] == 1, worker_events
    assert all(n == 1 for n in Counter(worker_events).values()), worker_events
    assert all(n <= 1 for counted in app_events.values() for n in counted.values()), app_events


# -- the worker stopped -------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_worker_stopped_presence_and_expiry_stay_right_and_the_backlog_clears(
    stack: FaultStack,
) -> None:
    async with signed_in(stack.a) as admin, httpx.AsyncClient(timeout=10) as client:
        steady, silent = [await pair(admin, client, stack.b.url) for _ in range(2)]
        unredeemed = await admin.mint()

        async def beat(device: Paired) -> None:
            response = await client.post(
                f"{stack.b.url}{HEARTBEAT}", json={}, headers=bearer(device.access_token)
            )
            assert response.status_code == 200, response.text

        async def changes(device: Paired) -> list[bool]:
            return [c["online"] for c in (await admin.device(device.device_id))["presenceChanges"]]

        await beat(steady)
        await beat(silent)

        async def both_reported_online() -> bool:
            return await changes(steady) == [True] and await changes(silent) == [True]

        await eventually(both_reported_online, within=10)
        assert stack.worker.process is not None
        os.killpg(stack.worker.process.pid, signal.SIGKILL)
        stack.worker.process.wait(timeout=5)
        stopped_at = time.monotonic()

        # Past the code's life and the silent device's window, with no job running.
        while time.monotonic() - stopped_at < max(CODE_TTL, ONLINE_WINDOW) + 1:
            await beat(steady)
            await asyncio.sleep(0.5)
        assert (await admin.device(steady.device_id))["online"] is True
        assert (await admin.device(silent.device_id))["online"] is False
        late = await client.post(
            f"{stack.b.url}{REGISTER}", json=scan_body(unredeemed["pairingUri"])
        )
        assert (late.status_code, _code(late)) == (410, "code_expired")
        session_url = f"/api/v1/admin/pairing-sessions/{unredeemed['pairingSessionId']}"
        assert (await admin.client.get(session_url)).json()["state"] == "expired"
        connection = await asyncpg.connect(stack.dsn)
        try:
            stored = await connection.fetchval(
                "SELECT state FROM pairing_sessions WHERE id = $1::uuid",
                unredeemed["pairingSessionId"],
            )
        finally:
            await connection.close()
        # The backlog: what the jobs have not written yet.
        assert stored == "minted"
        assert await changes(silent) == [True]
        stopped_for = time.monotonic() - stopped_at

        await asyncio.to_thread(stack.restart_worker)
        restarted_at = time.monotonic()

        async def backlog_cleared() -> bool:
            expired = await admin.client.get(
                "/api/v1/admin/audit", params={"action": "pairing.expired"}
            )
            ids = {e["target"]["id"] for e in expired.json()["items"]}
            return unredeemed["pairingSessionId"] in ids and await changes(silent) == [False, True]

        cleared = await eventually(backlog_cleared, within=RECOVERY_BOUND_SECONDS)
        await beat(steady)
        assert await changes(steady) == [True]
    print(
        f"\nworker SIGKILLed for {stopped_for:.1f} s: the steady device stayed online, the silent"
        f" one read offline and the code expired at once; the backlog cleared"
        f" {cleared:.1f} s after the restart (since {restarted_at - stopped_at:.1f} s)"
    )


# -- an app process killed mid-registration -----------------------------------------------


@pytest.mark.timeout(90)
async def test_app_killed_mid_registration_leaves_no_partial_device(stack: FaultStack) -> None:
    in_flight = 40
    # Killed once a few have been answered: the others are at every step of theirs.
    answered_before_kill = 5
    async with signed_in(stack.a) as admin:
        minted = [await admin.mint() for _ in range(in_flight)]
    results: list[int | str] = []
    some_answered = asyncio.Event()
    device_ids: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:

        async def register(code: dict[str, Any]) -> None:
            try:
                response = await client.post(
                    f"{stack.b.url}{REGISTER}", json=scan_body(code["pairingUri"])
                )
            except httpx.TransportError as exc:
                results.append(type(exc).__name__)
            else:
                results.append(response.status_code)
                if response.status_code == 201:
                    device_ids.add(response.json()["deviceId"])
            if len(results) >= answered_before_kill:
                some_answered.set()

        tasks = [asyncio.create_task(register(code)) for code in minted]
        await some_answered.wait()
        assert stack.b.process is not None
        os.killpg(stack.b.process.pid, signal.SIGKILL)
        stack.b.process.wait(timeout=5)
        await asyncio.gather(*tasks)

    whole = await _registered_devices_are_whole(stack.dsn, device_ids)
    connection = await asyncpg.connect(stack.dsn)
    try:
        sessions = await connection.fetch(
            "SELECT state, device_id FROM pairing_sessions WHERE id = ANY($1::uuid[])",
            [code["pairingSessionId"] for code in minted],
        )
    finally:
        await connection.close()
    states = Counter(row["state"] for row in sessions)
    # A code is redeemed exactly when its device exists, whole; the rest are still unused.
    assert all((row["state"] == "redeemed") == (row["device_id"] is not None) for row in sessions)
    assert set(states) <= {"minted", "redeemed", "expired"}, states
    answered = Counter(results)
    committed_unanswered = states["redeemed"] - answered[201]
    await asyncio.to_thread(stack.b.start)
    print(
        f"\napp SIGKILLed with {in_flight} registrations in flight: answers {dict(answered)};"
        f" sessions {dict(states)}; {committed_unanswered} committed without an answer;"
        f" {whole['devices']} devices in the database, none partial"
    )
    assert answered[201] < in_flight, "every registration finished before the kill"


# -- PostgreSQL connections dropped -------------------------------------------------------


@pytest.mark.timeout(90)
async def _pause_between_transactions(pid: int, watcher: asyncpg.Connection) -> None:
    """SIGSTOP the worker at a moment none of its connections is inside a transaction."""
    for _ in range(100):
        os.killpg(pid, signal.SIGSTOP)
        busy = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
            FAULTS_DATABASE,
        )
        if not busy:
            return
        os.killpg(pid, signal.SIGCONT)
        await asyncio.sleep(0.1)
    raise AssertionError("the worker was never between transactions")


async def test_dropped_database_connections_answer_unavailable_then_recover(
    stack: FaultStack,
) -> None:
    pids = {s.port: s.process.pid for s in (stack.a, stack.b) if s.process is not None}
    async with signed_in(stack.a) as admin, httpx.AsyncClient(timeout=20) as client:
        # Paired through the other replica: b has never verified the pair, so its token
        # exchanges below read the database (a pair b had verified is answered from memory,
        # database or not).
        device = await pair(admin, client, stack.a.url)
        codes = [await admin.mint() for _ in range(2)]
        assert stack.worker.process is not None
        locker = await asyncpg.connect(stack.dsn)
        # Outside the locker's transaction, which would see one snapshot of the activity.
        watcher = await asyncpg.connect(stack.dsn)
        # Paused, so that every backend waiting on the lock is one of the requests'; its own
        # connections are dropped all the same. Paused between transactions: one stopped
        # half-way (a sweep holding row locks) would keep the lock below waiting for ever.
        await _pause_between_transactions(stack.worker.process.pid, watcher)
        try:
            transaction = locker.transaction()
            await transaction.start()
            # Requests that reach these tables wait on the lock: in flight when the
            # connections are dropped.
            await locker.execute("LOCK TABLE devices, device_tokens IN ACCESS EXCLUSIVE MODE")
            blocked = [
                *(admin.client.get("/api/v1/admin/devices") for _ in range(3)),
                *(client.post(f"{stack.b.url}{REGISTER}", json=scan_body(c["pairingUri"]))
                  for c in codes),
                *(client.post(f"{stack.b.url}{TOKEN}", json=device.credentials)
                  for _ in range(2)),
            ]  # fmt: skip
            tasks = [asyncio.ensure_future(request) for request in blocked]

            async def all_waiting() -> bool:
                # Less each replica's read of the credentials that ended, which may wait too.
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = $1 AND wait_event_type = 'Lock'"
                    " AND query NOT LIKE '%\"ended_at\">=%'",
                    FAULTS_DATABASE,
                )
                return int(waiting) >= len(tasks)

            await eventually(all_waiting, within=10)
            dropped = await watcher.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid NOT IN (pg_backend_pid(), $2)",
                FAULTS_DATABASE,
                locker.get_server_pid(),
            )
            await transaction.rollback()
        finally:
            await locker.close()
            await watcher.close()
            os.killpg(stack.worker.process.pid, signal.SIGCONT)
        dropped_at = time.monotonic()
        worker_offset = len(stack.worker.output())
        answers = await asyncio.gather(*tasks)

        # The next requests, on each replica, without a restart.
        after: list[int] = []
        for _ in range(20):
            for url in (stack.a.url, stack.b.url):
                response = await admin.client.get(f"{url}/api/v1/admin/devices")
                after.append(response.status_code)
        recovered = time.monotonic() - dropped_at

        async def worker_swept() -> bool:
            return "← sweep_presence ●" in stack.worker.output()[worker_offset:]

        worker_recovered = await eventually(worker_swept, within=RECOVERY_BOUND_SECONDS)
        # Refused, not half done: the codes are still unused and pair now.
        again = [
            await client.post(f"{stack.b.url}{REGISTER}", json=scan_body(c["pairingUri"]))
            for c in codes
        ]
    statuses = Counter(f"{r.status_code} {_code(r)}" for r in answers)
    print(
        f"\n{dropped} database connections dropped with {len(tasks)} requests waiting on a lock:"
        f" answers {dict(statuses)}; the next {len(after)} requests {dict(Counter(after))}"
        f" within {recovered:.1f} s; the refused registrations then"
        f" {[r.status_code for r in again]}; the worker swept again after"
        f" {worker_recovered:.1f} s"
    )
    assert statuses == Counter({"503 unavailable": len(tasks)}), statuses
    assert all(r.headers["retry-after"] == "5" for r in answers)
    assert after[-10:] == [200] * 10, after
    assert set(after) <= {200, 503}, after
    assert [r.status_code for r in again] == [201, 201]
    assert {s.port: s.process.pid for s in (stack.a, stack.b) if s.process is not None} == pids
    assert stack.worker.process is not None
    assert stack.worker.process.poll() is None
