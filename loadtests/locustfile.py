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

import orjson
from locust import FastHttpUser, events, task
from locust.env import Environment

from simulator.protocol import HEARTBEAT, JSON_HEADERS, TOKEN, USER_AGENT
from simulator.state import DEFAULT_PATH, StateFile, StoredDevice

HEADERS = {**JSON_HEADERS, "User-Agent": USER_AGENT}
# Refresh an access token this long before it expires, as the simulator's devices do.
REFRESH_MARGIN = 60.0

_devices: list[StoredDevice] = []
_deal = itertools.count()
_deal_lock = threading.Lock()


def _options(parser: Any) -> None:
    parser.add_argument("--sim-state", default=str(DEFAULT_PATH), help="simulator credentials")
    parser.add_argument("--heartbeat-every", type=float, default=30.0, help="s per device")
    parser.add_argument("--devices-per-user", type=int, default=50)


def _load_devices(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    assert options is not None
    host = (environment.host or "").rstrip("/")
    _devices[:] = StateFile(Path(options.sim_state)).load(host)
    if not _devices:
        raise SystemExit(f"no paired devices for {host} in {options.sim_state}: run the simulator")


# Registered by call, not as decorators: an unannotated decorator would untype the listeners.
events.init_command_line_parser.add_listener(_options)
events.test_start.add_listener(_load_devices)


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
        # FastHttpSession takes a str body (geventhttpclient encodes it as UTF-8).
        self.credentials = {
            d.device_id: _json({"deviceToken": d.device_token, "deviceSecret": d.device_secret})
            for d in self.devices
        }

    def exchange(self, device: StoredDevice) -> str | None:
        with self.client.post(
            TOKEN,
            data=self.credentials[device.device_id],
            headers=HEADERS,
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
        # Users started in lock-step make a load no real fleet makes. Locust has patched
        # time.sleep into gevent's, so this yields to the other users.
        time.sleep(random.uniform(0, self.wait_time()))

    @task
    def heartbeat(self) -> None:
        device = next(self.turn)
        token = self.access_token(device)
        if token is None:
            return
        body = {"appVersion": "2.4.0", "batteryLevel": round(random.uniform(0.2, 1), 2)}
        with self.client.post(
            HEARTBEAT,
            data=_json(body),
            headers={**HEADERS, "Authorization": f"Bearer {token}"},
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


def _json(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


def _problem(answer: Any) -> str:
    try:
        return f"{answer.status_code} {orjson.loads(answer.content).get('code')}"
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return f"{answer.status_code}"
