"""The sandbox Okta org authorization server: API service apps, client_credentials tokens signed
for with private_key_jwt, DPoP-bound tokens, and the checks the management API makes on them.

Sources, cited beside each rule:
- [SERVICE-APP] Okta, "Implement OAuth for Okta with a service app" (developer.okta.com/docs/
  guides/implement-oauth-for-okta-serviceapp/main/): private_key_jwt only, iss = sub = client_id,
  aud = the token endpoint, exp at most one hour ahead, scopes checked against the app's grants,
  tokens live one hour.
- [DPOP] Okta, "Configure OAuth 2.0 Demonstrating Proof-of-Possession" (developer.okta.com/docs/
  guides/dpop/oktaresourceserver/main/): the first proof gets use_dpop_nonce and a dpop-nonce
  header, token_type DPoP, management API calls with `Authorization: DPoP <token>` and a proof
  carrying ath, htm, htu, iat, jti; Okta checks ath and the key binding.
- [ERRORS] Okta's OAuth 2.0 error catalogue (okta/okta-developer-docs, packages/@okta/
  vuepress-site/data/oauth2-error-codes.json): every status, error and description below.
- [RFC9449] RFC 9449, DPoP: proof syntax and checks (4.2, 4.3), jkt (6.1), nonce (8), ath (7).
- [SDK] okta/okta-sdk-python okta/oauth.py and tests/DPOP_INTEGRATION_TEST_SETUP.md: an app
  without DPoP answers a token request that carries a proof with a plain Bearer token.
- [SCOPES] okta/okta-sdk-python openapi/management.yaml: each operation's oauth2 scope; and
  "Implement OAuth for Okta" (guides/implement-oauth-for-okta): a manage scope does everything
  its read scope does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 - a URL path, not a secret
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# [SERVICE-APP] "The lifetime for this token is fixed at one hour"; exp "must be a maximum of
# only one hour in the future".
TOKEN_LIFETIME_S = 3600
MAX_ASSERTION_LIFETIME_S = 3600
# [ERRORS] invalid_dpop_proof_jwt_too_old: "issued more than five minutes in the past".
MAX_PROOF_AGE_S = 300
# Clocks differ a little between any client and Okta; a proof a few seconds "in the future" is
# the client's clock, not an attack (RFC 9449 section 11.1 leaves the window to the server).
CLOCK_SKEW_S = 60
# [SERVICE-APP] alg: RS256, RS384, RS512, ES256, ES384 or ES512 (the sandbox's keys are RSA).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512")
# What Okta advertises in WWW-Authenticate for DPoP (terraform-provider-okta issue 2375 shows
# `DPoP algs="RS256 RS384 RS512 ES256 ES384 ES512"`).
DPOP_ALGS = "RS256 RS384 RS512 ES256 ES384 ES512"
DPOP_TYP = "dpop+jwt"
SERVICE_APP_ID_PREFIX = "0oa"
RSA_KEY_BITS = 2048
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi"})


class OAuthError(Exception):
    """A token endpoint error as Okta answers it: status, OAuth error code, description, and
    extra headers (dpop-nonce)."""

    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class ResourceError(Exception):
    """A management API refusal of an OAuth token. Okta puts the reason in WWW-Authenticate and
    sends no body (okta-sdk-golang issue 145: "unauthorized response with no body and the
    following header"; okta-sdk-python issue 541 for invalid_dpop_proof)."""

    def __init__(
        self, status: int, error: str, description: str, *, scheme: str, scope: str = ""
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scheme = scheme
        self.scope = scope

    def www_authenticate(self, org_url: str, resource: str) -> str:
        parts = []
        if self.scheme == "DPoP":
            parts.append(f'algs="{DPOP_ALGS}"')
        parts += [
            f'authorization_uri="{org_url}/oauth2/v1/authorize"',
            f'realm="{org_url}"',
        ]
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        parts += [
            f'error="{self.error}"',
            f'error_description="{self.description}"',
            f'resource="{resource}"',
        ]
        return f"{self.scheme} " + ", ".join(parts)


def invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def invalid_proof(description: str) -> OAuthError:
    return OAuthError(400, "invalid_dpop_proof", description)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA public JWK (RFC 9449 section 6.1 binds tokens to it)."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    """RFC 9449 section 4.2 ath: base64url(SHA-256(ASCII token))."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@dataclass
class ServiceApp:
    """An API Services app: its client ID, registered public keys, granted Okta scopes, and
    whether it requires DPoP (the General tab's "Require Demonstrating Proof of Possession (DPoP)
    header in token requests", settings.oauthClient.dpop_bound_access_tokens)."""

    client_id: str
    label: str
    public_jwks: dict[str, dict[str, Any]]
    granted_scopes: frozenset[str]
    dpop_bound: bool


@dataclass
class IssuedToken:
    client_id: str
    scopes: frozenset[str]
    expires_at: float
    jkt: str | None  # the DPoP key's thumbprint (cnf.jkt); None for a Bearer token


@dataclass
class ServiceAppKey:
    """A key pair made for a sandbox service app: the private PEM goes to the wizard's
    connection, the public JWK to the app (as an admin pastes it in the Admin Console)."""

    kid: str
    private_pem: str = field(repr=False)
    public_jwk: dict[str, Any]


def new_service_app_key() -> ServiceAppKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    public_jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    kid = jwk_thumbprint(public_jwk)
    pem = private.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode()
    return ServiceAppKey(kid=kid, private_pem=pem, public_jwk={**public_jwk, "kid": kid})


# [SCOPES] The oauth2 scope of each management API operation the sandbox serves, keyed by the
# sandbox's own route endpoint names (sandbox/okta/app.py).
ENDPOINT_SCOPES: dict[str, str] = {
    "list_apps": "okta.apps.read",
    "create_app": "okta.apps.manage",
    "get_app": "okta.apps.read",
    "replace_app": "okta.apps.manage",
    "delete_app": "okta.apps.manage",
    "app_lifecycle": "okta.apps.manage",
    "app_metadata": "okta.apps.read",
    "list_app_keys": "okta.apps.read",
    "get_app_key": "okta.apps.read",
    "generate_app_key": "okta.apps.manage",
    "list_app_users": "okta.apps.read",
    "assign_user": "okta.apps.manage",
    "get_app_user": "okta.apps.read",
    "update_app_user": "okta.apps.manage",
    "unassign_user": "okta.apps.manage",
    "list_app_groups": "okta.apps.read",
    "get_app_group": "okta.apps.read",
    "assign_group": "okta.apps.manage",
    "unassign_group": "okta.apps.manage",
    "list_users": "okta.users.read",
    "get_user": "okta.users.read",
    "user_roles": "okta.roles.read",
    "user_groups": "okta.users.read",
    "list_groups": "okta.groups.read",
    "create_group": "okta.groups.manage",
    "get_group": "okta.groups.read",
    "delete_group": "okta.groups.manage",
    "group_users": "okta.groups.read",
    "add_group_member": "okta.groups.manage",
    "remove_group_member": "okta.groups.manage",
}
READ_SUFFIX = ".read"
MANAGE_SUFFIX = ".manage"


def scope_allows(granted: frozenset[str], required: str) -> bool:
    """A manage scope "can do everything that the read scopes do" [SCOPES]."""
    if required in granted:
        return True
    return required.endswith(READ_SUFFIX) and (
        required.removesuffix(READ_SUFFIX) + MANAGE_SUFFIX in granted
    )


class AuthorizationServer:
    """The org authorization server (issuer = the org URL) for API service apps."""

    def __init__(self, org_url: str, new_id: Callable[[str], str]) -> None:
        self.org_url = org_url.rstrip("/")
        self._new_id = new_id
        self.lock = threading.RLock()
        self.apps: dict[str, ServiceApp] = {}
        self._tokens: dict[str, IssuedToken] = {}
        # jti -> when it may be forgotten (its JWT's expiry); [ERRORS] client_assertion_already
        # _used, dpop_proof_already_used; [DPOP] "Resource servers must ... not accept that
        # claim more than once".
        self._used_assertions: dict[str, float] = {}
        self._used_proofs: dict[str, float] = {}
        # [DPOP] Okta renews the nonce every 24 hours; a sandbox run is shorter than that.
        self.nonce = secrets.token_urlsafe(24)

    @property
    def token_url(self) -> str:
        return self.org_url + TOKEN_PATH

    def add_service_app(
        self,
        label: str,
        *,
        public_jwks: list[dict[str, Any]],
        scopes: list[str],
        dpop_bound: bool = True,
    ) -> ServiceApp:
        """A new API Services app. DPoP is required unless asked otherwise: new API service
        apps have "Require Demonstrating Proof of Possession (DPoP) header in token requests"
        ticked by default (Okta Developer Forum, "Client Credentials OAuth for Okta with DPoP
        enabled", topic 30239: "In General Settings by default Require ... DPoP ... is True")."""
        with self.lock:
            app = ServiceApp(
                client_id=self._new_id(SERVICE_APP_ID_PREFIX),
                label=label,
                public_jwks={str(key["kid"]): dict(key) for key in public_jwks},
                granted_scopes=frozenset(scopes),
                dpop_bound=dpop_bound,
            )
            self.apps[app.client_id] = app
            return app

    # -- the token endpoint ------------------------------------------------------------------

    def issue_token(
        self, form: dict[str, str], dpop_headers: list[str], method: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The token response body and headers, or OAuthError."""
        now = time.time()
        if form.get("grant_type") != CLIENT_CREDENTIALS:
            # RFC 6749 section 5.2; the sandbox's service apps have no other grant.
            raise OAuthError(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise invalid_client("No client credentials found.")
        if form.get("client_assertion_type") != JWT_BEARER:
            raise OAuthError(400, "invalid_request", "The client_assertion_type is invalid.")
        with self.lock:
            self._forget_expired(now)
            app = self._authenticate_client(assertion, now)
            requested = frozenset((form.get("scope") or "").split())
            jkt = None
            if app.dpop_bound:
                jkt = self._check_token_proof(dpop_headers, method, now)
            # [SDK] an app without DPoP ignores a proof and hands out a Bearer token.
            granted = self._granted(app, requested)
            token = secrets.token_urlsafe(48)
            self._tokens[token] = IssuedToken(app.client_id, granted, now + TOKEN_LIFETIME_S, jkt)
        body = {
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "access_token": token,
            "scope": " ".join(sorted(granted)),
        }
        return body, {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"}

    def _forget_expired(self, now: float) -> None:
        for used in (self._used_assertions, self._used_proofs):
            for jti in [jti for jti, until in used.items() if until < now]:
                del used[jti]
        for token in [t for t, issued in self._tokens.items() if issued.expires_at < now]:
            del self._tokens[token]

    def _authenticate_client(self, assertion: str, now: float) -> ServiceApp:
        """[SERVICE-APP] private_key_jwt; each failure with its [ERRORS] description."""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise invalid_client("The parsing of the client_assertion failed.") from None
        app = self.apps.get(str(claims.get("iss", "")))
        if app is None:
            raise invalid_client("The issuer claim for client_assertion is not a valid client_id.")
        if claims.get("sub") != app.client_id:
            raise invalid_client("The subject claim for client_assertion is not a valid client_id.")
        if header.get("alg") not in SIGNING_ALGORITHMS:
            raise invalid_client("The client_assertion JWT signature algorithm is invalid.")
        kid = header.get("kid")
        if kid is not None and kid not in app.public_jwks:
            raise invalid_client("The client_assertion JWT kid is invalid.")
        keys = [app.public_jwks[kid]] if kid is not None else list(app.public_jwks.values())
        if not any(self._signed_by(assertion, key, header["alg"]) for key in keys):
            raise invalid_client("The client_assertion signature is invalid.")
        if claims.get("aud") != self.token_url:
            raise invalid_client(
                "The audience claim for client_assertion must be the endpoint invoked for the "
                "request."
            )
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise invalid_client(
                "The client_assertion must contain the 'exp' claim as seconds since epoch."
            )
        if exp <= now:
            raise invalid_client("The client_assertion token is expired.")
        if exp > now + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
            raise invalid_client(
                "The client_assertion token has an expiration too far into the future."
            )
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat > now + CLOCK_SKEW_S:
            raise invalid_client(
                "The client_assertion token must be issued before the current time."
            )
        jti = claims.get("jti")
        if jti is not None:
            # [SDK] oauth.py: Okta consumes the jti on every request, even one answered
            # use_dpop_nonce, so a retry must sign a new assertion.
            if str(jti) in self._used_assertions:
                raise invalid_client("The client_assertion token has already been used.")
            self._used_assertions[str(jti)] = float(exp)
        return app

    @staticmethod
    def _signed_by(token: str, jwk: dict[str, Any], alg: str) -> bool:
        try:
            key = RSAAlgorithm.from_jwk(json.dumps(jwk))
            jwt.decode(token, key=key, algorithms=[alg], options={"verify_aud": False})  # type: ignore[arg-type]
        except jwt.InvalidSignatureError:
            return False
        except jwt.PyJWTError:
            # Signed by this key; the claims are checked one by one by the caller.
            return True
        return True

    def _granted(self, app: ServiceApp, requested: frozenset[str]) -> frozenset[str]:
        if not requested:
            raise OAuthError(400, "invalid_scope", "No scopes were requested.")
        granted = frozenset(s for s in requested if scope_allows(app.granted_scopes, s))
        if not granted:
            raise OAuthError(
                400, "consent_required", "You are not allowed any of the requested scopes."
            )
        # terraform-provider-okta issue 2375: requested scopes the app was not granted are
        # left out of the token (its scp) rather than refused.
        return granted

    def _check_token_proof(self, headers: list[str], method: str, now: float) -> str:
        """[DPOP]/[RFC9449] the proof at the token endpoint, then its nonce (section 8)."""
        claims, jkt = self._verified_proof(
            headers, method=method, url=self.token_url, now=now, missing=invalid_proof
        )
        if claims.get("nonce") != self.nonce:
            # [DPOP] "sends back an 'Authorization server requires nonce in DPoP proof' error.
            # The dpop-nonce header and value are included in the headers of that response."
            raise OAuthError(
                400,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.",
                {"dpop-nonce": self.nonce},
            )
        self._used_proofs[str(claims["jti"])] = claims["iat"] + MAX_PROOF_AGE_S
        return jkt

    def _verified_proof(
        self,
        headers: list[str],
        *,
        method: str,
        url: str,
        now: float,
        missing: Callable[[str], Exception],
    ) -> tuple[dict[str, Any], str]:
        """The proof's claims and key thumbprint after RFC 9449 section 4.3's checks, each
        failing with [ERRORS]'s description for invalid_dpop_proof."""

        def refuse(description: str) -> Exception:
            return missing(description)

        if not headers:
            raise refuse("The DPoP proof JWT header is missing.")
        if len(headers) > 1:
            raise refuse("Multiple DPoP proof JWT headers are not allowed.")
        proof = headers[0]
        try:
            header = jwt.get_unverified_header(proof)
            claims = jwt.decode(proof, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise refuse("The DPoP proof JWT cannot be parsed.") from None
        if header.get("typ") != DPOP_TYP:
            raise refuse("'typ' must be 'dpop+jwt' in the DPoP proof JWT.")
        jwk = header.get("jwk")
        if (
            header.get("alg") not in SIGNING_ALGORITHMS
            or not isinstance(jwk, dict)
            or jwk.get("kty") != "RSA"
            or PRIVATE_JWK_MEMBERS & set(jwk)
        ):
            raise refuse("The DPoP proof JWT signature algorithm is invalid.")
        if not self._signed_by(proof, jwk, header["alg"]):
            raise refuse("The DPoP proof JWT signature is invalid.")
        if claims.get("htm") != method:
            raise refuse("'htm' claim in the DPoP proof JWT is invalid.")
        # okta-sdk-python issue 541: Okta compares htu with the request URI with its
        # percent-encoding decoded (an htu carrying %40 for "@" is refused).
        if claims.get("htu") != url:
            raise refuse("'htu' claim in the DPoP proof JWT is invalid.")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise refuse("'iat' claim in the DPoP proof JWT is invalid.")
        if iat > now + CLOCK_SKEW_S:
            raise refuse("The DPoP proof JWT is issued in the future.")
        if iat < now - MAX_PROOF_AGE_S:
            raise refuse("The DPoP proof JWT is issued more than five minutes in the past.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise refuse("'jti' claim in the DPoP proof JWT is invalid.")
        if jti in self._used_proofs:
            raise refuse("The DPoP proof JWT has already been used.")
        return claims, jwk_thumbprint(jwk)

    # -- the management API's side -------------------------------------------------------------

    def authorize(
        self,
        *,
        scheme: str,
        token: str,
        dpop_headers: list[str],
        method: str,
        path: str,
        required_scope: str,
    ) -> IssuedToken:
        """The token behind `Authorization: <scheme> <token>` if it may make this call, else
        ResourceError."""
        now = time.time()
        with self.lock:
            self._forget_expired(now)
            issued = self._tokens.get(token)
            if issued is None:
                raise ResourceError(
                    401, "invalid_token", "The access token is invalid.", scheme=scheme
                )
            if scheme == "Bearer" and issued.jkt is not None:
                # [ERRORS] dpop_authentication_scheme_required: a DPoP-bound token is refused
                # as a bearer token.
                raise ResourceError(
                    400,
                    "invalid_request",
                    "The resource request must use the DPoP authentication scheme when using a "
                    "DPoP bound token.",
                    scheme="DPoP",
                )
            if scheme == "DPoP":
                self._check_resource_proof(issued, token, dpop_headers, method, path, now)
            if not scope_allows(issued.scopes, required_scope):
                # okta-sdk-golang issue 145 / terraform-provider-okta issue 2375: 403,
                # insufficient_scope naming the scope the call needs.
                raise ResourceError(
                    403,
                    "insufficient_scope",
                    "The access token provided does not contain the required scopes.",
                    scheme=scheme,
                    scope=required_scope,
                )
            return issued

    def _check_resource_proof(
        self,
        issued: IssuedToken,
        token: str,
        headers: list[str],
        method: str,
        path: str,
        now: float,
    ) -> None:
        if issued.jkt is None:
            # [ERRORS] access_token_not_dpop_bound.
            raise ResourceError(
                401, "invalid_token", "The presented access_token is not DPoP bound.", scheme="DPoP"
            )

        def refuse(description: str) -> ResourceError:
            if description == "The DPoP proof JWT header is missing.":
                # [ERRORS] dpop_proof_required_for_token.
                return ResourceError(
                    400,
                    "invalid_request",
                    "The resource request requires a DPoP proof.",
                    scheme="DPoP",
                )
            return ResourceError(400, "invalid_dpop_proof", description, scheme="DPoP")

        claims, jkt = self._verified_proof(
            headers,
            method=method,
            url=self.org_url + unquote(path),
            now=now,
            missing=refuse,
        )
        # [DPOP] "The nonce parameter isn't currently required in this DPoP JWT"; Okta checks
        # ath and that the token is bound to the proof's key.
        if claims.get("ath") != access_token_hash(token):
            raise refuse("'ath' claim in the DPoP proof does not match the presented access_token.")
        if jkt != issued.jkt:
            raise refuse("The access_token is not bound to the provided DPoP proof.")
        self._used_proofs[str(claims["jti"])] = claims["iat"] + MAX_PROOF_AGE_S
