"""The OpenAPI document as the tests' oracle: which documented operation a request is, and
whether an answer (status, media type, body, problem code) is one the document promises.

`Contract.watch(client)` checks every API answer a test client receives, so the existing
helpers (factories, scanner, admin phone, the simulator's clients) are held to the document
as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.main import API_PREFIXES

_URI = "urn:polaris:openapi"


@dataclass(frozen=True)
class Answer:
    operation_id: str
    status: int
    # The problem code, when the answer is a problem.
    code: str | None


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            _URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]
        self.seen: list[Answer] = []

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The documented template and operation of a request."""
        for pattern, template in self._templates:
            operation = self.document["paths"][template].get(method.lower())
            if operation is not None and pattern.match(path):
                return template, operation
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def check(
        self, method: str, path: str, status: int, content_type: str | None, body: bytes
    ) -> Answer:
        template, operation = self.operation(method, path)
        where = f"{method} {path} answered {status}"
        answer = operation["responses"].get(str(status))
        assert answer is not None, f"{where}, not documented for {operation['operationId']}"
        content = answer.get("content", {})
        if not content:
            assert body == b"", f"{where} with a body it documents none for"
            return self._seen(operation, status, None)
        media_type = (content_type or "").split(";", 1)[0].strip()
        assert media_type in content, f"{where} as {media_type!r}, documented {list(content)}"
        data: Any = json.loads(body) if media_type.endswith("json") else body.decode()
        schema = _pointer("paths", template, method.lower(), "responses", str(status))
        schema += "/" + _pointer("content", media_type, "schema")
        validator = OAS31Validator(
            {"$ref": f"{_URI}#/{schema}"},
            registry=self._registry,
            format_checker=oas31_format_checker,
        )
        errors = [f"{e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(data)]
        assert not errors, f"{where}: {'; '.join(errors)}: {data}"
        code = data["code"] if media_type == "application/problem+json" else None
        return self._seen(operation, status, code)

    def check_response(self, response: httpx.Response) -> Answer:
        request = response.request
        return self.check(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type"),
            response.content,
        )

    def _seen(self, operation: dict[str, Any], status: int, code: str | None) -> Answer:
        answer = Answer(operation["operationId"], status, code)
        self.seen.append(answer)
        return answer

    def watch(self, client: httpx.AsyncClient) -> None:
        """Check every API answer `client` receives against the document."""

        async def check(response: httpx.Response) -> None:
            if response.request.url.path.startswith(API_PREFIXES):
                await response.aread()
                self.check_response(response)

        hooks = client.event_hooks
        client.event_hooks = {**hooks, "response": [*hooks.get("response", []), check]}

    def success_statuses(self) -> set[tuple[str, int]]:
        """Every documented (operation, status) that is not a problem."""
        documented = set()
        for item in self.document["paths"].values():
            for operation in item.values():
                for status, answer in operation["responses"].items():
                    if "application/problem+json" not in answer.get("content", {}):
                        documented.add((operation["operationId"], int(status)))
        return documented
