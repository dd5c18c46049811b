"""Realistic Apple devices running the scanner app, and the identities built from them.

Model identifiers are the ones the hardware reports (`utsname.machine` on iOS, `hw.model`
on macOS). An app build from TestFlight or Xcode registers for the APNs sandbox, an App
Store build for production.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from enum import StrEnum

from simulator.protocol import DeviceFields

DEFAULT_CAPABILITIES = ("scan", "push")
PUSH_TOKEN_BYTES = 32


class Platform(StrEnum):
    IOS = "ios"
    IPADOS = "ipados"
    MACOS = "macos"


class Build(StrEnum):
    APP_STORE = "app_store"
    TESTFLIGHT = "testflight"

    @property
    def apns_environment(self) -> str:
        return "production" if self is Build.APP_STORE else "sandbox"


@dataclass(frozen=True)
class Profile:
    name: str
    marketing_name: str
    platform: Platform
    model: str
    os_version: str
    app_version: str
    build: Build = Build.APP_STORE
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES

    @property
    def apns_environment(self) -> str:
        return self.build.apns_environment


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("iphone-14", "iPhone 14", Platform.IOS, "iPhone14,7", "17.5.1", "2.4.0"),
        Profile("iphone-15-pro", "iPhone 15 Pro", Platform.IOS, "iPhone16,1", "17.6", "2.4.0"),
        Profile(
            "iphone-15-pro-beta",
            "iPhone 15 Pro",
            Platform.IOS,
            "iPhone16,1",
            "18.0",
            "2.5.0b3",
            Build.TESTFLIGHT,
        ),
        Profile(
            "iphone-se", "iPhone SE (3rd generation)", Platform.IOS, "iPhone14,6", "16.7.8", "2.3.2"
        ),
        Profile(
            "ipad-air",
            "iPad Air (5th generation)",
            Platform.IPADOS,
            "iPad13,16",
            "17.5",
            "2.4.0",
        ),
        Profile(
            "macbook-air",
            "MacBook Air (M2, 2022)",
            Platform.MACOS,
            "Mac14,2",
            "14.5",
            "2.4.0",
            capabilities=("managed", "scan", "push"),
        ),
        Profile(
            "mac-mini",
            "Mac mini (M2, 2023)",
            Platform.MACOS,
            "Mac14,3",
            "14.6.1",
            "2.5.0b3",
            Build.TESTFLIGHT,
            capabilities=("managed", "scan"),
        ),
    )
}

# A warehouse fleet: mostly phones, some iPads at stations, a few Macs at the desks.
FLEET_MIX: tuple[tuple[str, int], ...] = (
    ("iphone-14", 30),
    ("iphone-15-pro", 25),
    ("iphone-se", 10),
    ("iphone-15-pro-beta", 5),
    ("ipad-air", 20),
    ("macbook-air", 7),
    ("mac-mini", 3),
)


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; known: {known}") from None


def push_token(seed: str) -> str:
    """An APNs device token: 32 bytes as 64 hex digits, stable for one identity."""
    return hashlib.sha256(f"polaris-sim-push:{seed}".encode()).hexdigest()[: 2 * PUSH_TOKEN_BYTES]


@dataclass(frozen=True)
class Identity:
    """One physical device: the same phone re-paired keeps its identity, not its deviceId."""

    serial: str
    profile: Profile
    label: str
    push_token: str

    def fields(self) -> DeviceFields:
        return DeviceFields(
            label=self.label,
            platform=self.profile.platform.value,
            model=self.profile.model,
            os_version=self.profile.os_version,
            app_version=self.profile.app_version,
            apns_environment=self.profile.apns_environment,
            capabilities=self.profile.capabilities,
            push_token=self.push_token,
        )

    def with_new_push_token(self, generation: int) -> Identity:
        """What iOS hands the app after a restore or reinstall: a different token."""
        return replace(self, push_token=push_token(f"{self.serial}:{generation}"))


def identity(profile_name: str, serial: str, label: str | None = None) -> Identity:
    chosen = profile(profile_name)
    return Identity(
        serial=serial,
        profile=chosen,
        label=label or f"{chosen.marketing_name} {serial}",
        push_token=push_token(serial),
    )


def fleet_identities(count: int, *, seed: str = "fleet", prefix: str = "SIM") -> list[Identity]:
    """`count` devices drawn from FLEET_MIX; the same seed gives the same fleet."""
    chooser = random.Random(seed)
    names = [name for name, _ in FLEET_MIX]
    weights = [weight for _, weight in FLEET_MIX]
    return [
        identity(chooser.choices(names, weights)[0], f"{prefix}-{seed}-{index:05d}")
        for index in range(count)
    ]
