"""The command-line options of the Polaris users, beside Locust's own (`locust --help` lists
them under "Custom arguments"), and the typed view the users read them through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locust.env import Environment

from simulator.state import DEFAULT_PATH

# The simulator's own variables, so one shell session sets up both.
ADMIN_EMAIL_ENV = "POLARIS_SIM_ADMIN_EMAIL"
ADMIN_PASSWORD_ENV = "POLARIS_SIM_ADMIN_PASSWORD"


def add_options(parser: Any) -> None:
    parser.add_argument("--sim-state", default=str(DEFAULT_PATH), help="simulator credentials")
    parser.add_argument("--heartbeat-every", type=float, default=30.0, help="s per device")
    parser.add_argument("--devices-per-user", type=int, default=50)
    parser.add_argument(
        "--admin-email",
        default="",
        env_var=ADMIN_EMAIL_ENV,
        help=f"admin who mints and approves codes (PairingDevice, MixedFleet); {ADMIN_EMAIL_ENV}",
    )
    parser.add_argument(
        "--admin-password",
        default="",
        env_var=ADMIN_PASSWORD_ENV,
        # Kept out of the web UI's form, where it would sit in the page.
        include_in_web_ui=False,
        help=f"that admin's password; better given as {ADMIN_PASSWORD_ENV}",
    )
    parser.add_argument(
        "--keep-paired",
        action="store_true",
        default=False,
        help="keep the devices a run pairs (by default each is deregistered after its test)",
    )


@dataclass(frozen=True)
class PolarisOptions:
    sim_state: str
    heartbeat_every: float
    devices_per_user: int
    admin_email: str
    admin_password: str = field(repr=False)
    keep_paired: bool

    @property
    def has_admin(self) -> bool:
        return bool(self.admin_email and self.admin_password)


def options_of(environment: Environment) -> PolarisOptions:
    parsed = environment.parsed_options
    if parsed is None:
        raise RuntimeError("the Polaris users run from the locust command line")
    return PolarisOptions(
        sim_state=str(parsed.sim_state),
        heartbeat_every=float(parsed.heartbeat_every),
        devices_per_user=max(1, int(parsed.devices_per_user)),
        admin_email=str(parsed.admin_email or ""),
        admin_password=str(parsed.admin_password or ""),
        keep_paired=bool(parsed.keep_paired),
    )
