from __future__ import annotations

from starlette.requests import Request

from app.auth.client_ip import client_ip
from app.settings import Settings


def request_ip(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return client_ip(request, settings.trusted_proxy_hops)
