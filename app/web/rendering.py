from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from app.edge.access import principal_of
from app.edge.runtime import runtime

_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")
STATIC_DIR = _HERE / "static"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    base = {"site_name": runtime(request).settings.site_name, "principal": principal_of(request)}
    return templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status, headers=headers
    )
