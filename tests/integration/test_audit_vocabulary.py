"""Every audit action is something a real flow records, and the console's audit filter finds
each one: the vocabulary in `AuditAction` and what the service writes cannot drift apart.

The flows go through the HTTP API as the console, scanners and the admin's phone do; only
signing-key rotation (an operator's CLI command) and the expiry job are called directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from html.parser import HTMLParser

import httpx
import pytest
from starlette.applications import Starlette

from app import clock, jobs
from app.edge.runtime import runtime
from app.models import AuditAction, AuditEvent
from app.services import signing_keys, webhooks
from app.settings import Settings
from simulator.protocol import REGISTER, DeviceApi, new_installation_id
from tests.admin_phone import APP_DEVICES, cancel_from_console, connect, exchange, generate
from tests.admin_phone import refresh as refresh_app
from tests.factories import SignedInClient, make_user, mint_code, pair_scanner, sign_in
from tests.scanner import PUSH_TOKEN, scan_body, typed_body
from tests.wire import assert_problem, iso

A = AuditAction
LOGOUT = "/api/v1/auth/logout"
SESSIONS = "/api/v1/admin/pairing-sessions"
WEBHOOKS = "/api/v1/admin/webhooks"


@dataclass(frozen=True)
class World:
    app: Starlette
    client: httpx.AsyncClient  # the admin's browser
    device_client: httpx.AsyncClient  # scanners and the admin's phone
    settings: Settings

    async def admin(self, name: str) -> SignedInClient:
        return await sign_in(self.client, await make_user(email=f"{name}@example.com"))

    def past_race_window(self) -> None:
        """A rotated-out secret coming back after this is a kept copy."""
        clock.advance(timedelta(seconds=self.settings.rotation_race_window_seconds + 1))


# -- the flows, one per family of actions ----------------------------------------------------


async def accounts_flow(world: World) -> None:
    admin = await world.admin("accounts")

    signed_out = await world.client.post(LOGOUT, headers=admin.write_headers())

    assert signed_out.status_code == 204, signed_out.text


async def pairing_flow(world: World) -> None:
    admin = await world.admin("pairing")
    scanners = world.device_client
    await pair_scanner(admin, scanners)

    burned = await mint_code(world.client, admin.csrf_token)
    wrong = scan_body(burned["pairingUri"], pairingProof="x" * 43)
    codes = [(await scanners.post(REGISTER, json=wrong)).json()["code"] for _ in range(5)]
    assert codes == ["invalid_proof"] * 4 + ["session_burned"]

    approved = await mint_code(world.client, admin.csrf_token)
    claimed = await scanners.post(REGISTER, json=typed_body(approved["code"]))
    assert claimed.status_code == 202, claimed.text
    decision = await world.client.post(
        f"{SESSIONS}/{approved['pairingSessionId']}/approve",
        json={},
        headers=admin.write_headers(),
    )
    assert decision.json()["state"] == "redeemed", decision.text

    rejected = await mint_code(world.client, admin.csrf_token)
    await scanners.post(REGISTER, json=typed_body(rejected["code"]))
    decision = await world.client.post(
        f"{SESSIONS}/{rejected['pairingSessionId']}/reject", headers=admin.write_headers()
    )
    assert decision.json()["state"] == "rejected", decision.text

    cancelled = await mint_code(world.client, admin.csrf_token)
    gone = await world.client.delete(
        f"{SESSIONS}/{cancelled['pairingSessionId']}", headers=admin.write_headers()
    )
    assert gone.status_code == 204, gone.text

    await mint_code(world.client, admin.csrf_token)
    clock.advance(timedelta(seconds=world.settings.pairing_code_ttl_seconds + 1))
    context = jobs.JobContext(settings=world.settings, store=runtime(world.app).presence)
    assert await jobs.expire_pairing_sessions(context) == 1


async def credentials_flow(world: World) -> None:
    admin = await world.admin("credentials")
    device_api = DeviceApi(world.device_client)

    rotated = await pair_scanner(admin, world.device_client)
    access = await device_api.access_token(rotated)
    await device_api.upload_push_token(access, push_token=PUSH_TOKEN, apns_environment="sandbox")
    await device_api.rotate(rotated)
    raced = await world.device_client.post("/api/devices/token", json=rotated.wire())
    assert_problem(raced, 409, "conflict")
    world.past_race_window()
    replayed = await world.device_client.post("/api/devices/token", json=rotated.wire())
    assert_problem(replayed, 401, "token_revoked")

    revoked = await pair_scanner(admin, world.device_client)
    detail = await admin.api.device(revoked.device_id)
    await admin.api.revoke_token(revoked.device_id, detail["tokens"][0]["tokenId"])

    deregistered = await pair_scanner(admin, world.device_client)
    await admin.api.deregister(deregistered.device_id)

    # Last: the jump past the credentials' lifetime ends every console session too.
    expired = await pair_scanner(admin, world.device_client)
    clock.advance(timedelta(days=world.settings.device_credential_ttl_days, seconds=1))
    late = await world.device_client.post("/api/devices/token", json=expired.wire())
    assert_problem(late, 401, "token_expired")


async def clone_flow(world: World) -> None:
    admin = await world.admin("clones")
    device_api = DeviceApi(world.device_client)

    original = await pair_scanner(admin, world.device_client)
    await device_api.access_token(original)
    copy = replace(original, installation_id=new_installation_id())
    await device_api.access_token(copy)


async def admin_app_flow(world: World) -> None:
    admin = await world.admin("admin-app")
    phone = world.device_client

    qr = await generate(admin)
    first = await exchange(phone, qr["payload"]["token"])
    assert first.status_code == 200, first.text
    assert_problem(await exchange(phone, qr["payload"]["token"]), 409, "code_already_used")

    renewed = await refresh_app(phone, first.json()["refreshToken"])
    assert renewed.status_code == 200, renewed.text
    assert_problem(await refresh_app(phone, first.json()["refreshToken"]), 409, "conflict")
    world.past_race_window()
    assert_problem(await refresh_app(phone, first.json()["refreshToken"]), 401, "token_revoked")

    second = await connect(admin, phone)
    revoked = await world.client.delete(
        f"{APP_DEVICES}/{second.device_id}", headers=admin.write_headers()
    )
    assert revoked.status_code in (200, 204), revoked.text

    await cancel_from_console(admin)
    # Signing out kills the QR codes that console session showed and nobody used.
    await generate(admin)
    assert (await world.client.post(LOGOUT, headers=admin.write_headers())).status_code == 204


async def expiry_notice_flow(world: World) -> None:
    admin = await world.admin("expiry")
    await pair_scanner(admin, world.device_client)
    settings = world.settings
    clock.advance(
        timedelta(days=settings.device_credential_ttl_days - settings.credential_expiry_notice_days)
        + timedelta(days=1)
    )
    context = jobs.JobContext(settings=world.settings, store=runtime(world.app).presence)
    assert await jobs.notify_expiring_credentials(context) == 1


async def webhooks_flow(world: World) -> None:
    admin = await world.admin("webhooks")
    body = {"url": "https://93.184.215.14/polaris", "events": ["*"]}
    created = await world.client.post(WEBHOOKS, json=body, headers=admin.write_headers())
    assert created.status_code == 201, created.text
    endpoint = f"{WEBHOOKS}/{created.json()['webhookId']}"
    assert (await world.client.post(f"{endpoint}/test", headers=admin.write_headers())).is_success
    assert (await world.client.delete(endpoint, headers=admin.write_headers())).is_success

    # A receiver on loopback, allowed when created and refused when sent to, through a
    # one-retry schedule: the endpoint is disabled (the delivery job called directly).
    lenient = world.settings.model_copy(update={"webhook_allow_private_networks": True})
    local = await webhooks.create_endpoint(
        url="http://127.0.0.1:9/polaris",
        events=["*"],
        description="",
        actor=admin.user,
        ip=None,
        settings=lenient,
    )
    await webhooks.send_test(endpoint_id=local.endpoint.id, actor=admin.user, ip=None)
    strict = world.settings.model_copy(update={"webhook_retry_schedule": (0,)})
    for _ in range(2):
        assert await webhooks.deliver_due(clock.now(), strict) == 1


async def signing_keys_flow(world: World) -> None:
    await signing_keys.rotate(settings=world.settings, grace=timedelta(hours=1))


Flow = Callable[[World], Awaitable[None]]
SIGNED_IN = {A.USER_CREATED, A.USER_SIGNED_IN}
# family -> (flow, exactly the actions it records), in an order that runs in one world:
# the flows that move the clock by days come last.
FAMILIES: dict[str, tuple[Flow, set[AuditAction]]] = {
    "accounts": (accounts_flow, {*SIGNED_IN, A.USER_SIGNED_OUT}),
    "webhooks": (
        webhooks_flow,
        {
            *SIGNED_IN,
            A.WEBHOOK_CREATED,
            A.WEBHOOK_TEST_SENT,
            A.WEBHOOK_DELETED,
            A.WEBHOOK_DISABLED,
        },
    ),
    "pairing": (
        pairing_flow,
        {
            *SIGNED_IN,
            A.PAIRING_CODE_MINTED,
            A.DEVICE_REGISTERED,
            A.DEVICE_TOKEN_ISSUED,
            A.PAIRING_REDEEM_FAILED,
            A.PAIRING_BURNED,
            A.PAIRING_CLAIMED,
            A.PAIRING_APPROVED,
            A.PAIRING_REJECTED,
            A.PAIRING_CANCELLED,
            A.PAIRING_EXPIRED,
        },
    ),
    "admin_app": (
        admin_app_flow,
        {
            *SIGNED_IN,
            A.USER_SIGNED_OUT,
            A.APP_QR_GENERATED,
            A.APP_DEVICE_CONNECTED,
            A.APP_EXCHANGE_FAILED,
            A.APP_REFRESH_REPLAYED_IN_RACE_WINDOW,
            A.APP_REFRESH_REUSE_DETECTED,
            A.APP_DEVICE_REVOKED,
            A.APP_QR_CANCELLED,
        },
    ),
    "clones": (
        clone_flow,
        {
            *SIGNED_IN,
            A.PAIRING_CODE_MINTED,
            A.DEVICE_REGISTERED,
            A.DEVICE_TOKEN_ISSUED,
            A.DEVICE_CLONE_SUSPECTED,
        },
    ),
    "credentials": (
        credentials_flow,
        {
            *SIGNED_IN,
            A.PAIRING_CODE_MINTED,
            A.DEVICE_REGISTERED,
            A.DEVICE_TOKEN_ISSUED,
            A.DEVICE_PUSH_TOKEN_UPDATED,
            A.DEVICE_TOKEN_ROTATED,
            A.DEVICE_TOKEN_REPLAYED_IN_RACE_WINDOW,
            A.DEVICE_TOKEN_REUSE_DETECTED,
            A.DEVICE_TOKEN_REVOKED,
            A.DEVICE_DEREGISTERED,
            A.DEVICE_TOKEN_EXPIRED,
        },
    ),
    "expiry_notice": (
        expiry_notice_flow,
        {
            *SIGNED_IN,
            A.PAIRING_CODE_MINTED,
            A.DEVICE_REGISTERED,
            A.DEVICE_TOKEN_ISSUED,
            A.DEVICE_TOKEN_EXPIRING,
        },
    ),
    "signing_keys": (signing_keys_flow, {A.SIGNING_KEY_ROTATED}),
}


@pytest.fixture
def world(
    app: Starlette,
    client: httpx.AsyncClient,
    device_client: httpx.AsyncClient,
    settings: Settings,
) -> World:
    return World(app, client, device_client, settings)


async def recorded_actions() -> set[str]:
    return {event.action for event in await AuditEvent.all()}


def vocabulary_gap(recorded: set[str]) -> dict[str, list[str]]:
    members = {action.value for action in AuditAction}
    return {
        "never recorded": sorted(members - recorded),
        "recorded but not in AuditAction": sorted(recorded - members),
    }


@pytest.mark.parametrize("family", FAMILIES)
async def test_each_flow_records_exactly_its_family_of_actions(world: World, family: str) -> None:
    flow, actions = FAMILIES[family]

    await flow(world)

    recorded = await recorded_actions()
    expected = {action.value for action in actions}
    assert recorded == expected, {
        "missing": sorted(expected - recorded),
        "unexpected": sorted(recorded - expected),
    }


def test_the_families_together_name_every_audit_action() -> None:
    named = {action.value for _, actions in FAMILIES.values() for action in actions}

    assert vocabulary_gap(named) == {"never recorded": [], "recorded but not in AuditAction": []}


@pytest.fixture
async def everything(world: World) -> World:
    """One world in which every flow has run."""
    for flow, _ in FAMILIES.values():
        await flow(world)
    return world


async def test_real_flows_record_every_audit_action(everything: World) -> None:
    recorded = await recorded_actions()

    assert vocabulary_gap(recorded) == {"never recorded": [], "recorded but not in AuditAction": []}


# -- the console's audit filter --------------------------------------------------------------


class AuditPage(HTMLParser):
    """The audit page as a reader sees it: the action filter's options and the table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.options: list[str] = []
        # One (time, action) per row of the audit table: its <time>, the Action column's <code>.
        self.rows: list[tuple[str | None, str]] = []
        self.empty = False
        self._select = False
        self._table = False
        self._cells: list[list[str]] | None = None
        self._codes: list[str] | None = None
        self._in_code = False
        self._time: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "select" and attributes.get("name") == "action":
            self._select = True
        elif tag == "option" and self._select:
            self.options.append(attributes.get("value") or "")
        elif tag == "table" and attributes.get("data-testid") == "audit":
            self._table = True
        elif tag == "tr" and self._table:
            self._cells, self._time = [], None
        elif tag == "td" and self._cells is not None:
            self._codes = []
        elif tag == "code" and self._codes is not None:
            self._in_code = True
            self._codes.append("")
        elif tag == "time" and self._cells is not None:
            self._time = attributes.get("datetime")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = False
        elif tag == "table":
            self._table = False
        elif tag == "code":
            self._in_code = False
        elif tag == "td" and self._cells is not None and self._codes is not None:
            self._cells.append(self._codes)
            self._codes = None
        elif tag == "tr" and self._cells is not None:
            if self._cells:  # the header row has <th> cells only
                action_column = self._cells[2]
                assert len(action_column) == 1, action_column
                self.rows.append((self._time, action_column[0]))
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._in_code and self._codes:
            self._codes[-1] += data
        if "Nothing recorded" in data:
            self.empty = True


async def audit_page(reader: SignedInClient, action: str) -> AuditPage:
    response = await reader.client.get("/admin/audit", params={"action": action})
    assert response.status_code == 200, response.text
    page = AuditPage()
    page.feed(response.text)
    page.close()
    return page


async def stored_times(action: str) -> Counter[str | None]:
    return Counter(iso(event.at) for event in await AuditEvent.filter(action=action))


async def test_console_audit_filter_shows_exactly_the_entries_of_each_action(
    everything: World,
) -> None:
    # The clock moved on by months: the flows' console sessions have all timed out.
    reader = await everything.admin("auditor")
    wrong: dict[str, object] = {}

    for action in AuditAction:
        page = await audit_page(reader, action.value)
        shown = {
            "actions": sorted({row_action for _, row_action in page.rows}),
            "times": Counter(at for at, _ in page.rows),
            "empty": page.empty,
        }
        expected = {"actions": [action.value], "times": await stored_times(action), "empty": False}
        if shown != expected:
            wrong[action.value] = {"shown": shown, "stored": expected}

    assert wrong == {}


@pytest.mark.parametrize(
    "action", [A.DEVICE_TOKEN_ROTATED, A.APP_DEVICE_CONNECTED, A.PAIRING_EXPIRED]
)
async def test_console_audit_filter_finds_the_entries_of_one_flow(
    world: World, action: AuditAction
) -> None:
    family = next(name for name, (_, actions) in FAMILIES.items() if action in actions)
    flow, _ = FAMILIES[family]
    await flow(world)
    reader = await world.admin("auditor")

    page = await audit_page(reader, action.value)

    assert page.rows
    assert {row_action for _, row_action in page.rows} == {action.value}
    assert Counter(at for at, _ in page.rows) == await stored_times(action)


async def test_console_audit_filter_lists_every_action(world: World) -> None:
    page = await audit_page(await world.admin("auditor"), "")

    assert page.options[0] == ""  # "All actions"
    assert sorted(page.options[1:]) == sorted(action.value for action in AuditAction)
    assert len(page.options[1:]) == len(set(page.options[1:]))


async def test_console_audit_filter_says_when_nothing_matches(world: World) -> None:
    reader = await world.admin("auditor")

    nothing = await audit_page(reader, A.SIGNING_KEY_ROTATED.value)
    signed_in = await audit_page(reader, A.USER_SIGNED_IN.value)

    assert nothing.empty
    assert nothing.rows == []
    assert not signed_in.empty
    assert [action for _, action in signed_in.rows] == [A.USER_SIGNED_IN.value]
