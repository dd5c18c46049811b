"""Fuzzing: schemathesis draws requests for every operation of the served OpenAPI document
(valid and invalid ones, authenticated as the operation asks), and each answer must be no 5xx,
a documented status with a body that matches its schema, and on every error
`application/problem+json` with a code the operation documents. Hypothesis then throws
arbitrary JSON at the doors a stranger can knock on (register, the device token exchange,
the admin-app exchange) and checks that nothing is paired and no token issued.

The runs are derandomized, so CI sees the same examples each time;
`POLARIS_FUZZ_EXAMPLES=500` runs a longer, freshly seeded search. Both backends run it: what
a drawn string does in the database is the backend's business (PostgreSQL refuses U+0000 in
text where SQLite stores it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import CheckContext, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.openapi import build_document
from app.api.problem_codes import MEANINGS
from app.edge.problems import PROBLEM_CONTENT_TYPE, STATUS_BY_CODE
from app.models import Device, DeviceToken, Role, User
from app.settings import Settings
from simulator.admin import APP_EXCHANGE, DEVICES, LOGIN, AdminAppTokens
from simulator.protocol import HEARTBEAT, REGISTER, TOKEN, Credentials, DeviceApi, PkcePair
from tests import admin_phone
from tests.factories import CSRF_COOKIE, SignedInClient, make_user, pair_scanner, sign_in
from tests.scanner import bearer, scan_body, typed_body

DOCUMENT = build_document()
# CI draws the same examples every run; a longer run set by hand explores new ones each time
# (Hypothesis prints the seed of a failure).
LONG_RUN = "POLARIS_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("POLARIS_FUZZ_EXAMPLES", "15"))
OPENAPI = "/api/openapi.json"
METRICS_TOKEN = "fuzzing-metrics-token-0123456789"
USERS = "/api/v1/admin/users"
FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    database=None,
    deadline=None,
    # The app and its signed-in callers are built once per test, not per example, on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Limits high enough that the fuzzer reaches the routes instead of the rate limiter;
    # `rate_limited` itself is proven in test_openapi.py.
    generous = "100000/minute"
    return settings.model_copy(
        update={
            "metrics_token": SecretStr(METRICS_TOKEN),
            "redeem_failures_per_ip": generous,
            "redeem_failures_global": generous,
            "login_failures_per_account": generous,
            "login_failures_per_ip": generous,
            "heartbeats_per_device": generous,
        }
    )


@cache
def _schema(served: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            # The test supplies real credentials; drawn ones would only be refused at the door.
            "generation": {"with-security-parameters": False},
            "checks": {
                "negative_data_rejection": {
                    # Every refusal of malformed input the document lists.
                    "expected-statuses": ["400", "401", "403", "404", "413", "415", "422"],
                }
            },
        }
    )
    return schemathesis.openapi.from_dict(json.loads(served), config=config)


@cache
def _cases(
    served: str, template: str, method: str, known: tuple[tuple[str, str], ...]
) -> st.SearchStrategy[Any]:
    """Valid and invalid requests; with path parameters, also valid ones naming real rows."""
    endpoint = _schema(served)[template][method.upper()]
    strategies = [
        endpoint.as_strategy(GenerationMode.POSITIVE),
        endpoint.as_strategy(GenerationMode.NEGATIVE),
    ]
    if known:
        strategies.append(
            endpoint.as_strategy(GenerationMode.POSITIVE, path_parameters=dict(known))
        )
    return st.one_of(strategies)


def _problem_codes(described: dict[str, Any]) -> set[str]:
    """Every problem code the document lets this operation answer with."""
    codes: set[str] = set()
    for answer in described["responses"].values():
        schema = answer.get("content", {}).get(PROBLEM_CONTENT_TYPE, {}).get("schema")
        if schema is not None:
            codes.update(schema["allOf"][1]["properties"]["code"]["enum"])
    return codes


def _problem_check(codes: set[str]) -> Callable[[CheckContext, Any, Any], bool | None]:
    def problem_json_on_errors(_: CheckContext, response: Any, case: Any) -> bool | None:
        if response.status_code < 400:
            return None
        media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
        assert media_type == PROBLEM_CONTENT_TYPE, f"{case.method} {case.path}: {media_type}"
        body = response.json()
        assert body.get("code") in codes, f"{body} is not a code documented for {case.operation}"
        assert STATUS_BY_CODE[body["code"]] == response.status_code == body["status"]
        assert body["type"] == f"urn:polaris:problem:{body['code']}"
        return True

    return problem_json_on_errors


@dataclass
class World:
    """The callers an operation needs and the real ids its path parameters can name, each
    built the first time an operation asks for it (an admin's sign-in costs an argon2 hash)."""

    client: httpx.AsyncClient
    device_client: httpx.AsyncClient
    _admin: SignedInClient | None = None
    _device: Credentials | None = None
    _device_token: str | None = None
    _phone: AdminAppTokens | None = None
    _ids: dict[str, dict[str, str]] = field(default_factory=dict)

    async def console(self) -> SignedInClient:
        """The admin's session as the browser holds it now: an answer may have renewed the
        double-submit CSRF cookie, and the console's script echoes the current one."""
        if self._admin is None or CSRF_COOKIE not in self.client.cookies:
            self._admin = await sign_in(self.client, await self._admin_user())
        return replace(self._admin, csrf_token=self.client.cookies[CSRF_COOKIE])

    async def _admin_user(self) -> User:
        if self._admin is not None:
            return self._admin.user
        return await make_user(Role.ADMIN)

    def signed_out(self) -> None:
        """The fuzzer logged the console out: the next caller signs in again."""
        self.client.cookies.clear()

    async def device(self) -> Credentials:
        if self._device is None:
            self._device = await pair_scanner(await self.console(), self.device_client)
        return self._device

    async def device_token(self) -> str:
        if self._device_token is None:
            api = DeviceApi(self.device_client)
            self._device_token = (await api.access_token(await self.device())).token
        return self._device_token

    async def phone(self) -> AdminAppTokens:
        if self._phone is None:
            self._phone = await admin_phone.connect(await self.console(), self.device_client)
        return self._phone

    async def caller(
        self, requirement: dict[str, list[str]]
    ) -> tuple[httpx.AsyncClient, dict[str, str]]:
        """A client and headers that meet one security requirement of the document."""
        if "consoleSession" in requirement:
            console = await self.console()
            return self.client, console.write_headers() if "csrfHeader" in requirement else {}
        if "deviceBearer" in requirement:
            return self.device_client, bearer(await self.device_token())
        if "adminAppBearer" in requirement:
            return self.device_client, bearer((await self.phone()).access_token)
        if "metricsBearer" in requirement:
            return self.device_client, bearer(METRICS_TOKEN)
        assert not requirement, f"unknown security requirement {requirement}"
        return self.device_client, {}

    async def path_ids(self, template: str) -> dict[str, str]:
        """Real ids for the operation's path parameters, so the fuzzer reaches past 404."""
        if template not in self._ids:
            self._ids[template] = await self._real_ids(template)
        return self._ids[template]

    async def _real_ids(self, template: str) -> dict[str, str]:
        if template.startswith("/api/v1/admin/pairing-sessions/"):
            # A typed code with its device waiting, so approve and reject have work to do.
            minted = await (await self.console()).api.mint_code()
            pending = await self.device_client.post(REGISTER, json=typed_body(minted.code))
            assert pending.status_code == 202, pending.text
            return {"session_id": minted.pairing_session_id}
        if template.startswith("/api/v1/admin/app/devices/"):
            return {"device_id": (await self.phone()).device_id}
        device = await self.device()
        detail = await (await self.console()).api.device(device.device_id)
        return {"device_id": device.device_id, "token_id": detail["tokens"][0]["tokenId"]}


@pytest.fixture
def world(client: httpx.AsyncClient, device_client: httpx.AsyncClient) -> World:
    return World(client, device_client)


@pytest.fixture
async def served(device_client: httpx.AsyncClient) -> httpx.Response:
    """The document the app serves: the fuzzer draws its requests from it."""
    response = await device_client.get(OPENAPI)
    assert response.status_code == 200
    return response


def _request(case: Any, headers: dict[str, str]) -> dict[str, Any]:
    """What schemathesis would send, for httpx in the test's own event loop (the app's
    database connections live there)."""
    sent = case.as_transport_kwargs(base_url="http://testserver")
    request: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "params": sent.get("params") or None,
        "headers": {**sent["headers"], **headers},
    }
    if sent.get("cookies"):
        jar = "; ".join(f"{k}={v}" for k, v in sent["cookies"].items())
        request["headers"]["Cookie"] = jar
    if "json" in sent:
        request["content"] = json.dumps(sent["json"], allow_nan=False).encode()
    elif sent.get("data") is not None:
        data = sent["data"]
        request["content"] = data if isinstance(data, bytes) else str(data).encode()
    return request


def _documented_operations() -> list[Any]:
    return [
        pytest.param(template, method, id=described["operationId"])
        for template, item in DOCUMENT["paths"].items()
        for method, described in item.items()
    ]


@pytest.mark.parametrize(("template", "method"), _documented_operations())
@FUZZ
@given(data=st.data())
async def test_every_operation_answers_as_documented(
    template: str, method: str, world: World, served: httpx.Response, data: st.DataObject
) -> None:
    described = served.json()["paths"][template][method]
    check = _problem_check(_problem_codes(described))
    known = await world.path_ids(template) if "{" in template else {}
    case = data.draw(_cases(served.text, template, method, tuple(known.items())), label="case")
    requirement = data.draw(st.sampled_from(described["security"] or [{}]), label="auth")
    client, headers = await world.caller(requirement)

    response = await client.request(**_request(case, headers))

    case.validate_response(response, checks=CHECKS, additional_checks=[check])
    if described["operationId"] == "logout" and response.status_code == 204:
        world.signed_out()


async def test_a_battery_level_must_be_a_number_not_a_look_alike(
    device_client: httpx.AsyncClient, access_token: str
) -> None:
    """Found by the fuzzer: lax parsing took `false` and `"0.5"` for the documented number.
    The first heartbeat goes through the route, the later ones through the fast path."""
    assert (await device_client.post(HEARTBEAT, headers=bearer(access_token))).status_code == 200
    for battery in (False, True, "0.5", [0.5]):
        answer = await device_client.post(
            HEARTBEAT, json={"batteryLevel": battery}, headers=bearer(access_token)
        )

        assert answer.status_code == 400, f"{battery!r}: {answer.text}"
        assert answer.json()["code"] == "validation_error"


# --- Hypothesis on the doors a stranger can knock on ---------------------------------

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "\u0000", "\ufeff", "K7QX-M2PD", "pxd_", "pxs_", "💥" * 8])
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner)


ANY_JSON = st.recursive(_LEAVES, _containers, max_leaves=12)
# Raw bodies a JSON library may trip on: deep nesting, huge numbers, odd escapes.
RAW_BODIES = st.one_of(
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.integers(1, 8000).map(lambda digits: b'{"code": ' + b"9" * digits + b"}"),
    st.sampled_from(
        [
            b'{"code": 1e999999}',
            b'{"code": -0.0e-99999}',
            b'{"deviceToken": "\\ud800", "deviceSecret": "\\udfff"}',
            b'{"code": "\\u0000\\u0000"}',
            b"\xff\xfe{}",
            b'{"code": "a", "code": "b"}',
            b"",
            b"null",
        ]
    ),
    st.binary(max_size=64),
)


def _not_a_string(optional: bool) -> st.SearchStrategy[Any]:
    """A value no schema accepts for a string field (null is fine where it is optional)."""
    return ANY_JSON.filter(
        lambda value: not isinstance(value, str) and not (optional and value is None)
    )


def _documented(template: str) -> Callable[[httpx.Response], str]:
    """The check that an answer to this POST is a problem the document lists for it."""
    codes = _problem_codes(DOCUMENT["paths"][template]["post"])

    def refused(response: httpx.Response) -> str:
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE, response.text
        body = response.json()
        assert body["code"] in codes, body
        assert body["code"] in MEANINGS, body
        assert STATUS_BY_CODE[body["code"]] == response.status_code == body["status"], body
        return str(body["code"])

    return refused


register_refused = _documented(REGISTER)
token_refused = _documented(TOKEN)
app_exchange_refused = _documented(APP_EXCHANGE)


async def _nothing_paired() -> None:
    """No scanner, no admin-app phone, no credentials."""
    assert await Device.all().count() == 0
    assert await DeviceToken.all().count() == 0


JSON = {"Content-Type": "application/json"}
Post = Callable[[bytes], Awaitable[httpx.Response]]


def _poster(client: httpx.AsyncClient, path: str) -> Post:
    async def post(content: bytes) -> httpx.Response:
        return await client.post(path, content=content, headers=JSON)

    return post


def _encoded(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.fixture
async def scanned_body(admin: SignedInClient) -> dict[str, Any]:
    """What a scanner would send for a live code the admin just minted and QR it showed."""
    minted = await admin.api.mint_code()
    return scan_body(minted.pairing_uri, pkce=PkcePair.generate())


@FUZZ
@given(body=ANY_JSON | RAW_BODIES)
async def test_register_refuses_arbitrary_input_without_pairing(
    device_client: httpx.AsyncClient, scanned_body: dict[str, Any], body: Any
) -> None:
    register_refused(await _poster(device_client, REGISTER)(_encoded(body)))
    await _nothing_paired()


REGISTER_STRINGS = (
    *("code", "codeChallenge", "label", "platform", "model", "osVersion", "appVersion"),
    *("apnsEnvironment", "pairingProof", "pushToken"),
)


@st.composite
def _spoilt(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """A valid scanned registration with one thing made wrong: a field of the wrong type or
    with a NUL character, an unknown field, a required field left out, or capabilities
    outside the configured set."""
    spoilt = dict(body)
    how = draw(st.sampled_from(["type", "nul", "unknown", "missing", "capabilities"]))
    if how == "nul":
        name = draw(st.sampled_from([n for n in REGISTER_STRINGS if n in body]))
        at = draw(st.integers(0, len(body[name])))
        spoilt[name] = body[name][:at] + "\x00" + body[name][at:]
    elif how == "type":
        name = draw(st.sampled_from(REGISTER_STRINGS))
        spoilt[name] = draw(_not_a_string(optional=name in ("pairingProof", "pushToken")))
    elif how == "unknown":
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in body))
        spoilt[name] = draw(ANY_JSON)
    elif how == "missing":
        required = [n for n in body if n not in ("pushToken", "pairingProof")]
        del spoilt[draw(st.sampled_from(required))]
    else:
        spoilt["capabilities"] = draw(
            st.lists(ANY_JSON, max_size=20).filter(
                lambda caps: not caps or any(c not in ("managed", "scan", "push") for c in caps)
            )
        )
    return spoilt


@FUZZ
@given(data=st.data())
async def test_register_with_one_field_spoilt_never_pairs(
    device_client: httpx.AsyncClient, scanned_body: dict[str, Any], data: st.DataObject
) -> None:
    body = data.draw(_spoilt(scanned_body), label="body")

    code = register_refused(await _poster(device_client, REGISTER)(_encoded(body)))

    assert code == "validation_error"
    await _nothing_paired()


async def test_a_nul_character_is_refused_before_it_reaches_the_database(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    """PostgreSQL text cannot hold U+0000; every body and query string is refused alike."""
    nul = "ops\x00@example.com"
    user = {"email": nul, "password": "long enough password", "role": "operator"}
    answers = [
        await admin.client.post(USERS, json=user, headers=admin.write_headers()),
        await device_client.post(LOGIN, json={"email": nul, "password": "x\x00"}),
        await admin.client.get(DEVICES, params={"q": "dock\x00"}),
    ]

    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "validation_error"


async def test_register_refuses_a_nul_character_in_any_text_field(
    device_client: httpx.AsyncClient, scanned_body: dict[str, Any]
) -> None:
    post = _poster(device_client, REGISTER)
    for name in REGISTER_STRINGS:
        body = {**scanned_body, name: scanned_body[name][:4] + "\x00" + scanned_body[name][4:]}

        assert register_refused(await post(_encoded(body))) == "validation_error", name
    await _nothing_paired()


@FUZZ
@given(body=ANY_JSON | RAW_BODIES)
async def test_token_exchange_refuses_arbitrary_input(
    device_client: httpx.AsyncClient, device: Credentials, body: Any
) -> None:
    token_refused(await _poster(device_client, TOKEN)(_encoded(body)))


def _altered(value: str) -> st.SearchStrategy[str]:
    """The credential with a piece cut, swapped or appended: never the credential itself."""
    cut = st.integers(0, len(value)).map(lambda n: value[:n])
    swapped = st.tuples(st.integers(0, len(value) - 1), st.characters()).map(
        lambda at: value[: at[0]] + at[1] + value[at[0] + 1 :]
    )
    appended = st.text(min_size=1, max_size=8).map(lambda extra: value + extra)
    return st.one_of(cut, swapped, appended, st.text(max_size=80)).filter(lambda v: v != value)


@FUZZ
@given(data=st.data())
async def test_token_exchange_never_issues_for_altered_credentials(
    device_client: httpx.AsyncClient, device: Credentials, data: st.DataObject
) -> None:
    post_token = _poster(device_client, TOKEN)
    token, secret = device.device_token, device.device_secret
    which = data.draw(st.sampled_from(["token", "secret", "both"]), label="altered")
    if which in ("token", "both"):
        token = data.draw(_altered(token), label="deviceToken")
    if which in ("secret", "both"):
        secret = data.draw(_altered(secret), label="deviceSecret")
    body = {"deviceToken": token, "deviceSecret": secret}

    code = token_refused(await post_token(_encoded(body)))

    assert code in ("invalid_credentials", "validation_error"), code
    # A wrong guess neither issued a token nor locked the real pair out.
    real = {"deviceToken": device.device_token, "deviceSecret": device.device_secret}
    assert (await post_token(_encoded(real))).status_code == 200


@pytest.fixture
async def app_qr_token(admin: SignedInClient) -> str:
    """A live admin-app QR token, so a body that named it could connect a phone."""
    return str((await admin_phone.generate(admin))["payload"]["token"])


@FUZZ
@given(data=st.data())
async def test_app_exchange_refuses_arbitrary_or_altered_tokens(
    device_client: httpx.AsyncClient, app_qr_token: str, data: st.DataObject
) -> None:
    body = data.draw(
        ANY_JSON
        | RAW_BODIES
        | _altered(app_qr_token).map(admin_phone.app_body)
        | st.builds(
            admin_phone.app_body,
            st.just(app_qr_token),
            platform=ANY_JSON.filter(lambda p: p not in ("ios", "android")),
        ),
        label="body",
    )

    app_exchange_refused(await _poster(device_client, APP_EXCHANGE)(_encoded(body)))
    await _nothing_paired()
