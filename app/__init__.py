"""Polaris: pairing service for fleets of scanner devices."""
