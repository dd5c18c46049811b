"""Refused redemptions and polls of a code, kept for the admin who minted it
(docs/runbooks/register-scanner.md, "Failed attempts"): each refusal of an existing session
with its reason, address and user agent, at most 20 per code, newest first, nothing of what
was sent; an unknown code or a success records nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from app import clock
from app.models import PairingAttempt
from simulator.protocol import POLL, REGISTER, PkcePair
from tests.factories import SignedInClient, mint_code
from tests.scanner import poll_body, scan_body, typed_body
from tests.wire import assert_problem

DEVICE_IP = "198.51.100.23"  # the `device_client` fixture's address
AGENT = "PolarisScanner/2.4.0 (iPhone15,2; iOS 17.5)"
WRONG_PROOF = "w" * 43
LOOSE = pytest.mark.parametrize(
    "settings",
    [{"redeem_failures_per_ip": "1000/minute", "redeem_failures_global": "1000/minute"}],
    indirect=True,
    ids=[""],
)


def as_agent(agent: str = AGENT) -> dict[str, str]:
    return {"User-Agent": agent}


async def attempts(admin: SignedInClient, session_id: str) -> list[dict[str, Any]]:
    shown = await admin.client.get(f"/api/v1/admin/pairing-sessions/{session_id}")
    assert shown.status_code == 200, shown.text
    listed: list[dict[str, Any]] = shown.json()["attempts"]
    return listed


def brief(listed: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None]]:
    return [(a["outcome"], a["reason"], a["ip"], a["userAgent"]) for a in listed]


async def test_wrong_proofs_are_listed_and_the_fifth_says_it_burned_the_code(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    wrong = scan_body(minted["pairingUri"], pairingProof=WRONG_PROOF)

    answers = [await device_client.post(REGISTER, json=wrong, headers=as_agent()) for _ in range(6)]

    assert [a.json()["code"] for a in answers] == ["invalid_proof"] * 4 + ["session_burned"] * 2
    listed = await attempts(admin, minted["pairingSessionId"])
    assert brief(listed) == [
        ("refused", "session_burned", DEVICE_IP, AGENT),
        ("burned", "session_burned", DEVICE_IP, AGENT),
        *[("refused", "invalid_proof", DEVICE_IP, AGENT)] * 4,
    ]
    assert [a["atIso"] for a in listed] == sorted((a["atIso"] for a in listed), reverse=True)
    assert all(a["atIso"].endswith("Z") for a in listed)
    # What was sent is never kept.
    rows = await PairingAttempt.all().values()
    assert WRONG_PROOF not in str(rows)
    assert minted["code"] not in str(rows)


async def test_expired_and_used_codes_record_their_refusals(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    used = await mint_code(admin.client, admin.csrf_token)
    paired = await device_client.post(REGISTER, json=scan_body(used["pairingUri"]))
    assert paired.status_code == 201, paired.text
    expired = await mint_code(admin.client, admin.csrf_token)

    again = await device_client.post(
        REGISTER, json=scan_body(used["pairingUri"]), headers=as_agent()
    )
    clock.advance(timedelta(seconds=61))
    late = await device_client.post(REGISTER, json=typed_body(expired["code"]), headers=as_agent())

    assert_problem(again, 409, "code_already_used")
    assert_problem(late, 410, "code_expired")
    assert brief(await attempts(admin, used["pairingSessionId"])) == [
        ("refused", "code_already_used", DEVICE_IP, AGENT)
    ]
    assert brief(await attempts(admin, expired["pairingSessionId"])) == [
        ("refused", "code_expired", DEVICE_IP, AGENT)
    ]


async def test_a_success_and_an_unknown_code_record_nothing(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)

    unknown = await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ"), headers=as_agent())
    paired = await device_client.post(
        REGISTER, json=scan_body(minted["pairingUri"]), headers=as_agent()
    )

    assert_problem(unknown, 400, "invalid_code")
    assert paired.status_code == 201, paired.text
    assert await PairingAttempt.all().count() == 0
    assert await attempts(admin, minted["pairingSessionId"]) == []


@pytest.mark.parametrize("settings", [{"redeem_failures_global": "2/minute"}], indirect=True)
async def test_past_the_budget_a_failed_scan_is_listed_as_rate_limited(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    for _ in range(2):
        assert_problem(
            await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ")), 400, "invalid_code"
        )
    wrong = scan_body(minted["pairingUri"], pairingProof=WRONG_PROOF)

    refused = await device_client.post(REGISTER, json=wrong, headers=as_agent())
    # A typed code past the budget is refused before it is read: no session, no attempt.
    unread = await device_client.post(REGISTER, json=typed_body(minted["code"]), headers=as_agent())

    assert_problem(refused, 429, "rate_limited")
    assert_problem(unread, 429, "rate_limited")
    assert brief(await attempts(admin, minted["pairingSessionId"])) == [
        ("refused", "rate_limited", DEVICE_IP, AGENT)
    ]


async def test_poll_refusals_are_listed_but_waiting_is_not(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    phone = PkcePair.generate()
    pending = await device_client.post(REGISTER, json=typed_body(minted["code"], pkce=phone))
    pairing_id = pending.json()["pairingId"]

    waiting = await device_client.post(POLL, json=poll_body(pairing_id, phone))
    hurried = await device_client.post(POLL, json=poll_body(pairing_id, phone))
    stranger = await device_client.post(
        POLL, json=poll_body(pairing_id, PkcePair.generate()), headers=as_agent("curl/8.5.0")
    )
    rejected = await admin.client.post(
        f"/api/v1/admin/pairing-sessions/{minted['pairingSessionId']}/reject",
        headers=admin.write_headers(),
    )
    denied = await device_client.post(POLL, json=poll_body(pairing_id, phone), headers=as_agent())

    assert_problem(waiting, 400, "authorization_pending")
    assert_problem(hurried, 400, "slow_down")
    assert_problem(stranger, 400, "invalid_proof")
    assert rejected.status_code == 200, rejected.text
    assert_problem(denied, 403, "access_denied")
    assert brief(rejected.json()["attempts"]) == [
        ("refused", "invalid_proof", DEVICE_IP, "curl/8.5.0")
    ]
    assert brief(await attempts(admin, minted["pairingSessionId"])) == [
        ("refused", "access_denied", DEVICE_IP, AGENT),
        ("refused", "invalid_proof", DEVICE_IP, "curl/8.5.0"),
    ]


async def test_wrong_verifiers_burn_a_pending_pairing_and_say_so(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    pending = await device_client.post(REGISTER, json=typed_body(minted["code"]))
    stranger = poll_body(pending.json()["pairingId"], PkcePair.generate())

    answers = [await device_client.post(POLL, json=stranger, headers=as_agent()) for _ in range(6)]

    assert [a.json()["code"] for a in answers] == ["invalid_proof"] * 4 + ["session_burned"] * 2
    assert [
        (a["outcome"], a["reason"]) for a in await attempts(admin, minted["pairingSessionId"])
    ] == [
        ("refused", "session_burned"),
        ("burned", "session_burned"),
        *[("refused", "invalid_proof")] * 4,
    ]


@LOOSE
async def test_a_code_keeps_its_20_newest_attempts(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    clock.advance(timedelta(seconds=61))

    for n in range(25):
        refused = await device_client.post(
            REGISTER, json=typed_body(minted["code"]), headers=as_agent(f"agent-{n}")
        )
        assert_problem(refused, 410, "code_expired")

    listed = await attempts(admin, minted["pairingSessionId"])
    assert [a["userAgent"] for a in listed] == [f"agent-{n}" for n in range(24, 4, -1)]
    assert await PairingAttempt.all().count() == 20


async def test_a_long_user_agent_is_cut_and_a_missing_one_is_null(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    body = typed_body(minted["code"])
    clock.advance(timedelta(seconds=61))

    await device_client.post(REGISTER, json=body, headers=as_agent("A" * 300))
    # httpx sends its own User-Agent unless told otherwise.
    request = device_client.build_request("POST", REGISTER, json=body)
    del request.headers["user-agent"]
    await device_client.send(request)

    listed = await attempts(admin, minted["pairingSessionId"])
    assert [a["userAgent"] for a in listed] == [None, "A" * 256]


async def test_the_attempts_field_is_declared_in_the_openapi_document(
    admin: SignedInClient,
) -> None:
    document = (await admin.client.get("/api/openapi.json")).json()
    schemas = document["components"]["schemas"]

    session = schemas["PairingSessionView"]["properties"]["attempts"]
    assert session["type"] == "array"
    attempt = schemas["PairingAttemptView"]
    assert set(attempt["properties"]) == {"atIso", "outcome", "reason", "ip", "userAgent"}
    assert attempt["properties"]["outcome"]["enum"] == ["refused", "burned"]
    assert attempt["additionalProperties"] is False


async def test_the_console_says_why_a_burned_code_closed(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await mint_code(admin.client, admin.csrf_token)
    wrong = scan_body(minted["pairingUri"], pairingProof=WRONG_PROOF)
    for _ in range(5):
        await device_client.post(REGISTER, json=wrong, headers=as_agent())

    status = await admin.client.get(f"/admin/pairing/{minted['pairingSessionId']}")

    assert status.status_code == 200, status.text
    assert f"Closed after 5 wrong proofs; last from {DEVICE_IP}" in status.text
    assert f"5 failed attempts: wrong proof, closed the code from {DEVICE_IP}" in status.text
    assert status.text.count('data-testid="attempt"') == 5
    assert WRONG_PROOF not in status.text
