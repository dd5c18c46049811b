"""The guessing odds (`app.auth.guessing`): from the budget, the life and the size of a secret."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from app.auth import guessing
from app.services import app_onboarding, pairing_codes
from app.settings import Settings

CODE_BITS = 5 * pairing_codes.CODE_LENGTH
APP_TOKEN_BITS = 8 * app_onboarding.QR_TOKEN_BYTES


@pytest.fixture
def defaults(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def test_the_default_budget_keeps_a_typed_code_below_two_to_the_minus_32(
    defaults: Settings,
) -> None:
    odds = guessing.typed_code_odds(defaults, code_bits=CODE_BITS)
    print(
        f"\ntyped code: {odds.budget}, life {odds.lifetime_seconds} s, {odds.guesses} guesses, "
        f"P = 2^{odds.log2:.2f} = {float(odds.probability):.3g}"
    )

    assert CODE_BITS == 40
    assert odds.guesses == 200
    assert odds.probability == Fraction(200, 2**40)
    assert odds.probability <= Fraction(1, 2**32)
    assert odds.meets_goal


def test_the_default_budget_leaves_an_admin_app_token_out_of_reach(defaults: Settings) -> None:
    odds = guessing.app_token_odds(defaults, token_bits=APP_TOKEN_BITS)
    print(f"\nadmin-app token: {odds.guesses} guesses, P = 2^{odds.log2:.1f}")

    assert odds.guesses == 1000  # 200 a minute over a 5-minute life
    assert odds.log2 < -240
    assert odds.meets_goal


@pytest.mark.parametrize(
    ("budget", "life", "live", "guesses", "meets_goal"),
    [
        pytest.param("200/minute", 60, 1, 200, True, id="default"),
        pytest.param("1000/minute", 60, 1, 1000, False, id="former-default"),
        pytest.param("256/minute", 60, 1, 256, True, id="exactly-2^-32"),
        pytest.param("257/minute", 60, 1, 257, False, id="one-over"),
        pytest.param("200/minute", 61, 1, 400, False, id="life-a-second-past-the-window"),
        pytest.param("80/30seconds", 61, 1, 240, True, id="three-windows"),
        pytest.param("200/hour", 60, 1, 200, True, id="window-longer-than-life"),
        pytest.param("200/minute", 60, 2, 200, False, id="two-codes-alive"),
    ],
)
def test_guesses_and_goal_from_the_budget_and_life(
    budget: str, life: int, live: int, guesses: int, meets_goal: bool
) -> None:
    odds = guessing.odds(what="code", bits=40, budget=budget, lifetime_seconds=life, live=live)

    assert odds.guesses == guesses
    assert odds.probability == Fraction(guesses * live, 2**40)
    assert odds.meets_goal is meets_goal


def test_a_budget_beyond_the_code_space_is_certain() -> None:
    odds = guessing.odds(what="pin", bits=4, budget="100/minute", lifetime_seconds=60)

    assert odds.probability == 1
    assert odds.log2 == 0
