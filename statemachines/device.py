"""Device lifecycle (DESIGN §3). Presence is derived from heartbeats, not a state here."""

from __future__ import annotations

from statemachine.states import States

from statemachines.base import LifecycleMachine
from statemachines.states import DeviceState


class DeviceMachine(LifecycleMachine):
    s = States.from_enum(DeviceState, initial=DeviceState.active, final={DeviceState.deregistered})

    deregister = s.active.to(s.deregistered)
