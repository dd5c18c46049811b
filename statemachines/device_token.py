"""DeviceToken lifecycle (DESIGN §3): the long-lived deviceToken + deviceSecret pair."""

from __future__ import annotations

from statemachine.states import States

from statemachines.base import LifecycleMachine
from statemachines.states import TokenState


class DeviceTokenMachine(LifecycleMachine):
    s = States.from_enum(
        TokenState,
        initial=TokenState.active,
        final={TokenState.rotated, TokenState.revoked, TokenState.expired},
    )

    rotate = s.active.to(s.rotated, validators="ensure_before_deadline")
    revoke = s.active.to(s.revoked)
    expire = s.active.to(s.expired, validators="ensure_deadline_reached")
