from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from app.edge.views import View

# For answers that carry a secret shown once (codes, QR codes, credentials, tokens).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    payload: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def view_response(
    view: View, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """An answer rendered through its documented model (`app.edge.views`, `app.api.responses`)."""
    return json_response(view.wire(), status=status, headers=headers)
