"""PairingSession lifecycle (DESIGN §3): one per minted code or admin-app QR token."""

from __future__ import annotations

from statemachine import State

from statemachines.base import LifecycleMachine, TransitionRefused

MAX_FAILED_PROOFS = 5


class AttemptsRemain(TransitionRefused):
    reason = "attempts_remain"


class PairingSessionMachine(LifecycleMachine):
    minted = State(initial=True, value="minted")
    pending_approval = State(value="pending_approval")
    redeemed = State(final=True, value="redeemed")
    rejected = State(final=True, value="rejected")
    expired = State(final=True, value="expired")
    cancelled = State(final=True, value="cancelled")
    burned = State(final=True, value="burned")

    redeem = minted.to(redeemed, validators="ensure_before_deadline")
    claim = minted.to(pending_approval, validators="ensure_before_deadline")
    approve = pending_approval.to(redeemed, validators="ensure_before_deadline")
    reject = pending_approval.to(rejected)
    expire = minted.to(expired, validators="ensure_deadline_reached") | pending_approval.to(
        expired, validators="ensure_deadline_reached"
    )
    cancel = minted.to(cancelled)
    # A wrong console proof (minted) or device verifier (pending_approval) counts against
    # the session; the service fires `burn` once the count reaches the limit.
    burn = minted.to(burned, validators="ensure_attempts_exhausted") | pending_approval.to(
        burned, validators="ensure_attempts_exhausted"
    )

    def ensure_attempts_exhausted(self) -> None:
        if self.model.failed_attempts < MAX_FAILED_PROOFS:
            raise AttemptsRemain(
                f"{self.model.failed_attempts} of {MAX_FAILED_PROOFS} failed proofs"
            )
