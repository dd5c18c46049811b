"""The runbook an admin follows to register a scanner, driven over HTTP (DESIGN §4)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app import clock
from app.models import AuditEvent, DeviceToken, PairingSession
from app.models.user import Role
from simulator.protocol import POLL, REGISTER, PkcePair
from tests.factories import make_user, mint_code, sign_in
from tests.scanner import PUSH_TOKEN, poll_body, scan_body, typed_body

TOKEN = "/api/devices/token"


async def test_mint_returns_code_and_pairing_uri_once(client: httpx.AsyncClient) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)

    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{8}", minted["code"])
    uri = urlsplit(minted["pairingUri"])
    assert (uri.scheme, uri.netloc) == ("polaris", "pair")
    query = parse_qs(uri.query)
    assert query["code"] == [minted["code"]]
    assert len(query["proof"][0]) >= 43
    assert query["origin"] == ["http://testserver"]

    stored = await PairingSession.get(id=minted["pairingSessionId"])
    assert minted["code"] not in stored.code_hash
    assert query["proof"][0] not in (stored.proof_challenge or "")
    shown = await client.get(f"/api/v1/admin/pairing-sessions/{minted['pairingSessionId']}")
    assert shown.json()["state"] == "minted"
    assert minted["code"] not in shown.text
    assert query["proof"][0] not in shown.text
    assert (shown.json()["expiresAtIso"]).endswith("Z")
    event = await AuditEvent.get(action="pairing.code.minted")
    assert minted["code"] not in str(event.metadata)


async def test_scanned_code_pairs_at_once_and_device_is_listed(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin_user = await make_user(Role.ADMIN)
    admin = await sign_in(client, admin_user)
    minted = await mint_code(client, admin.csrf_token)
    phone = PkcePair.generate()

    paired = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"], pkce=phone))

    assert paired.status_code == 201, paired.text
    assert paired.headers["cache-control"].startswith("no-store")
    creds = paired.json()
    assert set(creds) == {"deviceId", "deviceToken", "deviceSecret", "expiresAtIso", "capabilities"}
    assert creds["deviceToken"].startswith("pxd_")
    assert creds["deviceSecret"].startswith("pxs_")
    assert creds["capabilities"] == ["scan", "push"]
    device_id = creds["deviceId"]

    listing = (await client.get("/api/v1/admin/devices")).json()
    assert [d["deviceId"] for d in listing["items"]] == [device_id]
    listed = listing["items"][0]
    assert listed["ownerEmail"] == admin_user.email
    assert listed["ownerUserId"] == str(admin_user.id)
    assert listed["online"] is False

    detail = (await client.get(f"/api/v1/admin/devices/{device_id}")).json()
    assert len(detail["tokens"]) == 1
    assert detail["tokens"][0]["state"] == "active"
    assert detail["pushTokenLast8"] == PUSH_TOKEN[-8:]
    for secret in (creds["deviceToken"], creds["deviceSecret"], minted["code"]):
        assert secret not in str(detail)

    registered = await AuditEvent.get(action="device.registered")
    issued = await AuditEvent.get(action="device.token.issued")
    assert registered.actor_id == issued.actor_id == str(admin_user.id)
    assert registered.metadata == {
        "deviceId": device_id,
        "kind": "scanner",
        "platform": "ios",
        "model": "iPhone15,2",
        "appVersion": "2.4.0",
        "capabilities": ["scan", "push"],
    }
    token = await DeviceToken.get(device_id=device_id)
    assert issued.metadata == {
        "deviceId": device_id,
        "tokenId": str(token.id),
        "tokenHashPrefix": token.token_hash[:8],
    }
    assert creds["deviceSecret"] not in (token.secret_hash + token.token_hash)
    audit_page = (await client.get("/api/v1/admin/audit", params={"deviceId": device_id})).json()
    assert {e["action"] for e in audit_page["items"]} == {
        "device.registered",
        "device.token.issued",
    }

    again = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))
    assert again.status_code == 409
    assert again.json()["code"] == "code_already_used"


async def test_typed_code_waits_for_the_minting_admins_approval(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    phone = PkcePair.generate()
    typed = minted["code"].lower()
    typed = f"{typed[:4]} - {typed[4:]}"

    pending = await device_client.post(REGISTER, json=typed_body(typed, pkce=phone))

    assert pending.status_code == 202, pending.text
    body = pending.json()
    assert body["status"] == "pending_approval"
    assert re.fullmatch(r"\d{6}", body["checkCode"])
    assert body["interval"] == 5
    session_url = f"/api/v1/admin/pairing-sessions/{minted['pairingSessionId']}"
    shown = (await client.get(session_url)).json()
    assert shown["state"] == "pending_approval"
    assert shown["pendingDevice"]["checkCode"] == body["checkCode"]
    assert shown["pendingDevice"]["ip"] == "198.51.100.23"
    assert shown["pendingDevice"]["label"] == "Dock scanner 1"

    waiting = await device_client.post(POLL, json=poll_body(body["pairingId"], phone))
    assert waiting.status_code == 400
    assert waiting.json()["code"] == "authorization_pending"
    hurried = await device_client.post(POLL, json=poll_body(body["pairingId"], phone))
    assert hurried.json()["code"] == "slow_down"

    other_admin_client = httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    )
    async with other_admin_client:
        other = await sign_in(
            other_admin_client, await make_user(Role.ADMIN, email="b@example.com")
        )
        foreign = await other_admin_client.post(
            session_url + "/approve", json={}, headers=other.write_headers()
        )
        assert foreign.status_code == 403

    approved = await client.post(
        session_url + "/approve", json={"capabilities": ["scan"]}, headers=admin.write_headers()
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "redeemed"

    clock.advance(timedelta(seconds=6))
    collected = await device_client.post(POLL, json=poll_body(body["pairingId"], phone))
    assert collected.status_code == 201, collected.text
    assert collected.json()["capabilities"] == ["scan"]
    twice = await device_client.post(POLL, json=poll_body(body["pairingId"], phone))
    assert twice.status_code == 409
    assert twice.json()["code"] == "code_already_used"
    assert (await client.get(session_url)).json()["deviceId"] == collected.json()["deviceId"]
    assert await AuditEvent.filter(action="device.registered").count() == 1


async def test_rejected_device_is_told_access_denied(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    phone = PkcePair.generate()
    pending = (
        await device_client.post(REGISTER, json=typed_body(minted["code"], pkce=phone))
    ).json()
    rejected = await client.post(
        f"/api/v1/admin/pairing-sessions/{minted['pairingSessionId']}/reject",
        headers=admin.write_headers(),
    )
    assert rejected.json()["state"] == "rejected"
    denied = await device_client.post(POLL, json=poll_body(pending["pairingId"], phone))
    assert denied.status_code == 403
    assert denied.json()["code"] == "access_denied"
    assert await AuditEvent.filter(action="pairing.rejected").count() == 1


async def test_poll_with_someone_elses_verifier_counts_and_burns(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    pending = (await device_client.post(REGISTER, json=typed_body(minted["code"]))).json()
    thief = PkcePair.generate()
    codes = [
        (await device_client.post(POLL, json=poll_body(pending["pairingId"], thief))).json()["code"]
        for _ in range(5)
    ]
    assert codes == ["invalid_proof"] * 4 + ["session_burned"]
    session = await PairingSession.get(id=minted["pairingSessionId"])
    assert session.state == "burned"


async def test_five_wrong_proofs_burn_the_code(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    phone = PkcePair.generate()
    wrong = scan_body(minted["pairingUri"], pkce=phone, pairingProof="x" * 43)
    codes = [(await device_client.post(REGISTER, json=wrong)).json()["code"] for _ in range(5)]
    assert codes == ["invalid_proof"] * 4 + ["session_burned"]
    right = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"], pkce=phone))
    assert right.status_code == 410
    assert right.json()["code"] == "session_burned"
    failures = await AuditEvent.filter(action="pairing.redeem_failed")
    assert len(failures) == 6
    assert all(minted["code"] not in str(f.metadata) for f in failures)
    assert {f.metadata["reason"] for f in failures} == {"invalid_proof", "session_burned"}


async def test_expiry_is_checked_by_the_redeeming_statement(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    start = clock.now()
    with clock.frozen(start):
        early = await mint_code(client, admin.csrf_token)
        late = await mint_code(client, admin.csrf_token)
    with clock.frozen(start + timedelta(seconds=59.9)):
        ok = await device_client.post(REGISTER, json=scan_body(early["pairingUri"]))
    with clock.frozen(start + timedelta(seconds=60.1)):
        expired = await device_client.post(REGISTER, json=scan_body(late["pairingUri"]))
        typed = await device_client.post(REGISTER, json=typed_body(late["code"]))
        shown = await client.get(f"/api/v1/admin/pairing-sessions/{late['pairingSessionId']}")
    assert ok.status_code == 201
    assert expired.status_code == 410
    assert expired.json()["code"] == "code_expired"
    assert typed.json()["code"] == "code_expired"
    assert shown.json()["state"] == "expired"


async def test_unknown_cancelled_and_redeemed_codes_never_pair(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    unknown = await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ"))
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_code"

    cancelled = await mint_code(client, admin.csrf_token)
    gone = await client.delete(
        f"/api/v1/admin/pairing-sessions/{cancelled['pairingSessionId']}",
        headers=admin.write_headers(),
    )
    assert gone.status_code == 204
    refused = await device_client.post(REGISTER, json=scan_body(cancelled["pairingUri"]))
    assert refused.json()["code"] == "invalid_code"
    assert await AuditEvent.filter(action="pairing.cancelled").count() == 1
    assert await AuditEvent.filter(action="device.registered").count() == 0


async def test_deregister_hides_the_device_and_kills_its_credentials(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    paired = (await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))).json()
    device_id = paired["deviceId"]
    credentials = {k: paired[k] for k in ("deviceToken", "deviceSecret")}
    assert (await device_client.post(TOKEN, json=credentials)).status_code == 200

    gone = await client.delete(f"/api/v1/admin/devices/{device_id}", headers=admin.write_headers())
    assert gone.status_code == 204
    useless = await device_client.post(TOKEN, json=credentials)
    assert (useless.status_code, useless.json()["code"]) == (401, "token_revoked")
    assert (await client.get("/api/v1/admin/devices")).json()["items"] == []
    everything = await client.get("/api/v1/admin/devices", params={"includeDeregistered": "true"})
    assert [d["state"] for d in everything.json()["items"]] == ["deregistered"]
    detail = (await client.get(f"/api/v1/admin/devices/{device_id}")).json()
    assert [t["state"] for t in detail["tokens"]] == ["revoked"]
    assert {e["action"] for e in detail["audit"]} >= {"device.deregistered", "device.token.revoked"}
    twice = await client.delete(f"/api/v1/admin/devices/{device_id}", headers=admin.write_headers())
    assert twice.status_code == 409
    # The code it was paired with stays used.
    replay = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))
    assert replay.json()["code"] == "code_already_used"


async def test_admin_revokes_one_credential(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    device_id = (await device_client.post(REGISTER, json=scan_body(minted["pairingUri"]))).json()[
        "deviceId"
    ]
    token_id = (await client.get(f"/api/v1/admin/devices/{device_id}")).json()["tokens"][0][
        "tokenId"
    ]
    url = f"/api/v1/admin/devices/{device_id}/tokens/{token_id}/revoke"
    revoked = await client.post(url, headers=admin.write_headers())
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert (await client.post(url, headers=admin.write_headers())).status_code == 409
    event = await AuditEvent.get(action="device.token.revoked")
    assert event.metadata["tokenId"] == token_id


async def test_operator_reads_but_may_not_change_the_fleet(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin_client = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with admin_client:
        admin = await sign_in(admin_client, await make_user(Role.ADMIN))
        minted = await mint_code(admin_client, admin.csrf_token)
    pending = await device_client.post(REGISTER, json=typed_body(minted["code"]))
    assert pending.status_code == 202
    operator = await sign_in(client, await make_user(Role.OPERATOR))
    headers = operator.write_headers()
    session_url = f"/api/v1/admin/pairing-sessions/{minted['pairingSessionId']}"

    assert (await client.get("/api/v1/admin/devices")).status_code == 200
    assert (await client.get(session_url)).status_code == 200
    assert (await client.get("/api/v1/admin/audit")).status_code == 200
    for method, url in [
        ("POST", "/api/v1/admin/pairing-sessions"),
        ("POST", session_url + "/approve"),
        ("POST", session_url + "/reject"),
        ("DELETE", session_url),
    ]:
        response = await client.request(method, url, json={}, headers=headers)
        assert response.status_code == 403, (method, url)
        assert response.json()["code"] == "forbidden"


async def test_anonymous_admin_calls_get_401(client: httpx.AsyncClient) -> None:
    for method, url in [
        ("POST", "/api/v1/admin/pairing-sessions"),
        ("GET", "/api/v1/admin/devices"),
        ("GET", "/api/v1/admin/audit"),
    ]:
        response = await client.request(method, url)
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


async def _pair(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient, csrf: str, **fields: Any
) -> str:
    minted = await mint_code(client, csrf)
    response = await device_client.post(REGISTER, json=scan_body(minted["pairingUri"], **fields))
    assert response.status_code == 201, response.text
    return str(response.json()["deviceId"])


async def test_fleet_list_pages_filters_and_searches(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    ids = []
    for label, platform in [("Dock 1", "ios"), ("Dock 2", "ipados"), ("Front desk", "macos")]:
        ids.append(
            await _pair(client, device_client, admin.csrf_token, label=label, platform=platform)
        )
        clock.advance(timedelta(seconds=1))

    first = (await client.get("/api/v1/admin/devices", params={"limit": 2})).json()
    assert [d["deviceId"] for d in first["items"]] == [ids[2], ids[1]]  # newest first
    second = (
        await client.get(
            "/api/v1/admin/devices", params={"limit": 2, "cursor": first["nextCursor"]}
        )
    ).json()
    assert [d["deviceId"] for d in second["items"]] == [ids[0]]
    assert second["nextCursor"] is None

    docks = (await client.get("/api/v1/admin/devices", params={"q": "dock"})).json()["items"]
    assert sorted(d["label"] for d in docks) == ["Dock 1", "Dock 2"]
    macs = (await client.get("/api/v1/admin/devices", params={"platform": "macos"})).json()["items"]
    assert [d["label"] for d in macs] == ["Front desk"]
    offline = (await client.get("/api/v1/admin/devices", params={"online": "false"})).json()
    assert len(offline["items"]) == 3

    page = await client.get("/admin/devices", params={"q": "dock"})
    assert page.status_code == 200
    assert "Dock 1" in page.text
    assert "Front desk" not in page.text


async def test_operator_cannot_revoke_or_deregister(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin_client = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with admin_client:
        admin = await sign_in(admin_client, await make_user(Role.ADMIN))
        device_id = await _pair(admin_client, device_client, admin.csrf_token)
        token_id = (await admin_client.get(f"/api/v1/admin/devices/{device_id}")).json()["tokens"][
            0
        ]["tokenId"]
    operator = await sign_in(client, await make_user(Role.OPERATOR))
    for method, url in [
        ("DELETE", f"/api/v1/admin/devices/{device_id}"),
        ("POST", f"/api/v1/admin/devices/{device_id}/tokens/{token_id}/revoke"),
        ("POST", f"/admin/devices/{device_id}/deregister"),
    ]:
        response = await client.request(method, url, headers=operator.write_headers())
        assert response.status_code == 403, (method, url)
    detail = (await client.get(f"/api/v1/admin/devices/{device_id}")).json()
    assert detail["state"] == "active"
    assert detail["tokens"][0]["state"] == "active"
