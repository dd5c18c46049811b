"""The OpenAPI document as generated: valid, checked in, consistent with the problem codes,
the CSRF exemptions and the cookie names the app really uses."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

import pytest
from markdown.extensions.toc import slugify  # type: ignore[import-untyped]
from openapi_spec_validator import validate

from app import api_reference
from app.api.openapi import CSRF_HEADER_NAME, SECURITY_SCHEMES, build_document
from app.api.operations import OPERATIONS, SAFE_METHODS, Operation
from app.api.problem_codes import MEANINGS
from app.edge.cookies import CSRF_HEADER, SESSION_COOKIE
from app.edge.problems import PROBLEM_CONTENT_TYPE, STATUS_BY_CODE
from app.main import GROUPS

DOCUMENT = build_document()


def _operations() -> list[dict[str, Any]]:
    return [operation for item in DOCUMENT["paths"].values() for operation in item.values()]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


@pytest.mark.parametrize("path", sorted(api_reference.expected_files()), ids=lambda p: p.name)
def test_the_checked_in_copy_is_the_generated_one(path: Any) -> None:
    expected = api_reference.expected_files()[path]
    assert path.read_text(encoding="utf-8") == expected, "run `python -m app.api_reference`"


def test_every_problem_code_has_a_meaning() -> None:
    assert set(MEANINGS) == set(STATUS_BY_CODE)


def test_every_documented_refusal_answers_with_its_codes_status() -> None:
    for operation in _operations():
        for status, answer in operation["responses"].items():
            if PROBLEM_CONTENT_TYPE not in answer.get("content", {}):
                continue
            schema = answer["content"][PROBLEM_CONTENT_TYPE]["schema"]["allOf"][1]
            for code in schema["properties"]["code"]["enum"]:
                assert STATUS_BY_CODE[code] == int(status), (operation["operationId"], code)


def test_operations_are_declared_once_with_known_codes() -> None:
    assert not [n for n, c in Counter(o.operation_id for o in OPERATIONS).items() if c > 1]
    assert not [k for k, c in Counter((o.method, o.path) for o in OPERATIONS).items() if c > 1]
    for operation in OPERATIONS:
        assert operation.refusals <= set(STATUS_BY_CODE), operation.operation_id


def _csrf_exempt(path: str) -> bool:
    patterns = [p for group in GROUPS for p in group.csrf_exempt_paths()]
    return any(re.match(pattern, path) for pattern in patterns)


@pytest.mark.parametrize(
    "operation",
    [o for o in OPERATIONS if o.method not in SAFE_METHODS],
    ids=lambda o: o.operation_id,
)
def test_csrf_is_documented_where_the_middleware_checks_it(operation: Operation) -> None:
    path = re.sub(r"\{\w+(?::\w+)?\}", str(uuid.uuid4()), operation.path)
    assert _csrf_exempt(path) is not operation.checks_csrf


def test_the_security_schemes_name_the_real_cookie_and_header() -> None:
    assert SECURITY_SCHEMES["consoleSession"]["name"] == SESSION_COOKIE
    assert CSRF_HEADER_NAME.lower() == CSRF_HEADER
    used = {name for o in _operations() for r in o["security"] for name in r}
    assert used == set(SECURITY_SCHEMES)


def test_the_reference_links_only_to_its_own_headings() -> None:
    page = api_reference.render_markdown(DOCUMENT)
    headings = {slugify(h, "-") for h in re.findall(r"^#+ (.+)$", page, re.MULTILINE)}
    anchors = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert anchors
    assert anchors <= headings
