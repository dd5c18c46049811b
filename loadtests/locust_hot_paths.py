"""The device hot paths over the seeded fleet: heartbeats at the fleet's pace, and token
exchanges as apps waking up make them."""

from __future__ import annotations

import itertools
import random
import time

from locust import FastHttpUser, task

from loadtests.locust_device_calls import PlayedDevice, exchange, heartbeat
from loadtests.locust_fleet import load_fleet
from loadtests.locust_options import options_of


class FleetUser(FastHttpUser):
    """Base: a slice of the seeded devices (`--devices-per-user`), played in turn."""

    abstract = True

    def on_start(self) -> None:
        options = options_of(self.environment)
        dealt = load_fleet(self.environment).deal(options.devices_per_user)
        self.devices = [PlayedDevice.stored(device) for device in dealt]
        self.every = options.heartbeat_every
        self._turns = itertools.count()
        self._woke = time.monotonic()

    def next_device(self) -> PlayedDevice:
        return self.devices[next(self._turns) % len(self.devices)]

    def stagger(self, first_wait: float) -> None:
        # Users started in lock-step make a load no real fleet makes. Locust has patched
        # time.sleep into gevent's, so this yields to the other users.
        time.sleep(random.uniform(0, first_wait))
        self._woke = time.monotonic()

    def paced(self, interval: float) -> float:
        """The wait that starts tasks `interval` apart however long each took, as a device's
        timer does: the offered load stays the one asked for when answers slow down."""
        now = time.monotonic()
        wait = max(0.0, interval - (now - self._woke))
        self._woke = now + wait
        return wait


class HeartbeatingDevices(FleetUser):
    """Each device heartbeats every --heartbeat-every seconds, start times spread at random."""

    weight = 10

    def interval(self) -> float:
        return self.every / len(self.devices) * random.uniform(0.9, 1.1)

    def wait_time(self) -> float:
        return self.paced(self.interval())

    def on_start(self) -> None:
        super().on_start()
        self.stagger(self.interval())

    @task
    def beat(self) -> None:
        heartbeat(self.client, self.next_device())


class ExchangingTokens(FleetUser):
    """Apps waking up: trade the long-lived credentials for a fresh access token."""

    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def wake_up(self) -> None:
        exchange(self.client, self.next_device())
