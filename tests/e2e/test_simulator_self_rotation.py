"""A simulated device renews its own credentials once a heartbeat's `rotateAfterIso` has
passed, against a real server.

The server is told to ask for rotation after a billionth of the credentials' life
(`CREDENTIAL_ROTATE_AFTER`): 8 ms of 90 days, so `rotateAfterIso` is already past when the
first heartbeat answers, and the device rotates without any clock being moved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.admin import AdminApi, admin_http_client
from simulator.profiles import identity
from simulator.protocol import DeviceApi, device_http_client
from simulator.scanner import SimulatedScanner
from tests.harness import REPO_ROOT, ServerProcess, base_env

pytestmark = [pytest.mark.slow]


@pytest.fixture
def eager_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # A millionth of a second into a 90-day life: past by the time any heartbeat answers,
    # however fast the rotation, the exchange and the heartbeat after it come.
    env = base_env(tmp_path, CREDENTIAL_ROTATE_AFTER="0.0000000000001")
    process = ServerProcess(tmp_path, env).start()
    try:
        yield process
    finally:
        process.stop()


async def test_a_device_rotates_on_its_own_once_rotate_after_has_passed(
    eager_server: ServerProcess,
) -> None:
    email, password = eager_server.first_admin()
    async with (
        device_http_client(eager_server.url) as device_client,
        admin_http_client(eager_server.url) as admin_client,
    ):
        admin = AdminApi(admin_client)
        await admin.login(email, password)
        phone = SimulatedScanner(identity("iphone-14", "E2E-ROTATES"), DeviceApi(device_client))
        paired = await phone.pair_by_qr((await admin.mint_code()).pairing_uri)
        session = phone.session
        assert session is not None

        await phone.heartbeat()

        renewed = phone.credentials
        assert session.rotations == 1
        assert renewed is not None
        assert renewed.device_token != paired.device_token
        # The new pair works: the next heartbeat trades it for an access token, and its own
        # `rotateAfterIso` is past as well, so the device renews once more.
        await phone.heartbeat()
        assert session.rotations == 2
        assert session.token_exchanges == 2

        tokens = (await admin.device(paired.device_id))["tokens"]
        assert sorted(t["state"] for t in tokens) == ["active", "rotated", "rotated"]
        rotations = await admin.audit(action="device.token.rotated", device_id=paired.device_id)
        assert len(rotations) == 2


def fleet(server: ServerProcess, workdir: Path, *, admin: bool, seconds: int) -> str:
    email, password = server.first_admin()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_SIM_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "TERM": "dumb", "POLARIS_SIM_BASE_URL": server.url})
    if admin:
        env.update({"POLARIS_SIM_ADMIN_EMAIL": email, "POLARIS_SIM_ADMIN_PASSWORD": password})
    args = ["fleet", "--devices", "3", "--heartbeat", "1", "--seed", "renews"]
    ran = subprocess.run(
        [sys.executable, "-m", "simulator", *args, "--duration", str(seconds)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


async def test_a_fleet_resumes_with_the_pairs_its_devices_rotated_to(
    eager_server: ServerProcess, tmp_path: Path
) -> None:
    """The credentials file keeps each device's newest pair: a resumed run that presented a
    rotated-out one would be taken for a thief and cut off."""
    fleet(eager_server, tmp_path, admin=True, seconds=3)
    resumed = fleet(eager_server, tmp_path, admin=False, seconds=3)

    assert "devices: 3 paired of 3" in resumed
    email, password = eager_server.first_admin()
    async with admin_http_client(eager_server.url) as admin_client:
        admin = AdminApi(admin_client)
        await admin.login(email, password)
        devices = await admin.all_devices(q="SIM-renews-")
        assert len(devices) == 3
        for device in devices:
            tokens = (await admin.device(device["deviceId"]))["tokens"]
            states = sorted(t["state"] for t in tokens)
            # About one rotation per heartbeat, in both runs; never a revocation.
            assert states.count("rotated") >= 2, states
            assert set(states) == {"active", "rotated"}, states
        assert await admin.audit(action="device.token.reuse_detected") == []
