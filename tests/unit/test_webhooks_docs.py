"""docs/webhooks.md against the code: every event type listed, the retry table as the default
schedule, and the Python receiver example run on a body the server would send."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import uuid4

import pytest
from standardwebhooks import Webhook

from app import clock
from app.models import EventType, OutboxEvent
from app.services import webhooks
from app.settings import DEFAULT_WEBHOOK_RETRY_SCHEDULE
from tests.harness import REPO_ROOT

PAGE = (REPO_ROOT / "docs" / "webhooks.md").read_text()
SECRET = "whsec_" + "MfKQ9r0x4vH3kT7bLp2Zq8sWc5Yn1Ue6Gd0Ai9Jo3Rs="
UNITS = {"s": 1, "min": 60, "h": 3600}


def python_example() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_event_table_lists_every_event_type_and_no_other() -> None:
    table = PAGE.split("### Event types", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `([a-z_.]+)` \|", table, re.M)
    assert sorted(listed) == sorted(t.value for t in EventType)


def test_the_retry_table_is_the_default_schedule() -> None:
    row = re.search(r"^\| next attempt in \|(.*)\|$", PAGE, re.M)
    assert row is not None
    waits = [cell.strip().split() for cell in row.group(1).split("|")]
    assert tuple(int(n) * UNITS[unit] for n, unit in waits) == DEFAULT_WEBHOOK_RETRY_SCHEDULE


def signed(event: OutboxEvent, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and signature headers of an attempt, as the documented headers say."""
    body = webhooks.body_of(event)
    msg_id = webhooks.message_id(event.id)
    now = clock.now()
    return body.encode(), {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": Webhook(secret).sign(msg_id, now, body),
        "Content-Type": "application/json",
    }


def test_the_python_receiver_example_verifies_deduplicates_and_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLARIS_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, object] = {}
    exec(compile(python_example(), "docs/webhooks.md", "exec"), namespace)  # noqa: S102
    receive = namespace["receive"]
    assert callable(receive)
    event = OutboxEvent(
        id=uuid4(),
        type=EventType.DEVICE_OFFLINE.value,
        data={"deviceId": str(uuid4()), "label": "Dock 4", "kind": "scanner", "atIso": "now"},
        occurred_at=clock.now(),
    )
    body, headers = signed(event, SECRET)

    assert receive(body, headers) == 204
    assert capsys.readouterr().out == "Dock 4 went offline at now\n"
    assert receive(body, headers) == 204
    assert capsys.readouterr().out == ""  # the retry is recognised by its webhook-id

    forged_body, forged = signed(event, "whsec_" + "A" * 43 + "=")
    assert receive(forged_body, forged) == 400
    assert receive(body.replace(b"Dock 4", b"Dock 5"), headers) == 400
    clock.advance(timedelta(minutes=-10))
    replayed_body, replayed = signed(event, SECRET)
    assert receive(replayed_body, replayed) == 400  # too old to be anything but a replay
