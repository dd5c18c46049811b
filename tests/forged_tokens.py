"""JWTs as an attacker builds them: by hand, so no library guard stands between the forger and
the bytes on the wire (a missing claim, `alg: none`, an HMAC keyed with a public key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from joserfc.jwk import OKPKey

from tests.wire import b64, unb64

ATTACKER_ORIGIN = "https://attacker.example"


def unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return f"{b64(header)}.{b64(claims)}".encode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """`alg: none` (in whatever spelling `header` carries) and an empty signature."""
    return f"{signing_input(header, claims).decode()}."


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    header = {**header, "alg": "HS256"}
    data = signing_input(header, claims)
    return f"{data.decode()}.{unpadded(hmac.new(secret, data, hashlib.sha256).digest())}"


def ed25519(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    header = {**header, "alg": "Ed25519"}
    data = signing_input(header, claims)
    return f"{data.decode()}.{unpadded(key.sign(data))}"


def public_key_as_secrets(public_jwk: dict[str, Any]) -> dict[str, bytes]:
    """Every form of a published Ed25519 key a confused verifier might take as an HMAC secret."""
    raw = unb64(public_jwk["x"])
    pem = OKPKey.import_key(public_jwk).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "raw": raw,
        "pem": pem,
        "jwk-json": json.dumps(public_jwk).encode(),
        "x": public_jwk["x"].encode(),
    }


class AttackerKey:
    """The forger's own Ed25519 key, and the ways a JOSE header can point at it."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.kid = uuid.uuid4().hex
        jwk = OKPKey.import_key(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            parameters={"kid": self.kid},
        )
        self.public_jwk: dict[str, Any] = dict(jwk.as_dict(private=False))

    def certificate_chain(self) -> list[str]:
        """`x5c`: a self-signed certificate of this key, standard base64 DER."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polaris signing key")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.private, None)
        )
        return [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]

    def header_pointing_here(self, parameter: str, typ: str) -> dict[str, Any]:
        """A header whose `parameter` supplies (or locates) this key, and its `kid`."""
        where: dict[str, Any] = {
            "jwk": self.public_jwk,
            "jku": f"{ATTACKER_ORIGIN}/.well-known/jwks.json",
            "x5u": f"{ATTACKER_ORIGIN}/signing.pem",
            "x5c": self.certificate_chain(),
        }
        return {"alg": "Ed25519", "typ": typ, "kid": self.kid, parameter: where[parameter]}

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        return ed25519(header, claims, self.private)


def server_signing_key(key: OKPKey) -> Ed25519PrivateKey:
    """The server's own private key as `cryptography` holds it (an insider's forgery, so that
    only the claim and header checks stand between a token and acceptance)."""
    private = key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    return private
