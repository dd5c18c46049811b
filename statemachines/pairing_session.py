"""PairingSession lifecycle (DESIGN §3): one per minted code or admin-app QR token."""

from __future__ import annotations

from statemachine.states import States

from statemachines.base import LifecycleMachine, TransitionRefused
from statemachines.states import PairingState

MAX_FAILED_PROOFS = 5


class AttemptsRemain(TransitionRefused):
    reason = "attempts_remain"


class PairingSessionMachine(LifecycleMachine):
    s = States.from_enum(
        PairingState,
        initial=PairingState.minted,
        final={
            PairingState.redeemed,
            PairingState.rejected,
            PairingState.expired,
            PairingState.cancelled,
            PairingState.burned,
        },
    )

    redeem = s.minted.to(s.redeemed, validators="ensure_before_deadline")
    claim = s.minted.to(s.pending_approval, validators="ensure_before_deadline")
    approve = s.pending_approval.to(s.redeemed, validators="ensure_before_deadline")
    reject = s.pending_approval.to(s.rejected, validators="ensure_before_deadline")
    expire = s.minted.to(s.expired, validators="ensure_deadline_reached") | s.pending_approval.to(
        s.expired, validators="ensure_deadline_reached"
    )
    cancel = s.minted.to(s.cancelled, validators="ensure_before_deadline")
    # A wrong console proof (minted) or device verifier (pending_approval) counts against
    # the session; the service fires `burn` once the count reaches the limit.
    burn = s.minted.to(s.burned, validators="ensure_attempts_exhausted") | s.pending_approval.to(
        s.burned, validators="ensure_attempts_exhausted"
    )

    def ensure_attempts_exhausted(self) -> None:
        failed: int = self.model.failed_attempts
        if failed < MAX_FAILED_PROOFS:
            raise AttemptsRemain(f"{failed} of {MAX_FAILED_PROOFS} failed proofs")
