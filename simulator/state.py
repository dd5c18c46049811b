"""The local file that keeps paired devices' credentials, so a fleet can stop and resume.

It holds live secrets: written atomically with mode 0600, and locked while a simulator
uses it so two processes never overwrite each other's devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from simulator.profiles import Identity, profile
from simulator.protocol import Credentials

VERSION = 1
DEFAULT_PATH = Path(".polaris-sim.json")


class StateFileError(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredDevice:
    serial: str
    profile: str
    label: str
    push_token: str
    device_id: str
    device_token: str
    device_secret: str
    expires_at_iso: str | None = None
    # Files written before installation ids existed have none: such a device sends none.
    installation_id: str | None = None

    def __repr__(self) -> str:
        return f"StoredDevice({self.serial}, device_id={self.device_id})"

    @classmethod
    def of(cls, identity: Identity, credentials: Credentials) -> StoredDevice:
        return cls(
            serial=identity.serial,
            profile=identity.profile.name,
            label=identity.label,
            push_token=identity.push_token,
            device_id=credentials.device_id,
            device_token=credentials.device_token,
            device_secret=credentials.device_secret,
            expires_at_iso=credentials.expires_at_iso,
            installation_id=credentials.installation_id,
        )

    def identity(self) -> Identity:
        return Identity(self.serial, profile(self.profile), self.label, self.push_token)

    def credentials(self) -> Credentials:
        return Credentials(
            self.device_id,
            self.device_token,
            self.device_secret,
            self.expires_at_iso,
            installation_id=self.installation_id,
        )


class StateFile:
    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": VERSION, "servers": {}}
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            # Someone loosened it; secrets inside, so put it back before reading on.
            self.path.chmod(0o600)
        try:
            data = orjson.loads(self.path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise StateFileError(f"{self.path} is not a simulator state file: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise StateFileError(f"{self.path} has an unknown format (version {VERSION} expected)")
        return data

    def load(self, server_url: str) -> list[StoredDevice]:
        entry = self._read()["servers"].get(server_url.rstrip("/"), {})
        return [StoredDevice(**device) for device in entry.get("devices", [])]

    def save(self, server_url: str, devices: list[StoredDevice]) -> None:
        data = self._read()
        data["servers"][server_url.rstrip("/")] = {"devices": [asdict(d) for d in devices]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[StateFile]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateFileError(
                    f"{self.path} is in use by another simulator process"
                ) from None
            yield self
        finally:
            os.close(fd)
