"""The OpenAPI 3.1 document of the JSON APIs, generated from the table of operations
(`app.api.operations`) and the pydantic models the routes parse and render; served at
`GET /api/openapi.json`."""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache
from http import HTTPStatus
from importlib.metadata import version
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.operations import OPERATIONS, Operation, Requirement, Text
from app.api.problem_codes import MEANINGS
from app.api.responses import OpenApiDocumentResponse
from app.edge.cookies import CSRF_COOKIE, SESSION_COOKIE
from app.edge.problems import PROBLEM_CONTENT_TYPE, STATUS_BY_CODE
from app.edge.responses import view_response

PATH = "/api/openapi.json"
SCHEMAS = "#/components/schemas/"
CSRF_HEADER_NAME = "X-CSRF-Token"
_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_PARAMETER_SCHEMAS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
}

TAGS = [
    ("Device pairing", "A scanner app redeems a one-time code for its credentials."),
    ("Device runtime", "Access tokens, heartbeats, push tokens and credential rotation."),
    ("Console session", "Sign in and out over JSON."),
    ("Pairing sessions", "Mint scanner codes; approve, reject or cancel a typed code."),
    ("Fleet", "The devices, their credentials and presence."),
    ("Audit log", "Who did what, newest first."),
    ("Users", "Console users, managed by admins."),
    ("Admin mobile app", "An admin's own phone: QR code, tokens, connected phones."),
    ("Webhooks", "Signed event deliveries (Standard Webhooks) to the endpoints admins add."),
    ("Service", "Health checks and this document."),
]

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "deviceBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A device access token (`typ` `device+jwt`, Ed25519) from `POST /api/devices/token`."
        ),
    },
    "adminAppBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "An admin-app access token (`typ` `admin+jwt`, Ed25519) from "
            "`POST /api/v1/admin/app/exchange-token` or `/refresh`; it acts as the admin who "
            "connected the app, with that admin's current role. Never a device token."
        ),
    },
    "metricsBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`METRICS_TOKEN`, as configured; for the Prometheus scraper only.",
    },
    "consoleSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The console session, set by `POST /api/v1/auth/login`.",
    },
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER_NAME,
        "description": (
            f"On writes made with the session cookie: the sign-in answer's `csrfToken`, "
            f"which must equal the `{CSRF_COOKIE}` cookie set with it."
        ),
    },
}


class _Generator(GenerateJsonSchema):
    """Pydantic's schemas without a title per field, and without defaults on answers (a
    field left out of an answer has no value to default to)."""

    def field_title_should_be_set(self, _schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if self.mode == "serialization":
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def router_path_to_template(path: str) -> str:
    """`/devices/{device_id:uuid}` as OpenAPI writes it: `/devices/{device_id}`."""
    return _PARAMETER.sub(r"{\1}", path)


Mode = Literal["validation", "serialization"]


def _models() -> list[tuple[type[BaseModel], Mode]]:
    seen: dict[tuple[type[BaseModel], Mode], None] = {}
    for operation in OPERATIONS:
        for model in (operation.body, operation.query):
            if model is not None:
                seen[(model, "validation")] = None
        for answer in operation.responses.values():
            if answer is not None and not isinstance(answer, Text):
                seen[(answer, "serialization")] = None
    return list(seen)


def _problem_schemas() -> dict[str, Any]:
    codes = [
        {"const": code, "description": MEANINGS[code], "x-status": status}
        for code, status in STATUS_BY_CODE.items()
    ]
    return {
        "FieldError": {
            "title": "FieldError",
            "type": "object",
            "properties": {
                "field": {"type": "string", "description": "Dotted path, as sent (camelCase)."},
                "message": {"type": "string"},
                "type": {"type": "string"},
            },
            "required": ["field", "message", "type"],
            "additionalProperties": False,
        },
        "Problem": {
            "title": "Problem",
            "description": (
                "RFC 9457 problem details. `code` is stable; `detail` is for people and may change."
            ),
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri",
                    "description": "`urn:polaris:problem:<code>`.",
                },
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "code": {"type": "string", "oneOf": codes},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {"$ref": SCHEMAS + "FieldError"},
                    "description": "With `validation_error`, when a schema refused the fields.",
                },
            },
            "required": ["type", "title", "status", "code", "detail"],
            "additionalProperties": False,
        },
    }


class _Schemas:
    """Every model's schema, once, under `components/schemas`; references to them by model."""

    def __init__(self) -> None:
        refs, definitions = models_json_schema(
            _models(), by_alias=True, ref_template=SCHEMAS + "{model}", schema_generator=_Generator
        )
        self.refs = refs
        self.definitions: dict[str, Any] = definitions.get("$defs", {})
        self.queries = {operation.query for operation in OPERATIONS if operation.query is not None}

    def ref(self, model: type[BaseModel], mode: Mode) -> JsonSchemaValue:
        return self.refs[(model, mode)]

    def definition(self, model: type[BaseModel]) -> dict[str, Any]:
        name = self.ref(model, "validation")["$ref"].removeprefix(SCHEMAS)
        found: dict[str, Any] = self.definitions[name]
        return found

    def components(self) -> dict[str, Any]:
        # A query string is documented as parameters, not as a body schema.
        queries = {self.ref(q, "validation")["$ref"].removeprefix(SCHEMAS) for q in self.queries}
        kept = {k: v for k, v in self.definitions.items() if k not in queries}
        return dict(sorted({**kept, **_problem_schemas()}.items()))


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is left out, never sent as null."""
    options = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and (k, v) != ("default", None)}
    return {**options[0], **rest}


_IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A fresh random value (a UUID) per request, sent again unchanged on every retry of "
        "it. A retry of a request already answered gets the same answer (with "
        "`Idempotent-Replayed: true`) for `IDEMPOTENCY_TTL_SECONDS`; a retry while the first "
        "is in flight gets `idempotency_key_in_flight`; the key sent with a different request "
        "gets `idempotency_key_reuse`."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
_REPLAYED: dict[str, Any] = {
    "Idempotent-Replayed": {
        "description": "`true` when the answer is the one kept for this `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _parameters(operation: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PARAMETER_SCHEMAS.get(convertor, {"type": "string"}),
        }
        for name, convertor in _PARAMETER.findall(operation.path)
    ]
    if operation.query is not None:
        definition = schemas.definition(operation.query)
        required = set(definition.get("required", []))
        for name, schema in definition["properties"].items():
            parameter = {"name": name, "in": "query", "required": name in required}
            schema = _without_null(schema)
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameters.append({**parameter, "schema": schema})
    if operation.idempotent:
        parameters.append(_IDEMPOTENCY_KEY)
    return parameters


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        # Named by its codes: HTTP's reason phrases change between Python versions (413).
        "description": "Problem: " + ", ".join(f"`{code}`" for code in codes) + ".",
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": {
                    "allOf": [
                        {"$ref": SCHEMAS + "Problem"},
                        {"properties": {"status": {"const": status}, "code": {"enum": codes}}},
                    ]
                }
            }
        },
    }
    if status in (429, 503):
        answer["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "required": status == 429,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return answer


def _responses(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    answers: dict[int, dict[str, Any]] = {}
    for status, model in operation.responses.items():
        answer: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if isinstance(model, Text):
            answer["content"] = {model.media_type: {"schema": {"type": "string"}}}
        elif model is not None:
            answer["content"] = {
                "application/json": {"schema": schemas.ref(model, "serialization")}
            }
        if operation.idempotent:
            answer["headers"] = _REPLAYED
        answers[status] = answer
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in sorted(operation.problem_codes()):
        by_status[STATUS_BY_CODE[code]].append(code)
    for status, codes in by_status.items():
        answers[status] = _problem_response(status, codes)
    return {str(status): answers[status] for status in sorted(answers)}


def security(operation: Operation) -> list[Requirement]:
    """A write made with the console session also sends the CSRF header."""
    csrf: Requirement = {"csrfHeader": []} if operation.checks_csrf else {}
    return [
        {**requirement, **csrf} if "consoleSession" in requirement else dict(requirement)
        for requirement in operation.access.requirements
    ]


def _description(operation: Operation) -> str:
    parts = [operation.description, operation.access.role]
    return " ".join(part for part in parts if part)


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {
        "tags": [operation.tag],
        "summary": operation.summary,
        "operationId": operation.operation_id,
    }
    if description := _description(operation):
        described["description"] = description
    if parameters := _parameters(operation, schemas):
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schemas.ref(operation.body, "validation")}},
        }
    described["responses"] = _responses(operation, schemas)
    described["security"] = security(operation)
    return described


def build_document() -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for operation in OPERATIONS:
        template = router_path_to_template(operation.path)
        paths[template][operation.method.lower()] = _operation(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Polaris pairing service",
            "version": version("polaris"),
            "description": (
                "The JSON APIs of Polaris: scanner devices pair and report presence under "
                "`/api/devices`; the console, the admin mobile app and automation use "
                "`/api/v1`. Field names are camelCase; times are ISO 8601 in UTC. Every error "
                "is `application/problem+json` (RFC 9457) with a stable `code`. Request bodies "
                "are JSON only and unknown fields are refused."
            ),
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": dict(paths),
        "components": {"schemas": schemas.components(), "securitySchemes": SECURITY_SCHEMES},
    }


@cache
def _served() -> OpenApiDocumentResponse:
    return OpenApiDocumentResponse.model_validate(build_document())


async def openapi_json(_: Request) -> Response:
    return view_response(_served())


routes = [Route(PATH, openapi_json, methods=["GET"])]
