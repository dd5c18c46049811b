"""QR codes: what the admin-app QR code holds, and any QR code as inline SVG (segno)."""

from __future__ import annotations

import json
from urllib.parse import urljoin

import segno
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from app.services.app_onboarding import GeneratedQr
from app.settings import Settings

API_PATH = "/api/v1"


def logo_url(settings: Settings) -> str | None:
    """Absolute, so the app can fetch it before it knows anything else about the server."""
    if not settings.site_logo_url:
        return None
    return urljoin(settings.public_base_url + "/", settings.site_logo_url)


def app_qr_payload(*, token: str, settings: Settings) -> dict[str, str | None]:
    return {
        "token": token,
        "apiBaseUrl": settings.public_base_url + API_PATH,
        "logoUrl": logo_url(settings),
        "siteName": settings.site_name,
    }


def qr_text(payload: dict[str, str | None]) -> str:
    # ASCII-only compact JSON: the smallest QR code, and no reader guesses at an encoding.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True)


def _svg(data: str, title: str) -> str:
    return segno.make(data, error="m").svg_inline(
        scale=4, border=2, dark="#111", light="#fff", title=title
    )


async def qr_svg(data: str, *, title: str) -> Markup:
    """~10-20 ms of work per code, so off the event loop."""
    return Markup(await run_in_threadpool(_svg, data, title))  # noqa: S704 (segno output, no user markup)


async def app_qr(
    generated: GeneratedQr, settings: Settings
) -> tuple[dict[str, str | None], Markup]:
    """The admin-app QR code's payload and its image."""
    payload = app_qr_payload(token=generated.token, settings=settings)
    return payload, await qr_svg(qr_text(payload), title="Admin app QR code")
