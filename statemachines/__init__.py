"""Lifecycle rules of Polaris, pure: no I/O, nothing imported from `app`."""

from statemachines.base import (
    DeadlineNotReached,
    DeadlinePassed,
    LifecycleMachine,
    TransitionNotAllowed,
    TransitionRefused,
)
from statemachines.credential_verdict import CredentialVerdict, credential_verdict
from statemachines.device import DeviceMachine
from statemachines.device_token import DeviceTokenMachine
from statemachines.pairing_session import MAX_FAILED_PROOFS, PairingSessionMachine
from statemachines.states import DeviceState, PairingState, TokenState

ALL_MACHINES = (PairingSessionMachine, DeviceMachine, DeviceTokenMachine)

__all__ = [
    "ALL_MACHINES",
    "MAX_FAILED_PROOFS",
    "CredentialVerdict",
    "DeadlineNotReached",
    "DeadlinePassed",
    "DeviceMachine",
    "DeviceState",
    "DeviceTokenMachine",
    "LifecycleMachine",
    "PairingSessionMachine",
    "PairingState",
    "TokenState",
    "TransitionNotAllowed",
    "TransitionRefused",
    "credential_verdict",
]
