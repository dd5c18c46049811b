"""How many requests one Locust process can send: FastHttpUsers with no wait, posting a
heartbeat's body to the bare echo of `baseline_app.py`, which answers faster than any
Polaris endpoint, so the load generator is what runs out first. A locustfile of its own:

    uvicorn loadtests.baseline_app:app --port 8001 --no-access-log &
    PYTHONPATH=. locust -f loadtests/locust_ceiling.py --host http://127.0.0.1:8001 \\
        --headless -u 32 -r 32 -t 20s --only-summary

Add `--processes 2` to see what a second process adds (loadtests/README.md).
"""

from __future__ import annotations

import orjson
from locust import FastHttpUser, task

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
