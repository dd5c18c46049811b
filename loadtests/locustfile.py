"""Locust scenarios for Polaris, built on the simulator's protocol (never on `app`).

    PYTHONPATH=. locust -f loadtests/locustfile.py --host URL [options] [UserClass ...]

`HeartbeatingDevices` and `ExchangingTokens` play the devices of the simulator's credentials
file (seed them first: `python -m simulator fleet --devices N --duration 1`); `PairingDevice`
pairs new devices through an admin's console session; `MixedFleet` is the whole fleet's
mix. A run that names no user class plays the two hot paths, as it always has. Locust runs
in its own process (gevent patches the world); see loadtests/README.md.
"""

from __future__ import annotations

from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import events, stats
from locust.env import Environment
from locust.runners import Runner, WorkerRunner

from loadtests.locust_fleet import load_fleet
from loadtests.locust_hot_paths import ExchangingTokens, FleetUser, HeartbeatingDevices
from loadtests.locust_mixed_fleet import MixedFleet
from loadtests.locust_options import add_options, options_of
from loadtests.locust_pairing_device import PairingDevice

# Locust takes the user classes from this module's names.
__all__ = ["ExchangingTokens", "HeartbeatingDevices", "MixedFleet", "PairingDevice"]

DEFAULT_USERS = (HeartbeatingDevices, ExchangingTokens)
ADMIN_USERS = (PairingDevice, MixedFleet)


def _default_users(environment: Environment, runner: Runner, **_: Any) -> None:
    # The master (or the only process) decides which users run; a worker spawns whichever
    # the master names, so it keeps them all.
    parsed = environment.parsed_options
    if parsed is None or parsed.user_classes or isinstance(runner, WorkerRunner):
        return
    environment.user_classes[:] = list(DEFAULT_USERS)


def _complete_csv(environment: Environment, runner: Runner, **_: Any) -> None:
    parsed = environment.parsed_options
    if parsed is None or not parsed.csv_prefix or isinstance(runner, WorkerRunner):
        return

    def last_rows(**_: Any) -> None:
        # Locust's CSV writer writes once a second and is not asked again at the end, so the
        # files would miss the last second (on_stop's requests among them): give it a turn.
        gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.2)

    environment.events.quit.add_listener(last_rows)


def _fresh_clock(**_: Any) -> None:
    # Locust arms --run-time with gevent.spawn_later, on the event loop's cached clock, which
    # stands still until the loop first runs: after a slow start (imports on a busy machine)
    # a headless run would end that much early.
    gevent.get_hub().loop.update_now()


def _check_run(environment: Environment, **_: Any) -> None:
    """Stop before the first request when the chosen users lack what they need."""
    if isinstance(environment.runner, WorkerRunner):
        return
    chosen = environment.user_classes
    needs_admin = any(issubclass(user, ADMIN_USERS) for user in chosen)
    if needs_admin and not options_of(environment).has_admin:
        raise SystemExit(
            "PairingDevice and MixedFleet need an admin: --admin-email and "
            "--admin-password (or POLARIS_SIM_ADMIN_EMAIL and POLARIS_SIM_ADMIN_PASSWORD)"
        )
    if any(issubclass(user, FleetUser) for user in chosen):
        load_fleet(environment)


# Registered by call, not as decorators: an unannotated decorator would untype the listeners.
events.init_command_line_parser.add_listener(add_options)
events.init.add_listener(_default_users)
events.init.add_listener(_fresh_clock)
events.init.add_listener(_complete_csv)
events.test_start.add_listener(_check_run)
