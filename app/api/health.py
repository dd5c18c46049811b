"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise import connections

from app.api.responses import LivenessResponse, ReadinessChecks, ReadinessResponse
from app.edge.responses import view_response
from app.edge.runtime import runtime
from app.logging import get_logger

log = get_logger(__name__)
_CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(_: Request) -> Response:
    return view_response(LivenessResponse(status="ok"))


async def database_ok() -> bool:
    try:
        await asyncio.wait_for(
            connections.get("default").execute_query("SELECT 1"), _CHECK_TIMEOUT_SECONDS
        )
    except Exception as exc:
        log.warning("readiness_database_failed", error=type(exc).__name__)
        return False
    return True


async def redis_ok(redis: Redis) -> bool:
    try:
        await asyncio.wait_for(redis.ping(), _CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("readiness_redis_failed", error=type(exc).__name__)
        return False
    return True


async def readyz(request: Request) -> Response:
    redis = runtime(request).redis
    checks = ReadinessChecks(
        database=await database_ok(), redis=await redis_ok(redis) if redis is not None else None
    )
    ready = checks.database and checks.redis is not False
    return view_response(
        ReadinessResponse(status="ready" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
