"""A fleet as it runs in production, in one user class: mostly heartbeats (one per device every
--heartbeat-every seconds), access tokens exchanged as they expire and as apps wake up,
now and then a new APNs token or a credential rotation, and rarely a new device pairing.

Rotations and push-token updates touch only devices this user paired itself: rotating a
seeded device would leave the simulator's credentials file with a rotated-out pair, which
the server takes for a stolen copy next time (DESIGN §3).
"""

from __future__ import annotations

import itertools
import random

from locust import tag, task

from loadtests.locust_admin import AdminSession
from loadtests.locust_device_calls import (
    PlayedDevice,
    exchange,
    heartbeat,
    rotate,
    upload_push_token,
)
from loadtests.locust_hot_paths import FleetUser
from loadtests.locust_options import options_of
from loadtests.locust_pairing import pair_scanned, pair_typed

# Events per 1,000 heartbeats. Production rates of the rare ones are lower still (a rotation
# every few weeks per device); these keep each path in every run of a few minutes.
HEARTBEATS = 1000
WAKE_UPS = 20
PUSH_TOKENS = 3
ROTATIONS = 2
PAIRINGS = 1
ALL_EVENTS = HEARTBEATS + WAKE_UPS + PUSH_TOKENS + ROTATIONS + PAIRINGS
# Devices a user keeps of those it paired; pairing one more deregisters the oldest.
OWN_DEVICES = 3
# One pairing in this many is typed (and approved) rather than scanned.
TYPED_ONE_IN = 4


class MixedFleet(FleetUser):
    weight = 1

    def on_start(self) -> None:
        super().on_start()
        options = options_of(self.environment)
        self.keep_paired = options.keep_paired
        self.admin = AdminSession(self, options.admin_email, options.admin_password)
        self.own: list[PlayedDevice] = []
        self.pairings = itertools.count(1)
        self.push_generations = itertools.count(1)
        self.admin.ready()
        self.stagger(self.interval())

    def interval(self) -> float:
        # The heartbeats alone keep each device at one per --heartbeat-every seconds.
        share = HEARTBEATS / ALL_EVENTS
        return self.every / len(self.devices) * share * random.uniform(0.9, 1.1)

    def wait_time(self) -> float:
        return self.paced(self.interval())

    @tag("heartbeat")
    @task(HEARTBEATS)
    def beat(self) -> None:
        heartbeat(self.client, self.next_device())

    @tag("wake-up")
    @task(WAKE_UPS)
    def wake_up(self) -> None:
        exchange(self.client, random.choice(self.devices))

    @tag("push-token")
    @task(PUSH_TOKENS)
    def new_push_token(self) -> None:
        device = self.own_device()
        if device is not None:
            upload_push_token(self.client, device, next(self.push_generations))

    @tag("rotation")
    @task(ROTATIONS)
    def rotation(self) -> None:
        device = self.own_device()
        if device is not None:
            rotate(self.client, device)

    @tag("pairing")
    @task(PAIRINGS)
    def pairing(self) -> None:
        self.pair()

    def own_device(self) -> PlayedDevice | None:
        return random.choice(self.own) if self.own else self.pair()

    def pair(self) -> PlayedDevice | None:
        if not self.admin.ready():
            return None
        typed = next(self.pairings) % TYPED_ONE_IN == 0
        device = (pair_typed if typed else pair_scanned)(self.client, self.admin)
        if device is None:
            return None
        # Heartbeating with the seeded ones from now on.
        self.own.append(device)
        self.devices.append(device)
        if len(self.own) > OWN_DEVICES:
            self.retire(self.own[0])
        return device

    def retire(self, device: PlayedDevice) -> None:
        self.own.remove(device)
        self.devices.remove(device)
        if not self.keep_paired:
            self.admin.deregister(device.device_id)

    def on_stop(self) -> None:
        for device in list(self.own):
            self.retire(device)
