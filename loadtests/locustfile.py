"""Locust scenarios for the device hot paths: heartbeats and access-token exchange.

Devices are paired beforehand by the simulator (`python -m simulator fleet --devices N
--duration 1`), whose credentials file this reads: Locust never mints codes. A few hundred
users each cycle through a slice of the devices, so thousands of devices share few
connections. Run it in its own process (gevent patches the world); see loadtests/README.md.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any

import gevent
import orjson
from locust import FastHttpUser, events, task
from locust.env import Environment

from simulator.protocol import HEARTBEAT, JSON_HEADERS, TOKEN, USER_AGENT
from simulator.state import DEFAULT_PATH, StateFile, StoredDevice

# Refresh an access token this long before it expires, as the simulator's devices do.
REFRESH_MARGIN = 60.0

_devices: list[StoredDevice] = []
_deal = itertools.count()
_deal_lock = threading.Lock()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--sim-state", default=str(DEFAULT_PATH), help="simulator credentials")
    parser.add_argument("--heartbeat-every", type=float, default=30.0, help="s per device")
    parser.add_argument("--devices-per-user", type=int, default=50)


@events.test_start.add_listener
def _load_devices(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    assert options is not None
    host = (environment.host or "").rstrip("/")
    _devices[:] = StateFile(Path(options.sim_state)).load(host)
    if not _devices:
        raise SystemExit(f"no paired devices for {host} in {options.sim_state}: run the simulator")


def _slice(size: int) -> list[StoredDevice]:
    with _deal_lock:
        start = next(_deal) * size
    return [_devices[(start + offset) % len(_devices)] for offset in range(size)]


class Device(FastHttpUser):
    """Base: a slice of devices with their access tokens, exchanged when needed."""

    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None
        self.devices = _slice(max(1, min(options.devices_per_user, len(_devices))))
        self.every = float(options.heartbeat_every)
        self.turn = itertools.cycle(self.devices)
        self.tokens: dict[str, tuple[str, float]] = {}

    def exchange(self, device: StoredDevice) -> str | None:
        body = {"deviceToken": device.device_token, "deviceSecret": device.device_secret}
        with self.client.post(
            TOKEN,
            data=orjson.dumps(body),
            headers={**JSON_HEADERS, "User-Agent": USER_AGENT},
            name=TOKEN,
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(_problem(answer))
                return None
            grant = orjson.loads(answer.content)
        expires_at = time.monotonic() + float(grant["expiresIn"])
        self.tokens[device.device_id] = (str(grant["accessToken"]), expires_at)
        return str(grant["accessToken"])

    def access_token(self, device: StoredDevice) -> str | None:
        token, expires_at = self.tokens.get(device.device_id, ("", 0.0))
        if time.monotonic() + REFRESH_MARGIN < expires_at:
            return token
        return self.exchange(device)


class HeartbeatingDevices(Device):
    """Each device heartbeats every --heartbeat-every seconds, start times spread at random."""

    weight = 10

    def wait_time(self) -> float:
        return self.every / len(self.devices) * random.uniform(0.9, 1.1)

    def on_start(self) -> None:
        super().on_start()
        # Users started in lock-step make a load no real fleet makes.
        gevent.sleep(random.uniform(0, self.wait_time()))

    @task
    def heartbeat(self) -> None:
        device = next(self.turn)
        token = self.access_token(device)
        if token is None:
            return
        body = {"appVersion": "2.4.0", "batteryLevel": round(random.uniform(0.2, 1), 2)}
        with self.client.post(
            HEARTBEAT,
            data=orjson.dumps(body),
            headers={**JSON_HEADERS, "User-Agent": USER_AGENT, "Authorization": f"Bearer {token}"},
            name=HEARTBEAT,
            catch_response=True,
        ) as answer:
            if answer.status_code == 401:
                self.tokens.pop(device.device_id, None)
            if answer.status_code != 200:
                answer.failure(_problem(answer))


class ExchangingTokens(Device):
    """Apps waking up: trade the long-lived credentials for a fresh access token."""

    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def token(self) -> None:
        self.exchange(next(self.turn))


def _problem(answer: Any) -> str:
    try:
        return f"{answer.status_code} {orjson.loads(answer.content).get('code')}"
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return f"{answer.status_code}"
