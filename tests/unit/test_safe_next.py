"""Where sign-in sends the browser afterwards: only to a path of this site."""

from __future__ import annotations

import pytest

from app.web.auth import safe_next


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(None, "/", id="none"),
        pytest.param("", "/", id="empty"),
        pytest.param("https://evil.example", "/", id="absolute-url"),
        pytest.param("HTTPS://evil.example/admin", "/", id="absolute-url-upper-case"),
        pytest.param("//evil.example", "/", id="protocol-relative"),
        pytest.param("//evil.example/admin/devices", "/", id="protocol-relative-with-path"),
        pytest.param(" //evil.example", "/", id="leading-space"),
        pytest.param("/\t/evil.example", "/", id="tab-between-slashes"),
        pytest.param("/\n/evil.example", "/", id="newline-between-slashes"),
        pytest.param("javascript:alert(1)", "/", id="javascript-scheme"),
        pytest.param("data:text/html,<script>", "/", id="data-scheme"),
        pytest.param("relative/path", "/", id="relative-path"),
        pytest.param("\\\\evil.example", "/", id="unc-style"),
        pytest.param("/", "/", id="root"),
        pytest.param("/admin/devices?x=1", "/admin/devices?x=1", id="path-with-query"),
        pytest.param("/admin/audit#top", "/admin/audit#top", id="path-with-fragment"),
        pytest.param("/admin/%2F%2Fevil.example", "/admin/%2F%2Fevil.example", id="encoded"),
        # Browsers read `\` as `/` in http(s) URLs: `/\evil.example` is `//evil.example`.
        pytest.param("/\\evil.example", "/", id="slash-backslash"),
        pytest.param("/\\/evil.example", "/", id="slash-backslash-slash"),
        pytest.param("/\t\\evil.example", "/", id="slash-tab-backslash"),
        pytest.param("/admin\x7f", "/", id="delete-character"),
    ],
)
def test_safe_next_keeps_only_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
