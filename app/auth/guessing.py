"""How likely a guessed secret is to hit a live one, given the configured budgets. Pure.

A moving window of A evaluations per W seconds lets at most A · ⌈T/W⌉ guesses fall within a
secret's life of T seconds: any T seconds are covered by ⌈T/W⌉ windows, each holding at most
A. Each guess names one of 2^bits values, so with L secrets alive at once the chance that
any guess of that life hits one of them is at most guesses · L / 2^bits (a union bound).
Only the budget over all clients counts: a per-address budget does not bound a botnet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from limits import parse

from app.settings import Settings

# The most any one guessing campaign may expect to win during a secret's life.
GOAL_BITS = 32


@dataclass(frozen=True, slots=True)
class GuessingOdds:
    what: str
    bits: int
    budget: str
    allowed: int
    window_seconds: int
    lifetime_seconds: int
    live: int

    @property
    def guesses(self) -> int:
        """Guesses evaluated within one secret's life, at most."""
        return self.allowed * math.ceil(self.lifetime_seconds / self.window_seconds)

    @property
    def probability(self) -> Fraction:
        return min(Fraction(1), Fraction(self.guesses * self.live, 2**self.bits))

    @property
    def log2(self) -> float:
        """The probability as a power of two (-32.4 for 2^-32.4)."""
        return math.log2(self.probability)

    @property
    def meets_goal(self) -> bool:
        return self.probability <= Fraction(1, 2**GOAL_BITS)


def odds(
    *, what: str, bits: int, budget: str, lifetime_seconds: int, live: int = 1
) -> GuessingOdds:
    item = parse(budget)
    return GuessingOdds(
        what=what,
        bits=bits,
        budget=budget,
        allowed=item.amount,
        window_seconds=item.get_expiry(),
        lifetime_seconds=lifetime_seconds,
        live=live,
    )


def typed_code_odds(settings: Settings, *, code_bits: int, live_codes: int = 1) -> GuessingOdds:
    """A typed pairing code: a hit reaches *pending approval*, never credentials."""
    return odds(
        what="typed pairing code",
        bits=code_bits,
        budget=settings.redeem_failures_global,
        lifetime_seconds=settings.pairing_code_ttl_seconds,
        live=live_codes,
    )


def app_token_odds(settings: Settings, *, token_bits: int, live_tokens: int = 1) -> GuessingOdds:
    """An admin-app QR token: a hit would connect an admin's phone."""
    return odds(
        what="admin-app QR token",
        bits=token_bits,
        budget=settings.redeem_failures_global,
        lifetime_seconds=settings.app_qr_ttl_seconds,
        live=live_tokens,
    )
