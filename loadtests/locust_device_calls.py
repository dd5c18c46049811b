"""A paired device's calls over Locust's client, as the app makes them: the access token
exchanged when it is missing or about to expire, heartbeats, push-token updates, rotation."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from locust.contrib.fasthttp import FastHttpSession

from loadtests.locust_wire import has_field, idempotent, send
from simulator.profiles import Identity
from simulator.protocol import (
    HEARTBEAT,
    PUSH_TOKEN,
    ROTATE,
    TOKEN,
    AccessToken,
    Credentials,
    heartbeat_body,
    push_token_body,
)
from simulator.state import StoredDevice

# Refresh an access token this long before it expires, as the simulator's devices do.
REFRESH_MARGIN = 60.0


@dataclass
class PlayedDevice:
    """One device as its app holds it: credentials, the current access token, what it reports."""

    identity: Identity
    credentials: Credentials = field(repr=False)
    token: AccessToken | None = field(default=None, repr=False)

    @classmethod
    def stored(cls, device: StoredDevice) -> PlayedDevice:
        return cls(device.identity(), device.credentials())

    @property
    def device_id(self) -> str:
        return self.credentials.device_id


def exchange(client: FastHttpSession, device: PlayedDevice) -> AccessToken | None:
    started = time.monotonic()
    answer = send(
        client, "POST", TOKEN, body=device.credentials.wire(), verify=has_field("accessToken")
    )
    if not answer.ok:
        device.token = None
        return None
    expires_in = int(answer.body["expiresIn"])
    device.token = AccessToken(str(answer.body["accessToken"]), expires_in, started + expires_in)
    return device.token


def access_token(client: FastHttpSession, device: PlayedDevice) -> AccessToken | None:
    current = device.token
    if current is not None and not current.expires_within(
        min(REFRESH_MARGIN, current.expires_in / 4)
    ):
        return current
    return exchange(client, device)


def heartbeat(client: FastHttpSession, device: PlayedDevice) -> bool:
    token = access_token(client, device)
    if token is None:
        return False
    profile = device.identity.profile
    body = heartbeat_body(
        app_version=profile.app_version,
        os_version=profile.os_version,
        battery_level=random.uniform(0.2, 1.0),
    )
    answer = send(
        client,
        "POST",
        HEARTBEAT,
        body=body,
        bearer=token.token,
        verify=has_field("nextHeartbeatInSeconds"),
    )
    if answer.status == 401:
        # Expired or revoked: the next turn exchanges the credentials again.
        device.token = None
    return answer.ok


def upload_push_token(client: FastHttpSession, device: PlayedDevice, generation: int) -> bool:
    """What the app does when iOS hands it a new APNs token (after a restore, say)."""
    token = access_token(client, device)
    if token is None:
        return False
    renewed = device.identity.with_new_push_token(generation)
    body = push_token_body(
        push_token=renewed.push_token, apns_environment=renewed.profile.apns_environment
    )
    answer = send(client, "PUT", PUSH_TOKEN, body=body, bearer=token.token, ok=(204,))
    if answer.ok:
        device.identity = renewed
    return answer.ok


def rotate(client: FastHttpSession, device: PlayedDevice) -> bool:
    answer = send(
        client,
        "POST",
        ROTATE,
        body=device.credentials.wire(),
        headers=idempotent(),
        verify=has_field("deviceSecret"),
    )
    if not answer.ok:
        return False
    # The new pair stays with the install that holds the old one; its access tokens die.
    device.credentials = Credentials.from_wire(
        answer.body, installation_id=device.credentials.installation_id
    )
    device.token = None
    return True
