"""Console users, managed by admins: GET/POST /api/v1/admin/users."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.schemas import ApiModel
from app.edge.access import require_admin
from app.edge.presenters import user_view
from app.edge.responses import json_response
from app.edge.runtime import request_ip
from app.models import Role
from app.services import accounts, audit


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
    return json_response({"items": [user_view(u) for u in users]})


async def create_user(request: Request) -> Response:
    principal = await require_admin(request)
    body = await parse_body(request, CreateUserRequest)
    user = await accounts.create_user(
        email=body.email,
        password=body.password,
        role=body.role,
        actor=audit.Actor.user(principal.user.id, request_ip(request)),
    )
    return json_response({"user": user_view(user)}, status=201)


routes = [
    Route("/users", list_users, methods=["GET"]),
    Route("/users", create_user, methods=["POST"]),
]
