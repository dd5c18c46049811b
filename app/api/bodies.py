"""Parse a JSON request body into a schema: 415, 413 and 400 answered the same way everywhere."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from app.errors import BodyValidationFailed, InvalidBody, UnsupportedMediaType

S = TypeVar("S", bound=BaseModel)


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def parse_body(
    request: Request, schema: type[S], *, context: dict[str, Any] | None = None
) -> S:
    if not is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaType
    # The app's body limit raises 413 from inside `body()` before we ever see the bytes.
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody from exc
    try:
        return schema.model_validate(data, context=context)
    except ValidationError as exc:
        raise BodyValidationFailed(exc) from exc


def parse_query(request: Request, schema: type[S]) -> S:
    try:
        return schema.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise BodyValidationFailed(exc) from exc
