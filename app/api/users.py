"""Console users, managed by admins: GET/POST /api/v1/admin/users."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.responses import UserListResponse, UserResponse
from app.api.schemas import CreateUserRequest
from app.edge.access import require_admin
from app.edge.presenters import user_view
from app.edge.responses import view_response
from app.edge.runtime import request_ip
from app.services import accounts, audit


async def list_users(request: Request) -> Response:
    await require_admin(request)
    users = await accounts.list_users()
    return view_response(UserListResponse(items=[user_view(u) for u in users]))


async def create_user(request: Request) -> Response:
    principal = await require_admin(request)
    body = await parse_body(request, CreateUserRequest)
    user = await accounts.create_user(
        email=body.email,
        password=body.password,
        role=body.role,
        actor=audit.Actor.user(principal.user.id, request_ip(request)),
    )
    return view_response(UserResponse(user=user_view(user)), status=201)


routes = [
    Route("/users", list_users, methods=["GET"]),
    Route("/users", create_user, methods=["POST"]),
]
