"""The reference for the heartbeat benchmark: a bare Starlette JSON echo on one route.

It receives exactly what a heartbeat receives (same headers, same body) and does the least a
JSON endpoint can do: parse the body and answer a small JSON document.

    uvicorn loadtests.baseline_app:app --workers 1
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request: Request) -> JSONResponse:
    payload = await request.json()
    return JSONResponse({"echo": payload})


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
