"""Graph access tokens of the sandbox tenant: RS256 JWTs it signs, verifies and publishes."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Microsoft Graph's well-known application id and resource URI: the audiences of its tokens.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_AUDIENCES = frozenset({GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID})
# Client-credentials tokens from Entra live 3599 seconds ("expires_in" of a real response).
TOKEN_LIFETIME_S = 3599
# Entra tolerates five minutes of clock skew on token lifetimes.
CLOCK_SKEW_S = 300


class InvalidToken(ValueError):
    """The bearer token is missing, malformed, badly signed, expired or not for Graph."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class TokenSigner:
    """The tenant's token signing key (a fresh RSA key per sandbox process, like a key rollover)."""

    issuer: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def key_id(self) -> str:
        numbers = self.key.public_key().public_numbers()
        return _b64url(hashlib.sha256(str(numbers.n).encode()).digest()[:20])

    def mint(
        self, *, tenant_id: str, client_id: str, client_object_id: str, roles: list[str]
    ) -> str:
        """An app-only access token shaped like Entra's v1 tokens for Graph."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.key_id, "x5t": self.key_id}
        claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "app_displayname": "Connect SSO wizard (sandbox)",
            "appid": client_id,
            "appidacr": "1",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": client_object_id,
            "roles": sorted(roles),
            "sub": client_object_id,
            "tid": tenant_id,
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def verify(self, token: str, *, tenant_id: str) -> dict[str, Any]:
        """The token's claims, if this tenant signed it for Graph and it is still valid."""
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_b64url_decode(header_part))
            claims = json.loads(_b64url_decode(claims_part))
            signature = _b64url_decode(signature_part)
        except ValueError as error:
            raise InvalidToken("IDX14100: JWT is not well formed.") from error
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            raise InvalidToken("Access token validation failure. Invalid signature.")
        try:
            self.key.public_key().verify(
                signature,
                f"{header_part}.{claims_part}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature as error:
            raise InvalidToken("Access token validation failure. Invalid signature.") from error
        now = time.time()
        if claims.get("exp", 0) + CLOCK_SKEW_S < now:
            raise InvalidToken("Lifetime validation failed, the token is expired.")
        if claims.get("aud") not in GRAPH_AUDIENCES:
            raise InvalidToken("Access token validation failure. Invalid audience.")
        if claims.get("tid") != tenant_id:
            raise InvalidToken("Access token validation failure. Invalid issuer.")
        return claims

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set (the OpenID configuration's jwks_uri)."""
        numbers = self.key.public_key().public_numbers()

        def as_b64(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.key_id,
                    "x5t": self.key_id,
                    "n": as_b64(numbers.n),
                    "e": as_b64(numbers.e),
                    "issuer": self.issuer,
                }
            ]
        }
