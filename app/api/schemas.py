"""Request and response shapes of the JSON APIs: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class LoginRequest(ApiModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserOut(ApiModel):
    user_id: str
    email: str
    role: str


class LoginResponse(ApiModel):
    user: UserOut
    csrf_token: str
