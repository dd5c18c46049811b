"""How many requests one Locust process can send: FastHttpUsers with no wait, posting a
heartbeat's body to the bare echo of `baseline_app.py`, which answers faster than any
Polaris endpoint, so the load generator is what runs out first. A locustfile of its own:

    uvicorn loadtests.baseline_app:app --port 8001 --no-access-log &
    PYTHONPATH=. locust -f loadtests/locust_ceiling.py --host http://127.0.0.1:8001 \\
        --headless -u 32 -r 32 -t 20s --only-summary

Add `--processes 2` to see what a second process adds (loadtests/README.md).
"""

from __future__ import annotations

from typing import Any

import orjson
from locust import FastHttpUser, constant_throughput, events, task

from loadtests.locust_wire import HEADERS
from simulator.protocol import heartbeat_body

ECHO = "/echo"
BODY = orjson.dumps(
    heartbeat_body(app_version="2.4.0", os_version="17.5.1", battery_level=0.87)
).decode()


class EchoCeiling(FastHttpUser):
    @task
    def echo(self) -> None:
        self.client.post(ECHO, data=BODY, headers=HEADERS)


class PacedEcho(FastHttpUser):
    """The same request at a fixed pace per user (`--echo-rate` a second), for an offered
    load that does not depend on how fast the answers come: the baseline's side of
    `loadtests.offered_load`."""

    def wait_time(self) -> float:
        rate = float(getattr(self.environment.parsed_options, "echo_rate", 1.0))
        return constant_throughput(rate)(self)

    @task
    def echo(self) -> None:
        self.client.post(ECHO, data=BODY, headers=HEADERS)


def _options(parser: Any) -> None:
    parser.add_argument("--echo-rate", type=float, default=1.0, help="requests/s per user")


events.init_command_line_parser.add_listener(_options)
