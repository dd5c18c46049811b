"""Console users, managed by admins: GET/POST /api/v1/admin/users."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.auth import user_out
from app.api.bodies import parse_body
from app.api.responses import json_response
from app.api.schemas import ApiModel
from app.auth.access import require_admin
from app.auth.client_ip import client_ip
from app.models.user import Role
from app.services import accounts, audit
from app.settings import Settings


class CreateUserRequest(ApiModel):
    email: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
        ),
    ]
    password: Annotated[str, Field(min_length=12, max_length=1024)]
    role: Role


async def list_users(request: Request) -> Response:
    await require_admin(request)
    users = await accounts.list_users()
    return json_response({"items": [user_out(u).model_dump(by_alias=True) for u in users]})


async def create_user(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    principal = await require_admin(request)
    body = await parse_body(request, CreateUserRequest)
    user = await accounts.create_user(
        email=body.email,
        password=body.password,
        role=body.role,
        actor=audit.Actor(
            type="user",
            id=str(principal.user.id),
            ip=client_ip(request, settings.trusted_proxy_hops),
        ),
    )
    return json_response({"user": user_out(user).model_dump(by_alias=True)}, status=201)


routes = [
    Route("/api/v1/admin/users", list_users, methods=["GET"]),
    Route("/api/v1/admin/users", create_user, methods=["POST"]),
]
