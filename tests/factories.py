"""Build the world through the public services, in a given state."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.models import User
from app.models.user import Role
from app.services import accounts

DEFAULT_PASSWORD = "correct horse battery staple"


async def make_user(
    role: Role = Role.ADMIN, *, email: str | None = None, password: str = DEFAULT_PASSWORD
) -> User:
    email = email or f"{role.value}@example.com"
    return await accounts.create_user(email=email, password=password, role=role)


@dataclass(frozen=True)
class SignedInClient:
    client: httpx.AsyncClient
    user: User
    csrf_token: str

    def write_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf_token}


async def sign_in(
    client: httpx.AsyncClient, user: User, password: str = DEFAULT_PASSWORD
) -> SignedInClient:
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": password}
    )
    assert response.status_code == 200, response.text
    return SignedInClient(client, user, response.json()["csrfToken"])
