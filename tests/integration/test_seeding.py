"""`polaris seed-devices` and `app.services.seeding`: many paired scanners at once, each what a
registration leaves, audited, with credentials filed where the simulator and Locust read them."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from app import clock
from app.errors import InvalidInput
from app.models import AuditEvent, Device, DeviceToken, OutboxEvent, User
from app.services import seeding
from app.services.credentials import DeviceDetails
from app.services.pairing_sessions import credential_ttl
from app.settings import Settings
from simulator.profiles import fleet_identities, identity
from simulator.protocol import Credentials, DeviceApi, DeviceFields
from simulator.state import StateFile, StoredDevice
from tests.factories import PairScanner, SignedInClient
from tests.harness import POLARIS, REPO_ROOT, base_env, run_cli
from tests.scanner import DOCK_SCANNER

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

SIM_SERVER = "http://sim.example:8000"
COUNT = 50


def details(fields: DeviceFields) -> DeviceDetails:
    return DeviceDetails(**dataclasses.asdict(fields))


def fleet_details(count: int) -> list[DeviceDetails]:
    return [
        details(
            dataclasses.replace(
                found.fields(),
                label=seeding.seeded_label(
                    found.serial, found.profile.platform.value, found.profile.marketing_name
                ),
            )
        )
        for found in fleet_identities(count, seed="seeding-test")
    ]


async def seed(
    owner: User, settings: Settings, batch: list[DeviceDetails], *, batch_size: int = 20
) -> list[seeding.SeededDevice]:
    seeded: list[seeding.SeededDevice] = []
    async for done in seeding.seed_devices(
        details=batch,
        owner=owner,
        now=clock.now(),
        ttl=credential_ttl(settings),
        batch_size=batch_size,
    ):
        seeded.extend(done)
    return seeded


def credentials(device: seeding.SeededDevice) -> Credentials:
    return Credentials(
        str(device.device_id), device.device_token, device.device_secret, device.expires_at_iso
    )


def secrets_of(devices: list[seeding.SeededDevice]) -> list[str]:
    # The whole token and secret, and their random parts after the prefix.
    return [
        part
        for d in devices
        for part in (d.device_token, d.device_secret, d.device_token[21:], d.device_secret[4:])
    ]


def without(view: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in names}


def audited(view: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Each audit row of a device view: its action and what its metadata names."""
    return sorted((e["action"], sorted(set(e["metadata"]) - {"seeded"})) for e in view["audit"])


async def row_values(model: type[Device] | type[DeviceToken], row_id: str) -> dict[str, Any]:
    (values,) = await model.filter(id=row_id).values()
    return values


async def test_a_seeded_device_is_what_a_registration_leaves(
    admin: SignedInClient, pair: PairScanner, settings: Settings
) -> None:
    registered = await pair()
    (seeded,) = await seed(admin.user, settings, [details(DOCK_SCANNER)])

    real_view = await admin.api.device(registered.device_id)
    seeded_view = await admin.api.device(str(seeded.device_id))
    changing = ("deviceId", "registeredAtIso", "credentialExpiresAtIso", "tokens", "audit")
    assert without(seeded_view, *changing) == without(real_view, *changing)
    times = ("tokenId", "issuedAtIso", "expiresAtIso")
    assert [without(t, *times) for t in seeded_view["tokens"]] == [
        without(t, *times) for t in real_view["tokens"]
    ]
    assert audited(seeded_view) == audited(real_view)
    # Only what a request leaves differs: ids, times, and the address it came from.
    device_differs = {"id", "registered_at", "last_ip"}
    real_device = await row_values(Device, registered.device_id)
    seeded_device = await row_values(Device, str(seeded.device_id))
    assert without(seeded_device, *device_differs) == without(real_device, *device_differs)
    token_differs = {"id", "device_id", "lookup_id", "token_hash", "secret_hash"}
    token_differs |= {"issued_at", "expires_at"}
    real_token = await DeviceToken.get(device_id=registered.device_id).values()
    seeded_token = await DeviceToken.get(device_id=seeded.device_id).values()
    assert without(seeded_token, *token_differs) == without(real_token, *token_differs)
    assert seeded_token["expires_at"] - seeded_token["issued_at"] == credential_ttl(settings)
    assert seeded.device_token.startswith(f"pxd_{seeded_token['lookup_id']}_")
    assert seeded.device_secret.startswith("pxs_")
    assert len(seeded.device_secret) == len(registered.device_secret)
    assert len(seeded.device_token) == len(registered.device_token)
    assert seeded.device_token not in repr(seeded)
    assert seeded.device_secret not in repr(seeded)


async def test_seeded_devices_are_listed_searched_and_filtered(
    admin: SignedInClient, settings: Settings
) -> None:
    batch = fleet_details(COUNT)
    seeded = await seed(admin.user, settings, batch)

    listed = await admin.api.all_devices()
    assert sorted(d["deviceId"] for d in listed) == sorted(str(d.device_id) for d in seeded)
    assert {d["ownerEmail"] for d in listed} == {admin.user.email}
    assert {d["state"] for d in listed} == {"active"}
    assert all(d["credentialExpiresAtIso"] is not None for d in listed), "an active credential"
    platforms = {d["platform"] for d in listed}
    assert platforms <= {"ios", "ipados", "macos"}
    assert len(platforms) > 1
    assert len({d["label"] for d in listed}) == COUNT
    for platform in platforms:
        found = await admin.api.all_devices(platform=platform)
        assert len(found) == sum(1 for d in batch if d.platform == platform)
    site = batch[0].label.split(" · ")[0]
    searched = await admin.api.all_devices(q=site)
    assert {d["label"] for d in searched} == {d.label for d in batch if d.label.startswith(site)}


async def test_seeded_credentials_exchange_for_an_access_token_and_heartbeat(
    admin: SignedInClient, device_api: DeviceApi, settings: Settings
) -> None:
    seeded = await seed(admin.user, settings, fleet_details(3))

    for device in seeded:
        token = await device_api.access_token(credentials(device))
        await device_api.heartbeat(token)
        assert (await admin.api.device(str(device.device_id)))["online"] is True


async def test_seeding_audits_each_device_by_the_seeding_actor_without_a_secret(
    admin: SignedInClient, settings: Settings
) -> None:
    seeded = await seed(admin.user, settings, fleet_details(COUNT))

    for device in seeded[:3]:
        events = await admin.api.audit(device_id=str(device.device_id))
        assert sorted(e["action"] for e in events) == ["device.registered", "device.token.issued"]
        assert {(e["actor"]["type"], e["actor"]["id"]) for e in events} == {
            ("system", "seed-devices")
        }
        assert all(e["metadata"]["seeded"] is True for e in events)
    rows = await AuditEvent.filter(actor_id="seed-devices").values()
    assert len(rows) == 2 * COUNT
    stored = "\n".join(str(row) for row in rows)
    assert not [s for s in secrets_of(seeded) if s in stored]
    # Webhook subscribers are not told of pairings that never happened.
    assert await OutboxEvent.all().count() == 0


async def test_seeding_refuses_a_batch_size_out_of_bounds(
    admin: SignedInClient, settings: Settings
) -> None:
    for size in (0, seeding.MAX_BATCH + 1):
        with pytest.raises(InvalidInput):
            await seed(admin.user, settings, fleet_details(1), batch_size=size)
    assert await Device.all().count() == 0


def cli_env(settings: Settings, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return base_env(tmp_path, DATABASE_URL=settings.database_url, **overrides)


async def test_the_command_files_credentials_the_simulator_loads(
    admin: SignedInClient, device_api: DeviceApi, settings: Settings, tmp_path: Path
) -> None:
    state_path = tmp_path / "sim.json"
    elsewhere = StoredDevice.of(identity("iphone-14", "QA-1"), Credentials("d-1", "t", "s"))
    state = StateFile(state_path)
    state.save("http://other.example", [elsewhere])
    state.save(SIM_SERVER, [dataclasses.replace(elsewhere, serial="QA-2")])

    args = ["seed-devices", "--count", "20", "--batch", "7", "--state", str(state_path)]
    args += ["--server-url", SIM_SERVER + "/", "--fleet", "load"]
    result = await asyncio.to_thread(run_cli, args, cli_env(settings, tmp_path), input_text="")

    assert result.returncode == 0, result.stderr
    assert "Seeded 20 devices in " in result.stdout
    assert "devices/s" in result.stdout
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    assert [d.serial for d in state.load("http://other.example")] == ["QA-1"]
    filed = state.load(SIM_SERVER)
    assert filed[0].serial == "QA-2"
    fleet = fleet_identities(20, seed="load")
    assert [(d.serial, d.profile) for d in filed[1:]] == [(i.serial, i.profile.name) for i in fleet]
    listed = {d["deviceId"]: d for d in await admin.api.all_devices()}
    assert sorted(listed) == sorted(d.device_id for d in filed[1:])
    for stored in filed[1:]:
        assert listed[stored.device_id]["label"] == stored.identity().label
        assert listed[stored.device_id]["model"] == stored.identity().profile.model
    token = await device_api.access_token(filed[-1].credentials())
    await device_api.heartbeat(token)
    output = result.stdout + result.stderr
    leaked = [s for d in filed[1:] for s in (d.device_token, d.device_secret) if s in output]
    assert not leaked


@pytest.mark.parametrize(
    ("extra_args", "env", "status", "says"),
    [
        pytest.param(
            [],
            {"POLARIS_ENV": "production", "SECRET_KEY": "x" * 48},
            2,
            "Pass --yes",
            id="production-without-yes",
        ),
        pytest.param(
            ["--owner", "nobody@example.com"], {}, 1, "No active admin", id="unknown-owner"
        ),
    ],
)
async def test_the_command_refuses_without_writing(
    admin: SignedInClient,
    settings: Settings,
    tmp_path: Path,
    extra_args: list[str],
    env: dict[str, str],
    status: int,
    says: str,
) -> None:
    state_path = tmp_path / "sim.json"
    args = ["seed-devices", "--count", "5", "--state", str(state_path), *extra_args]
    result = await asyncio.to_thread(
        run_cli, args, cli_env(settings, tmp_path, **env), input_text=""
    )

    assert result.returncode == status, result.stdout + result.stderr
    assert says in result.stderr
    assert await Device.all().count() == 0
    assert StateFile(state_path).load("http://127.0.0.1:8000") == []


async def test_a_stopped_run_files_every_device_it_committed(
    admin: SignedInClient, settings: Settings, tmp_path: Path
) -> None:
    state_path = tmp_path / "sim.json"
    args = ["seed-devices", "--count", "20000", "--batch", "50", "--state", str(state_path)]
    process = await asyncio.create_subprocess_exec(
        *POLARIS,
        *args,
        env=cli_env(settings, tmp_path),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if await Device.all().count():
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 130, stderr
    assert b"Stopped after" in stdout
    filed = {d.device_id for d in StateFile(state_path).load("http://127.0.0.1:8000")}
    assert 0 < len(filed) < 20000
    assert filed == {str(d.id) for d in await Device.all()}
