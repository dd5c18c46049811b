"""docs/openapi.json and docs/api-reference.md, generated from the OpenAPI document the app
serves (`app.api.openapi`). `python -m app.api_reference` writes both; `--check` fails when
either has drifted from the document."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.api.openapi import PATH, SCHEMAS, build_document
from app.edge.problems import PROBLEM_CONTENT_TYPE

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOCUMENT_PATH = DOCS / "openapi.json"
REFERENCE_PATH = DOCS / "api-reference.md"
_METHODS = ("get", "put", "post", "delete", "patch")
_CONSTRAINTS = (
    ("minLength", "min length {}"),
    ("maxLength", "max length {}"),
    ("minItems", "min items {}"),
    ("maxItems", "max items {}"),
    ("minimum", "min {}"),
    ("maximum", "max {}"),
    ("pattern", "pattern `{}`"),
    ("default", "default `{}`"),
)


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    """Table cells: one line, and a `|` is not a column break."""
    return " ".join(text.split()).replace("|", "\\|")


def _link(ref: str) -> str:
    name = ref.removeprefix(SCHEMAS)
    return f"[{name}](#{name.lower()})"


def type_of(schema: dict[str, Any]) -> str:
    """A schema in a few words, linking to the named schemas it uses."""
    if "$ref" in schema:
        return _link(schema["$ref"])
    if "anyOf" in schema:
        return " or ".join(type_of(option) for option in schema["anyOf"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " | ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _constraints(schema: dict[str, Any]) -> list[str]:
    def shown(key: str) -> str:
        value = schema[key]
        return value if key == "pattern" else json.dumps(value, ensure_ascii=False)

    return [text.format(shown(key)) for key, text in _CONSTRAINTS if key in schema]


def _notes(schema: dict[str, Any]) -> str:
    constraints = _constraints(schema)
    for option in schema.get("anyOf", []):
        constraints += _constraints(option)
    description = schema.get("description", "").rstrip(".")
    return _cell("; ".join(part for part in (description, *constraints) if part))


def _schema_section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if "description" in schema:
        lines += [" ".join(schema["description"].split()), ""]
    if "enum" in schema:
        return [*lines, "One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return [*lines, f"Type: {type_of(schema)}.", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | notes |", "|---|---|---|---|"]
    for field, spec in properties.items():
        flag = "yes" if field in required else "no"
        lines.append(f"| `{field}` | {_cell(type_of(spec))} | {flag} | {_notes(spec)} |")
    return [*lines, ""]


def _access(operation: dict[str, Any]) -> str:
    ways = [" + ".join(f"`{s}`" for s in requirement) for requirement in operation["security"]]
    return " or ".join(ways) if ways else "none"


def _parameters_table(parameters: list[dict[str, Any]]) -> list[str]:
    lines = ["| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
    for p in parameters:
        flag = "yes" if p["required"] else "no"
        notes = _cell("; ".join(filter(None, [p.get("description", ""), _notes(p["schema"])])))
        lines.append(
            f"| `{p['name']}` | {p['in']} | {_cell(type_of(p['schema']))} | {flag} | {notes} |"
        )
    return [*lines, ""]


def _responses_table(responses: dict[str, Any]) -> list[str]:
    lines = ["**Responses**", "", "| status | answer |", "|---|---|"]
    for status, answer in responses.items():
        content = answer.get("content", {})
        if "application/json" in content:
            body = type_of(content["application/json"]["schema"])
        elif PROBLEM_CONTENT_TYPE in content:
            schema = content[PROBLEM_CONTENT_TYPE]["schema"]
            codes = schema["allOf"][1]["properties"]["code"]["enum"]
            body = "problem: " + ", ".join(f"`{code}`" for code in codes)
        elif content:
            body = ", ".join(f"`{media_type}`" for media_type in content)
        else:
            body = answer["description"]
        lines.append(f"| `{status}` | {_cell(body)} |")
    return [*lines, ""]


def _operation_section(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### {operation['summary']}", "", f"`{method.upper()} {path}`", ""]
    if "description" in operation:
        lines += [operation["description"], ""]
    lines += [f"**Access:** {_access(operation)}", ""]
    if parameters := operation.get("parameters"):
        lines += _parameters_table(parameters)
    if body := operation.get("requestBody"):
        schema = body["content"]["application/json"]["schema"]
        needed = "required" if body["required"] else "optional, may be empty"
        lines += [f"**Request body** (`application/json`, {needed}): {type_of(schema)}", ""]
    return lines + _responses_table(operation["responses"])


def _operations_by_tag(document: dict[str, Any]) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {tag["name"]: [] for tag in document["tags"]}
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                sections[operation["tags"][0]].append(_operation_section(path, method, operation))
    return sections


def _header(document: dict[str, Any]) -> list[str]:
    return [
        "# API reference",
        "",
        "Generated from the OpenAPI 3.1 document by `python -m app.api_reference`; do not edit.",
        f"The document is served at `GET {PATH}` and checked in as",
        "[openapi.json](openapi.json).",
        "",
        document["info"]["description"],
        "",
    ]


def _authentication(document: dict[str, Any]) -> list[str]:
    lines = ["## Authentication", "", "| scheme | sent as | what |", "|---|---|---|"]
    for name, scheme in document["components"]["securitySchemes"].items():
        sent = (
            "`Authorization: Bearer <JWT>`"
            if scheme["type"] == "http"
            else f"{scheme['in']} `{scheme['name']}`"
        )
        lines.append(f"| `{name}` | {sent} | {_cell(scheme['description'])} |")
    return [*lines, ""]


def _errors(document: dict[str, Any]) -> list[str]:
    problem = document["components"]["schemas"]["Problem"]
    lines = ["## Errors", "", problem["description"], "See [Problem](#problem).", ""]
    lines += ["| code | status | meaning |", "|---|---|---|"]
    for code in problem["properties"]["code"]["oneOf"]:
        lines.append(f"| `{code['const']}` | {code['x-status']} | {_cell(code['description'])} |")
    return [*lines, ""]


def render_markdown(document: dict[str, Any]) -> str:
    lines = _header(document) + _authentication(document) + _errors(document)
    descriptions = {tag["name"]: tag["description"] for tag in document["tags"]}
    for tag, operations in _operations_by_tag(document).items():
        lines += [f"## {tag}", "", descriptions[tag], ""]
        for section in operations:
            lines += section
    lines += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += _schema_section(name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"


def expected_files() -> dict[Path, str]:
    document = build_document()
    return {DOCUMENT_PATH: render_json(document), REFERENCE_PATH: render_markdown(document)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    expected = expected_files()
    if "--check" in args:
        stale = [
            path
            for path, text in expected.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text
        ]
        for path in stale:
            print(f"{path} is out of date: run `python -m app.api_reference`.")
        return 1 if stale else 0
    for path, text in expected.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
