"""New devices joining the fleet, as fast as the users go: each iteration an admin mints a
code and a new device pairs with it, scanned or typed, then exchanges its credentials for
an access token, heartbeats once and (unless --keep-paired) is deregistered, so the fleet
stays the size it was."""

from __future__ import annotations

from locust import FastHttpUser, between, tag, task

from loadtests.locust_admin import AdminSession
from loadtests.locust_device_calls import PlayedDevice, heartbeat
from loadtests.locust_options import options_of
from loadtests.locust_pairing import pair_scanned, pair_typed


class PairingDevice(FastHttpUser):
    """One admin console session per user, signed in on start (--admin-email and
    --admin-password, or the simulator's environment variables)."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        options = options_of(self.environment)
        self.keep_paired = options.keep_paired
        self.admin = AdminSession(self, options.admin_email, options.admin_password)
        # Paired and not deregistered yet: what on_stop still owes the fleet.
        self.paired: list[PlayedDevice] = []
        self.admin.ready()

    @tag("scanned")
    @task(3)
    def scanned(self) -> None:
        if self.admin.ready():
            self.settle(pair_scanned(self.client, self.admin))

    @tag("typed")
    @task(1)
    def typed(self) -> None:
        if self.admin.ready():
            self.settle(pair_typed(self.client, self.admin))

    def settle(self, device: PlayedDevice | None) -> None:
        if device is None:
            return
        self.paired.append(device)
        heartbeat(self.client, device)
        if self.keep_paired or self.admin.deregister(device.device_id):
            self.paired.remove(device)

    def on_stop(self) -> None:
        if self.keep_paired:
            return
        for device in list(self.paired):
            if self.admin.deregister(device.device_id):
                self.paired.remove(device)
