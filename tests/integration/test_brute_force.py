"""Guessing a pairing code (docs/security.md, "Guessing a typed code"): the budgets per address
and over all clients, what a spoofed `X-Forwarded-For` is worth, the policy once the budget
over all clients is spent, and what a guessed code gets (pending approval, never credentials).

Budgets are small here so a test spends them in a few requests; their windows run on the wall
clock (the `limits` library), so none of these tests moves `app.clock`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from app.models import AuditEvent, Device
from simulator.protocol import POLL, REGISTER, TOKEN, PkcePair
from tests.admin_phone import exchange, generate
from tests.factories import SignedInClient, mint_code
from tests.harness import ServerProcess, base_env, run_cli
from tests.scanner import poll_body, scan_body, typed_body
from tests.wire import assert_problem

GUESS = "ZZZZ-ZZZZ"  # never minted: 40-bit codes do not come out as this in a test run
WRONG_PROOF = "x" * 43
LOOSE = "1000/minute"
# An attacker's own address, and a proxy in front of the service.
ATTACKER = "192.0.2.66"
PROXY = "10.0.0.2"

# A client calling from the given address.
At = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def budgets(**overrides: object) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("settings", [overrides], indirect=True, ids=[""])


@pytest.fixture
def at(app: Starlette) -> At:

    @asynccontextmanager
    async def connected(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 41000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return connected


async def guess(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post(REGISTER, json=typed_body(GUESS), headers=headers)


def retry_after(response: httpx.Response) -> int:
    assert_problem(response, 429, "rate_limited")
    value = response.headers["retry-after"]
    assert value.isdigit(), value
    return int(value)


# -- the budgets ------------------------------------------------------------------------------


@budgets(redeem_failures_per_ip="3/minute", redeem_failures_global=LOOSE)
async def test_failures_past_the_address_budget_answer_429_until_the_window_allows(
    device_client: httpx.AsyncClient,
) -> None:
    started = time.time()
    answers = [(await guess(device_client)).json()["code"] for _ in range(3)]
    refused = await guess(device_client)
    elapsed = time.time() - started

    assert answers == ["invalid_code"] * 3
    wait = retry_after(refused)
    # The first failure leaves the window 60 s after it was counted, not before.
    assert math.floor(60 - elapsed) <= wait <= 60, (wait, elapsed)


@budgets(redeem_failures_per_ip="3/minute", redeem_failures_global=LOOSE)
async def test_the_address_budget_does_not_hold_back_another_address(
    device_client: httpx.AsyncClient, at: At
) -> None:
    for _ in range(3):
        await guess(device_client)
    async with at(ATTACKER) as other:
        fresh = await guess(other)

    assert_problem(await guess(device_client), 429, "rate_limited")
    assert_problem(fresh, 400, "invalid_code")


@budgets(redeem_failures_global="5/minute")
async def test_the_budget_over_all_clients_is_shared_by_every_address(
    at: At,
) -> None:
    answers = []
    for n in range(6):
        async with at(f"192.0.2.{n + 1}") as client:
            answers.append(await guess(client))

    assert [a.json()["code"] for a in answers[:5]] == ["invalid_code"] * 5
    # A sixth address, with its own budget untouched, meets the spent global one.
    assert 1 <= retry_after(answers[5]) <= 60


@budgets(redeem_failures_global="5/minute")
async def test_concurrent_guesses_never_share_the_last_unit_of_the_budget(
    at: At,
) -> None:
    """Tested, then spent after the attempt, the budget let every racing guess through."""

    async def from_address(n: int) -> httpx.Response:
        async with at(f"192.0.2.{n + 1}") as client:
            return await guess(client)

    answers = await asyncio.gather(*(from_address(n) for n in range(30)))

    codes = sorted(a.json()["code"] for a in answers)
    assert codes == ["invalid_code"] * 5 + ["rate_limited"] * 25, codes


@pytest.mark.parametrize(
    ("settings", "via_proxy"),
    [
        pytest.param({"trusted_proxy_hops": 0, "redeem_failures_per_ip": "3/minute"}, False),
        pytest.param({"trusted_proxy_hops": 1, "redeem_failures_per_ip": "3/minute"}, True),
    ],
    indirect=["settings"],
    ids=["no-proxy-trusted", "one-proxy-trusted"],
)
async def test_a_spoofed_forwarded_for_does_not_give_a_fresh_budget(
    at: At, via_proxy: bool
) -> None:
    def spoofed() -> str:
        invented = f"203.0.113.{secrets.randbelow(250) + 1}"
        # Behind the proxy, the attacker's invented entries come first and the proxy
        # appends the address it saw; with no proxy trusted, the header is ignored whole.
        return f"{invented}, {ATTACKER}" if via_proxy else invented

    async with at(PROXY if via_proxy else ATTACKER) as client:
        answers = [await guess(client, **{"X-Forwarded-For": spoofed()}) for _ in range(4)]
        # Control: a different real client (the proxy's last hop, or the direct address)
        # is counted on its own.
        other = "198.51.100.99"
        control_headers = {"X-Forwarded-For": f"{spoofed()}, {other}"} if via_proxy else {}
        if via_proxy:
            control = await guess(client, **control_headers)
        else:
            async with at(other) as direct:
                control = await guess(direct)

    assert [a.json()["code"] for a in answers[:3]] == ["invalid_code"] * 3
    assert_problem(answers[3], 429, "rate_limited")
    assert_problem(control, 400, "invalid_code")
    failed = await AuditEvent.filter(action="pairing.redeem_failed")
    assert {event.ip for event in failed} == {ATTACKER, other}


@budgets(redeem_failures_per_ip="3/minute", redeem_failures_global=LOOSE)
async def test_a_success_does_not_reset_the_address_budget(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    answers = [await guess(device_client), await guess(device_client)]
    answers.append(await device_client.post(REGISTER, json=scan_body(minted["pairingUri"])))
    answers += [await guess(device_client), await guess(device_client)]

    # Three failures trip it, with or without a pairing among them.
    assert [a.status_code for a in answers] == [400, 400, 201, 400, 429]


@budgets(redeem_failures_global="3/minute")
async def test_every_code_evaluated_spends_the_budget_over_all_clients(
    admin: SignedInClient, at: At
) -> None:
    """A hit is a guess too: the budget bounds guesses, so a success never gives one back."""
    minted = await mint_code(admin.client, admin.csrf_token)
    async with at("192.0.2.1") as first, at("192.0.2.2") as second:
        answers = [await guess(first)]
        answers.append(await second.post(REGISTER, json=typed_body(minted["code"])))
        answers += [await guess(first), await guess(second)]

    assert [a.status_code for a in answers] == [400, 202, 400, 429]


# -- once the budget over all clients is spent -----------------------------------------------


@pytest.fixture
async def global_budget_spent(admin: SignedInClient, at: At) -> dict[str, str]:
    """A code minted, then the budget over all clients spent by guesses from elsewhere."""
    minted = await mint_code(admin.client, admin.csrf_token)
    for n in range(2):
        async with at(f"192.0.2.{n + 1}") as client:
            assert_problem(await guess(client), 400, "invalid_code")
    return minted


SPENT = budgets(redeem_failures_global="2/minute")


@SPENT
async def test_while_spent_a_typed_code_is_refused_even_when_right(
    admin: SignedInClient, device_client: httpx.AsyncClient, global_budget_spent: dict[str, str]
) -> None:
    refused = await device_client.post(REGISTER, json=typed_body(global_budget_spent["code"]))

    assert retry_after(refused) >= 1
    session = await admin.api.pairing_session(global_budget_spent["pairingSessionId"])
    assert session["state"] == "minted"


@SPENT
async def test_while_spent_a_scanned_code_with_its_proof_still_pairs(
    device_client: httpx.AsyncClient, global_budget_spent: dict[str, str]
) -> None:
    paired = await device_client.post(REGISTER, json=scan_body(global_budget_spent["pairingUri"]))

    assert paired.status_code == 201, paired.text
    assert await Device.filter(kind="scanner").count() == 1


@SPENT
@pytest.mark.parametrize("wrong", ["proof", "code"])
async def test_while_spent_a_failed_scan_answers_429_and_says_nothing_of_the_code(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    global_budget_spent: dict[str, str],
    wrong: str,
) -> None:
    body = scan_body(global_budget_spent["pairingUri"])
    body["pairingProof" if wrong == "proof" else "code"] = (
        WRONG_PROOF if wrong == "proof" else GUESS
    )

    answers = [await device_client.post(REGISTER, json=body) for _ in range(6)]

    # Right code or wrong, the same answer; and wrong proofs past the budget burn nothing.
    assert {a.status_code for a in answers} == {429}
    assert {a.json()["code"] for a in answers} == {"rate_limited"}
    session = await admin.api.pairing_session(global_budget_spent["pairingSessionId"])
    assert session["state"] == "minted"
    failed = await AuditEvent.filter(action="pairing.redeem_failed", ip="198.51.100.23")
    expected = "invalid_proof" if wrong == "proof" else "invalid_code"
    assert [event.metadata["reason"] for event in failed] == [expected] * 6


@budgets(redeem_failures_per_ip="1/minute", redeem_failures_global="1/minute")
async def test_the_address_budget_applies_first_even_to_a_scanned_code(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    await guess(device_client)

    refused = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))

    assert retry_after(refused) >= 1
    assert await Device.all().count() == 0


@SPENT
async def test_while_spent_a_genuine_admin_app_qr_token_still_connects(
    admin: SignedInClient, device_client: httpx.AsyncClient, at: At
) -> None:
    """Its token is 256 bits: the budget bounds nothing there, so it must not lock admins out."""
    qr = await generate(admin)
    for n in range(2):
        async with at(f"192.0.2.{n + 1}") as client:
            assert_problem(await exchange(client, secrets.token_urlsafe(32)), 400, "invalid_code")

    guessed = await exchange(device_client, secrets.token_urlsafe(32))
    connected = await exchange(device_client, qr["payload"]["token"])
    again = await exchange(device_client, qr["payload"]["token"])

    assert retry_after(guessed) >= 1
    assert connected.status_code == 200, connected.text
    assert retry_after(again) >= 1  # a used token, told only "later" while the budget is spent


# -- what a guessed code gets -----------------------------------------------------------------


async def test_a_guessed_typed_code_only_reaches_pending_approval(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    at: At,
) -> None:
    minted = await admin.api.mint_code()
    guesser_pkce = PkcePair.generate()
    async with at(ATTACKER) as guesser:
        claimed = await guesser.post(REGISTER, json=typed_body(minted.code, pkce=guesser_pkce))
        pairing_id = claimed.json()["pairingId"]
        polled = await guesser.post(POLL, json=poll_body(pairing_id, guesser_pkce))
        # Nothing it could present as credentials exists yet.
        forged = await guesser.post(
            TOKEN, json={"deviceToken": f"pxd_{'0' * 16}_{'A' * 32}", "deviceSecret": "pxs_x"}
        )

        assert claimed.status_code == 202, claimed.text
        assert claimed.json()["status"] == "pending_approval"
        assert_problem(polled, 400, "authorization_pending")
        assert forged.status_code in (400, 401), forged.text
        session = await admin.api.pairing_session(minted.pairing_session_id)
        assert session["state"] == "pending_approval"
        assert session["pendingDevice"]["ip"] == ATTACKER
        assert await admin.api.all_devices() == []

        # The admin compares check codes, sees a stranger and rejects: nothing ever pairs.
        await admin.api.reject(minted.pairing_session_id)
        denied = await guesser.post(POLL, json=poll_body(pairing_id, guesser_pkce))

    assert_problem(denied, 403, "access_denied")
    assert await admin.api.all_devices() == []
    assert await Device.all().count() == 0


async def test_a_guessed_typed_code_pairs_only_once_an_admin_approves(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    """The control of the test above: approval is the step that issues credentials."""
    minted = await admin.api.mint_code()
    pkce = PkcePair.generate()
    claimed = await device_client.post(REGISTER, json=typed_body(minted.code, pkce=pkce))
    pairing_id = claimed.json()["pairingId"]
    await admin.api.approve(minted.pairing_session_id)

    collected = await device_client.post(POLL, json=poll_body(pairing_id, pkce))

    assert collected.status_code == 201, collected.text
    token = await device_client.post(
        TOKEN,
        json={k: collected.json()[k] for k in ("deviceToken", "deviceSecret")},
    )
    assert token.status_code == 200, token.text


async def test_a_guessed_code_with_a_wrong_proof_never_pairs(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    wrong = scan_body(minted["pairingUri"], pairingProof=WRONG_PROOF)

    answers = [(await device_client.post(REGISTER, json=wrong)).json()["code"] for _ in range(5)]
    late = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))

    assert answers == ["invalid_proof"] * 4 + ["session_burned"]
    assert_problem(late, 410, "session_burned")
    assert await Device.all().count() == 0


# -- the odds, as the command line prints them ------------------------------------------------


def test_brute_force_odds_prints_the_defaults_odds(tmp_path: Path) -> None:
    result = run_cli(["brute-force-odds"], base_env(tmp_path))

    assert result.returncode == 0, result.stderr
    print(result.stdout)
    typed = result.stdout.split("admin-app QR token")[0]
    assert "200/minute over all clients: 200 per 60 s" in typed
    assert "at most 200\n" in typed
    assert "2^-32.4 = 1.82e-10" in typed
    assert "goal (at most 2^-32)    met" in typed
    assert "NOT MET" not in result.stdout


def test_brute_force_odds_fails_when_the_budget_allows_too_many_guesses(tmp_path: Path) -> None:
    result = run_cli(["brute-force-odds"], base_env(tmp_path, REDEEM_FAILURES_GLOBAL="1000/minute"))

    assert result.returncode == 1
    assert "2^-30.0" in result.stdout
    assert "NOT MET" in result.stdout


def test_serve_warns_at_start_when_the_budget_allows_too_many_guesses(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, base_env(tmp_path, REDEEM_FAILURES_GLOBAL="1000/minute"))
    server.start()
    try:
        output = server.output()
    finally:
        server.stop()

    assert "Warning:" in output
    assert "REDEEM_FAILURES_GLOBAL=1000/minute" in output
    assert "2^-30.0" in output
