"""Lifecycle rules of Polaris, pure: no I/O, nothing imported from `app`."""

from statemachines.base import (
    DeadlineNotReached,
    DeadlinePassed,
    LifecycleMachine,
    TransitionNotAllowed,
    TransitionRefused,
)
from statemachines.device import DeviceMachine
from statemachines.device_token import DeviceTokenMachine
from statemachines.pairing_session import MAX_FAILED_PROOFS, PairingSessionMachine

ALL_MACHINES = (PairingSessionMachine, DeviceMachine, DeviceTokenMachine)

__all__ = [
    "ALL_MACHINES",
    "MAX_FAILED_PROOFS",
    "DeadlineNotReached",
    "DeadlinePassed",
    "DeviceMachine",
    "DeviceTokenMachine",
    "LifecycleMachine",
    "PairingSessionMachine",
    "TransitionNotAllowed",
    "TransitionRefused",
]
