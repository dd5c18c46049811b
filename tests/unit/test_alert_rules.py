"""The example Prometheus rules (deploy/prometheus): promtool accepts them, each alert fires
on the failure it names (tests/prometheus/alerts_test.yml), and every series they read is
one the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app import metrics
from tests.backends import IN_CI
from tests.harness import REPO_ROOT

RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULE_TESTS = REPO_ROOT / "tests" / "prometheus" / "alerts_test.yml"
# Read at scrape time rather than kept by prometheus-client (app/api/metrics.py).
SCRAPE_TIME_READINGS = {"polaris_devices_online", "polaris_backend_up"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    if executable is None:
        if IN_CI:
            pytest.fail("CI=true but promtool is not installed (scripts/ensure-system-packages)")
        pytest.skip("promtool is not installed; `apt-get install prometheus`")
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_on_its_failure_and_not_before() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {rule["alert"] for group in _rules()["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }

    assert alerts == tested


def test_promtool_accepts_the_scrape_configuration(tmp_path: Path) -> None:
    # The token file is mounted in a real deployment; promtool checks that it exists.
    token = tmp_path / "polaris-metrics-token"
    token.write_text("token")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        CONFIG.read_text().replace("/etc/prometheus/polaris-metrics-token", str(token))
    )
    shutil.copy(RULES, tmp_path / "alerts.yml")

    checked = promtool("check", "config", str(config))

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_read_only_series_the_service_exports() -> None:
    expressions = " ".join(
        str(rule["expr"]) for group in _rules()["groups"] for rule in group["rules"]
    )
    read = set(re.findall(r"\bpolaris_\w+", expressions))

    assert read <= _exported(), read - _exported()


def _rules() -> dict[str, list[dict[str, list[dict[str, object]]]]]:
    loaded: dict[str, list[dict[str, list[dict[str, object]]]]] = yaml.safe_load(RULES.read_text())
    return loaded


def _exported() -> set[str]:
    """Every sample name the service's metrics produce."""
    names = set(SCRAPE_TIME_READINGS)
    for value in vars(metrics).values():
        describe = getattr(value, "describe", None)
        if describe is None or not hasattr(value, "_name"):
            continue
        for family in describe():
            kind = family.type
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names.update(family.name + suffix for suffix in suffixes.get(kind, [""]))
    return names
