"""DeviceToken lifecycle (DESIGN §3): the long-lived deviceToken + deviceSecret pair."""

from __future__ import annotations

from statemachine import State

from statemachines.base import LifecycleMachine


class DeviceTokenMachine(LifecycleMachine):
    active = State(initial=True, value="active")
    rotated = State(final=True, value="rotated")
    revoked = State(final=True, value="revoked")
    expired = State(final=True, value="expired")

    rotate = active.to(rotated, validators="ensure_before_deadline")
    revoke = active.to(revoked)
    expire = active.to(expired, validators="ensure_deadline_reached")
