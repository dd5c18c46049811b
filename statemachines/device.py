"""Device lifecycle (DESIGN §3). Presence is derived from heartbeats, not a state here."""

from __future__ import annotations

from statemachine import State

from statemachines.base import LifecycleMachine


class DeviceMachine(LifecycleMachine):
    active = State(initial=True, value="active")
    deregistered = State(final=True, value="deregistered")

    deregister = active.to(deregistered)
