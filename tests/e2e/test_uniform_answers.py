"""The refusal timing tool as docs/simulator.md shows it, on a short run: every kind of refused
redemption and token exchange gets its own documented answer every time, and the table
shows them all. Timing is printed, never judged here."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.docs_commands import documented
from tests.harness import REPO_ROOT

pytestmark = [pytest.mark.slow]

GUIDE = "docs/simulator.md"
REQUESTS = 150
# What DESIGN §4, §5 and §7 say each refusal answers.
ANSWERS = [
    ("redemption", "unknown code", "400 invalid_code"),
    ("redemption", "expired code", "410 code_expired"),
    ("redemption", "used code", "409 code_already_used"),
    ("redemption", "burned code", "410 session_burned"),
    ("token exchange", "unknown deviceToken", "401 invalid_credentials"),
    ("token exchange", "known deviceToken, wrong secret", "401 invalid_credentials"),
    ("token exchange", "malformed deviceToken", "401 invalid_credentials"),
]
FIGURES = r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d{3})$"


@pytest.mark.timeout(120)
def test_every_refusal_gets_its_own_answer_every_time() -> None:
    tool = next(c for c in documented("python -m loadtests.uniform_answers", GUIDE) if not c.args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
    # Unpinned: a smoke run measures nothing, and other tests may be using the CPUs.
    short = ["--requests", str(REQUESTS), "--warmup", "5", "--no-pin"]
    ran = subprocess.run(
        [sys.executable, "-m", "loadtests.uniform_answers", *tool.args, *short],
        env={**env, **dict(tool.env)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "INVALID RUN" not in ran.stderr
    assert "REDEEM_FAILURES_PER_IP=" in ran.stdout
    assert f"{REQUESTS} requests per kind" in ran.stdout
    for group, kind, answer in ANSWERS:
        row = re.search(
            rf"^{group}\s+{re.escape(kind)}\s+{answer}{FIGURES}", ran.stdout, flags=re.MULTILINE
        )
        assert row, f"no row {group} / {kind} answered {answer}:\n{ran.stdout}"
        p50, p99, mean, ratio = (float(x) for x in row.groups())
        assert 0 < p50 <= p99, row.group(0)
        assert mean > 0, row.group(0)
        assert ratio > 0, row.group(0)
