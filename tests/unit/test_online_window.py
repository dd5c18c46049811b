"""Presence is derived when read: online while the last heartbeat is younger than the window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.models import Device
from app.services.devices import is_online
from app.settings import Settings

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def settings(tmp_path: Path, window_seconds: int | None) -> Settings:
    """The defaults, or the online window configured to `window_seconds`."""
    if window_seconds is None:
        return Settings(data_dir=tmp_path, secret_key="x" * 48)
    return Settings(
        heartbeat_online_window_seconds=window_seconds,
        data_dir=tmp_path,
        secret_key="x" * 48,
    )


@pytest.mark.parametrize("window_seconds", [None, 30], ids=["default-90s", "configured-30s"])
@pytest.mark.parametrize(
    ("seen_ago", "online"),
    [
        pytest.param(None, False, id="never-seen"),
        pytest.param(lambda window: timedelta(0), True, id="seen-just-now"),
        pytest.param(lambda window: window - SECOND, True, id="window-minus-1s"),
        pytest.param(
            lambda window: window - timedelta(microseconds=1), True, id="window-minus-1us"
        ),
        pytest.param(lambda window: window, False, id="exactly-the-window"),
        pytest.param(lambda window: window + SECOND, False, id="window-plus-1s"),
        pytest.param(lambda window: timedelta(days=3), False, id="days-ago"),
    ],
)
def test_online_while_last_heartbeat_is_younger_than_the_window(
    tmp_path: Path,
    window_seconds: int | None,
    seen_ago: Callable[[timedelta], timedelta] | None,
    online: bool,
) -> None:
    config = settings(tmp_path, window_seconds)
    window = timedelta(seconds=config.heartbeat_online_window_seconds)
    last_seen = None if seen_ago is None else NOW - seen_ago(window)

    assert is_online(Device(last_seen_at=last_seen), NOW, config) is online


def test_the_window_is_read_from_settings(tmp_path: Path) -> None:
    device = Device(last_seen_at=NOW - timedelta(seconds=45))

    assert settings(tmp_path, None).heartbeat_online_window_seconds == 90
    assert is_online(device, NOW, settings(tmp_path, None)) is True
    assert is_online(device, NOW, settings(tmp_path, 30)) is False
