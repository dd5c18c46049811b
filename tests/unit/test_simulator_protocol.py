"""The simulator's pure pieces: PKCE, pairing URIs, problem codes, the credentials file."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from simulator.problems import CodeExpired, ProblemError, RateLimited, problem_from
from simulator.profiles import PROFILES, fleet_identities, identity
from simulator.protocol import (
    Credentials,
    InvalidPairingUri,
    PkcePair,
    display_code,
    parse_pairing_uri,
)
from simulator.state import StateFile, StoredDevice

PROOF = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


def test_pkce_matches_the_rfc_7636_example() -> None:
    assert PkcePair.from_verifier(PROOF).challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize("length", [43, 64, 128])
def test_generated_verifiers_are_valid_pkce(length: int) -> None:
    pair = PkcePair.generate(length)
    assert len(pair.verifier) == length
    assert PkcePair.from_verifier(pair.verifier) == pair
    assert pair.verifier not in repr(pair)


def test_pairing_uri_is_parsed_and_never_shown() -> None:
    uri = f"polaris://pair?code=K7QXM2PD&proof={PROOF}&origin=https://p.example.com/"
    parsed = parse_pairing_uri(uri)
    assert (parsed.code, parsed.proof, parsed.origin) == (
        "K7QXM2PD",
        PROOF,
        "https://p.example.com",
    )
    assert PROOF not in repr(parsed)
    assert "K7QXM2PD" not in repr(parsed)


@pytest.mark.parametrize(
    "uri",
    [
        f"https://pair?code=K7QXM2PD&proof={PROOF}&origin=https://p.example.com",
        f"polaris://pair?proof={PROOF}&origin=https://p.example.com",
        "polaris://pair?code=K7QXM2PD&proof=short&origin=https://p.example.com",
        f"polaris://pair?code=K7QXM2PD&proof={PROOF}&origin=javascript:alert(1)",
        f"polaris://pair?code=A&code=B&proof={PROOF}&origin=https://p.example.com",
    ],
)
def test_malformed_pairing_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidPairingUri):
        parse_pairing_uri(uri)


def test_display_code_groups_by_four() -> None:
    assert display_code("k7qx m2pd") == "K7QX-M2PD"


def test_problems_become_typed_errors_with_their_code() -> None:
    expired = problem_from(
        httpx.Response(410, json={"code": "code_expired", "detail": "Too late."})
    )
    assert isinstance(expired, CodeExpired)
    assert (expired.status, expired.code, expired.detail) == (410, "code_expired", "Too late.")
    limited = problem_from(
        httpx.Response(429, json={"code": "rate_limited"}, headers={"Retry-After": "7"})
    )
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.0
    odd = problem_from(httpx.Response(502, text="<html>bad gateway</html>"))
    assert type(odd) is ProblemError
    assert odd.code == "http_502"


def test_profiles_are_consistent() -> None:
    for profile in PROFILES.values():
        assert profile.platform.value in ("ios", "ipados", "macos")
        assert profile.apns_environment == (
            "sandbox" if profile.build.value == "testflight" else "production"
        )
    phone = identity("iphone-14", "S1")
    assert len(phone.push_token) == 64
    assert int(phone.push_token, 16) >= 0
    assert phone.with_new_push_token(1).push_token != phone.push_token
    assert fleet_identities(5, seed="a") == fleet_identities(5, seed="a")


def test_credentials_file_is_private_and_round_trips(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "sim.json")
    phone = identity("ipad-air", "S2")
    credentials = Credentials("dev-1", "pxd_abc_def", "pxs_secret")
    stored = StoredDevice.of(phone, credentials)
    assert "pxs_secret" not in repr(stored)
    assert "pxs_secret" not in repr(credentials)
    with state.locked():
        state.save("http://h:1/", [stored])
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert state.load("http://h:1") == [stored]
    assert state.load("http://other") == []
    assert stored.credentials().device_secret == "pxs_secret"
