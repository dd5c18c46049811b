from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth import pkce
from app.services import pairing_codes
from app.services.pairing_codes import ALPHABET, MalformedCode


def test_new_codes_are_eight_crockford_characters() -> None:
    codes = {pairing_codes.new_code() for _ in range(500)}
    assert len(codes) == 500
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{8}", c) for c in codes)


def test_display_groups_in_fours() -> None:
    assert pairing_codes.display("K7QXM2PD") == "K7QX-M2PD"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("K7QX-M2PD", "K7QXM2PD"),
        ("k7qx m2pd", "K7QXM2PD"),
        (" k7qx-m2pd ", "K7QXM2PD"),
        ("K7QXM2PD", "K7QXM2PD"),
        ("OIL0-1234", "0110" + "1234"),  # Crockford: O reads as 0, I and L as 1
    ],
)
def test_normalise_ignores_case_spaces_and_hyphens(typed: str, expected: str) -> None:
    assert pairing_codes.normalise(typed) == expected


@pytest.mark.parametrize(
    "typed", ["", "K7QX-M2P", "K7QX-M2PDX", "UUUU-UUUU", "K7QX_M2PD", "K7QX-M2P!"]
)
def test_normalise_refuses_malformed_codes(typed: str) -> None:
    with pytest.raises(MalformedCode):
        pairing_codes.normalise(typed)


@given(st.text(alphabet=ALPHABET, min_size=8, max_size=8))
def test_display_then_normalise_round_trips(code: str) -> None:
    assert pairing_codes.normalise(pairing_codes.display(code).lower()) == code


def test_check_code_is_six_digits_and_stable_per_challenge() -> None:
    challenge = pkce.challenge_for(pkce.new_verifier())
    first = pairing_codes.check_code(challenge)
    assert re.fullmatch(r"\d{6}", first)
    assert pairing_codes.check_code(challenge) == first
    others = {pairing_codes.check_code(pkce.challenge_for(pkce.new_verifier())) for _ in range(50)}
    assert len(others) > 45


def test_pairing_uri_carries_code_proof_and_origin() -> None:
    uri = pairing_codes.pairing_uri(code="K7QXM2PD", proof="p" * 43, origin="https://x.example")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("polaris", "pair")
    assert parse_qs(parts.query) == {
        "code": ["K7QXM2PD"],
        "proof": ["p" * 43],
        "origin": ["https://x.example"],
    }


def test_pkce_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


def test_pkce_refuses_wrong_or_malformed_verifiers() -> None:
    verifier = pkce.new_verifier()
    challenge = pkce.challenge_for(verifier)
    assert len(verifier) == 43
    assert not pkce.verifier_matches(pkce.new_verifier(), challenge)
    assert not pkce.verifier_matches("short", pkce.challenge_for("short"))
    assert not pkce.verifier_matches(challenge, challenge)  # the challenge is not the proof
