"""The webhook URL policy and retry delays, as pure functions."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from app.services.webhook_urls import RefusedUrl, check_url, refusal
from app.services.webhooks import next_delay


@pytest.mark.parametrize(
    ("url", "production", "refused"),
    [
        ("https://hooks.example.com/in", True, False),
        ("http://hooks.example.com/in", True, True),
        ("http://hooks.example.com/in", False, False),
        ("javascript:alert(1)", False, True),
        ("https://hooks.example.com:99999/in", False, True),
        ("https://user:pw@hooks.example.com/in", False, True),
        ("https:///in", False, True),
    ],
)
def test_url_shape(url: str, production: bool, refused: bool) -> None:
    if refused:
        with pytest.raises(RefusedUrl):
            check_url(url, production=production)
    else:
        assert check_url(url, production=production).host == "hooks.example.com"


def test_url_target_keeps_path_and_query() -> None:
    target = check_url("https://hooks.example.com/in?team=ops", production=True)

    assert (target.port, target.target) == (443, "/in?team=ops")


@pytest.mark.parametrize(
    ("address", "allow_private", "refused"),
    [
        ("93.184.215.14", False, False),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False, False),
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),
        ("10.1.2.3", True, False),
        ("192.168.1.1", False, True),
        ("::1", False, True),
        ("fc00::1", True, False),
        ("169.254.169.254", True, True),
        ("169.254.1.1", True, True),
        ("fe80::1", True, True),
        ("fd00:ec2::254", True, True),
        ("::ffff:169.254.169.254", True, True),
        ("::ffff:10.0.0.1", False, True),
        ("0.0.0.0", True, True),  # noqa: S104 (an address checked, not bound)
        ("224.0.0.1", True, True),
    ],
)
def test_address_policy(address: str, allow_private: bool, refused: bool) -> None:
    why = refusal(ipaddress.ip_address(address), allow_private=allow_private)

    assert (why is not None) == refused, why


def test_retry_delays_follow_the_schedule_with_jitter_then_end() -> None:
    schedule = (5, 300)
    delays = [next_delay(1, schedule) for _ in range(200)]

    assert all(
        d is not None and timedelta(seconds=4.5) <= d <= timedelta(seconds=5.5) for d in delays
    )
    assert len(set(delays)) > 1
    second = next_delay(2, schedule)
    assert second is not None
    assert timedelta(seconds=270) <= second <= timedelta(seconds=330)
    assert next_delay(3, schedule) is None
