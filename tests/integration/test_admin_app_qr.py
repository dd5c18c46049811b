"""`POST /api/v1/admin/app/generate-qr` (DESIGN §6): the QR code that connects the admin app."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import AuditEvent, Device, PairingSession
from app.models.user import Role
from simulator.admin import APP_QR, AdminAppTokens
from tests.admin_phone import decode_qr, exchange, generate
from tests.factories import SignedInClient, make_user, sign_in
from tests.scanner import bearer
from tests.wire import assert_problem


@pytest.fixture
async def qr(admin: SignedInClient) -> dict[str, Any]:
    return await generate(admin)


async def test_generate_qr_answers_the_svg_and_the_documented_payload(qr: dict[str, Any]) -> None:
    assert set(qr) == {"qrSvg", "payload", "expiresAtIso"}
    payload = qr["payload"]
    assert payload == {
        "token": payload["token"],
        "apiBaseUrl": "http://testserver/api/v1",
        "logoUrl": None,
        "siteName": "Polaris",
    }
    assert qr["qrSvg"].startswith("<svg")
    assert "Admin app QR code" in qr["qrSvg"]


async def test_the_qr_token_has_256_bits(qr: dict[str, Any]) -> None:
    assert len(base64.urlsafe_b64decode(qr["payload"]["token"] + "=")) == 32


async def test_a_qr_code_is_valid_for_five_minutes(admin: SignedInClient) -> None:
    before = clock.now()

    qr = await generate(admin)

    expires_at = datetime.fromisoformat(qr["expiresAtIso"])
    assert timedelta(seconds=299) <= expires_at - before <= timedelta(seconds=301)


async def test_the_qr_token_is_stored_only_as_a_hash_tied_to_the_console_session(
    qr: dict[str, Any],
) -> None:
    session = await PairingSession.get(kind="admin_app")

    assert session.state == "minted"
    assert session.console_session_id is not None
    assert qr["payload"]["token"] not in session.code_hash


async def test_generating_a_qr_code_is_audited_without_the_token(
    admin: SignedInClient, qr: dict[str, Any]
) -> None:
    generated = await AuditEvent.get(action="app.qr.generated")

    assert generated.actor_id == str(admin.user.id)
    assert qr["payload"]["token"] not in json.dumps(generated.metadata)


async def test_qr_decodes_to_the_documented_compact_json_payload(
    app: Starlette, admin: SignedInClient, tmp_path: Path
) -> None:
    runtime(app).settings = runtime(app).settings.model_copy(
        update={"site_logo_url": "/static/brand/logo.png", "site_name": "Acme Logistics"}
    )
    qr = await generate(admin)

    decoded = decode_qr(qr["qrSvg"], tmp_path)

    assert decoded == json.dumps(qr["payload"], separators=(",", ":"))
    assert json.loads(decoded) == {
        "token": qr["payload"]["token"],
        "apiBaseUrl": "http://testserver/api/v1",
        "logoUrl": "http://testserver/static/brand/logo.png",
        "siteName": "Acme Logistics",
    }


async def test_a_new_qr_code_leaves_an_older_unexpired_one_valid(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    first = await generate(admin)
    second = await generate(admin)

    assert (await exchange(device_client, first["payload"]["token"])).status_code == 200
    assert (await exchange(device_client, second["payload"]["token"])).status_code == 200
    assert await Device.filter(kind="admin_app").count() == 2


# -- who may generate one ------------------------------------------------------------------


async def test_generating_a_qr_code_takes_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(APP_QR), 401, "not_authenticated")


async def test_operators_may_not_generate_a_qr_code(client: httpx.AsyncClient) -> None:
    operator = await sign_in(client, await make_user(Role.OPERATOR))

    refused = await client.post(APP_QR, headers=operator.write_headers())

    assert_problem(refused, 403, "forbidden")


async def test_generating_a_qr_code_takes_the_csrf_token(admin: SignedInClient) -> None:
    assert_problem(await admin.client.post(APP_QR), 403, "forbidden")


async def test_the_app_cannot_generate_codes_that_connect_more_apps(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    from_app = await device_client.post(APP_QR, headers=bearer(phone.access_token))

    assert_problem(from_app, 403, "forbidden")
    assert await PairingSession.filter(kind="admin_app").count() == 1
