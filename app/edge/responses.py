from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response


def json_response(
    payload: BaseModel | dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    data = payload.model_dump(by_alias=True) if isinstance(payload, BaseModel) else payload
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=headers
    )
