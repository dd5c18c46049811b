"""The strict base every lifecycle machine builds on."""

from __future__ import annotations

from datetime import datetime

from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed

__all__ = [
    "DeadlineNotReached",
    "DeadlinePassed",
    "LifecycleMachine",
    "TransitionNotAllowed",
    "TransitionRefused",
]


class TransitionRefused(Exception):
    """A validator refused an otherwise declared transition; `reason` says why."""

    reason = "refused"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.reason)


class DeadlinePassed(TransitionRefused):
    reason = "deadline_passed"


class DeadlineNotReached(TransitionRefused):
    reason = "deadline_not_reached"


class LifecycleMachine(StateMachine):
    """Fail closed: an event without a transition raises, an error in a callback propagates
    and leaves the state where it was (python-statemachine's `StateChart` defaults do
    neither, so the flags are pinned here rather than trusted to the parent class)."""

    allow_event_without_transition = False
    catch_errors_as_events = False
    atomic_configuration_update = True
    enable_self_transition_entries = False

    @classmethod
    def open_states(cls) -> frozenset[str]:
        """The states a row can still leave: all those the machine does not declare final."""
        return frozenset(state.value for state in cls.states if not state.final)

    def _deadline(self) -> datetime:
        deadline: datetime = self.model.expires_at
        return deadline

    def ensure_before_deadline(self, now: datetime) -> None:
        if now >= self._deadline():
            raise DeadlinePassed(f"{type(self.model).__name__} expired at {self._deadline()}")

    def ensure_deadline_reached(self, now: datetime) -> None:
        if now < self._deadline():
            raise DeadlineNotReached(f"{type(self.model).__name__} lives until {self._deadline()}")
