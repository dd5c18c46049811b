"""Simulated scanner apps (iPhone, iPad, Mac) that speak only Polaris's public HTTP protocol."""

from simulator.admin import AdminApi
from simulator.fleet import Fleet, FleetConfig
from simulator.problems import ProblemError
from simulator.profiles import PROFILES, Identity, Profile, identity
from simulator.protocol import Credentials, DeviceApi, DeviceSession, PkcePair, parse_pairing_uri
from simulator.scanner import SimulatedScanner

__all__ = [
    "PROFILES",
    "AdminApi",
    "Credentials",
    "DeviceApi",
    "DeviceSession",
    "Fleet",
    "FleetConfig",
    "Identity",
    "PkcePair",
    "ProblemError",
    "Profile",
    "SimulatedScanner",
    "identity",
    "parse_pairing_uri",
]
