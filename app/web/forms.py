"""What every console form and query string is parsed as: unknown fields ignored, text
trimmed, and a NUL refused before it can reach the database."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from app.edge.text import NUL_REFUSED, has_nul


class ConsoleForm(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, values: object) -> object:
        if has_nul(values):
            raise ValueError(NUL_REFUSED)
        return values
