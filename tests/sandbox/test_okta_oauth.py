"""The sandbox Okta's org authorization server and its checks at the management API: the okta
SDK's own private_key_jwt and DPoP flow, and hand-made requests for what the SDK never sends."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from sandbox.okta.oauth import (
    JWT_BEARER,
    ServiceApp,
    ServiceAppKey,
    access_token_hash,
    new_service_app_key,
)
from sandbox.server import Sandbox
from tests.sandbox.okta_sdk import oauth_client, send

SCOPES = ["okta.apps.manage", "okta.users.read"]


@pytest.fixture(scope="module")
def key() -> ServiceAppKey:
    return new_service_app_key()


def service_app(sandbox: Sandbox, key: ServiceAppKey, *, dpop: bool = True) -> ServiceApp:
    server = sandbox.apps["okta"].authorization_server
    return server.add_service_app(
        f"test {uuid.uuid4().hex[:6]}", public_jwks=[key.public_jwk], scopes=SCOPES, dpop_bound=dpop
    )


def assertion(
    sandbox: Sandbox, app: ServiceApp, private_pem: str, *, kid: str, lifetime: int = 300
) -> str:
    now = int(time.time())
    org = sandbox.endpoints["okta_org_url"]
    claims = {
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": f"{org}/oauth2/v1/token",
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_pem, algorithm="RS256", headers={"kid": kid})


class ProofKey:
    """A DPoP key pair of the test's own, as a client makes one (RFC 9449 section 4.1)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))

    def proof(self, method: str, url: str, **extra: Any) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        claims.update(extra)
        return jwt.encode(
            claims,
            self.private,  # type: ignore[arg-type]
            algorithm="RS256",
            headers={"typ": "dpop+jwt", "jwk": self.jwk},
        )


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.endpoints["okta_org_url"],
        verify=ssl.create_default_context(cafile=sandbox.endpoints["ca_bundle"]),
    ) as client:
        yield client


def token_request(
    http: httpx.Client,
    sandbox: Sandbox,
    app: ServiceApp,
    key: ServiceAppKey,
    *,
    proof: str | None = None,
    scope: str = "okta.apps.manage",
) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(sandbox, app, key.private_pem, kid=key.kid),
    }
    headers = {"DPoP": proof} if proof else {}
    return http.post("/oauth2/v1/token", data=form, headers=headers)


def dpop_token(
    http: httpx.Client, sandbox: Sandbox, app: ServiceApp, key: ServiceAppKey, proof_key: ProofKey
) -> str:
    url = f"{sandbox.endpoints['okta_org_url']}/oauth2/v1/token"
    scope = " ".join(SCOPES)
    first = token_request(http, sandbox, app, key, proof=proof_key.proof("POST", url), scope=scope)
    nonce = first.headers["dpop-nonce"]
    second = token_request(
        http, sandbox, app, key, proof=proof_key.proof("POST", url, nonce=nonce), scope=scope
    )
    assert second.status_code == 200, second.text
    return str(second.json()["access_token"])


def test_it_gives_the_sdk_a_dpop_bound_token_after_the_nonce_challenge(
    sandbox: Sandbox, key: ServiceAppKey
) -> None:
    app = service_app(sandbox, key)

    async def scenario() -> Any:
        async with oauth_client(
            sandbox.endpoints,
            client_id=app.client_id,
            private_key=key.private_pem,
            key_id=key.kid,
            scopes=SCOPES,
            dpop=True,
        ) as client:
            users, error = await send(client, "GET", "/api/v1/users?limit=1")
            oauth = client.get_request_executor()._oauth
            return users, error, oauth.get_current_token()[1]

    users, error, token_type = asyncio.run(scenario())

    assert error is None
    assert users and users[0]["id"].startswith("00u")
    assert token_type == "DPoP"


def test_it_refuses_a_token_request_without_a_proof_when_the_app_requires_dpop(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    response = token_request(http, sandbox, service_app(sandbox, key), key)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof JWT header is missing.",
    }


def test_it_asks_for_a_nonce_on_the_first_proof(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    url = f"{sandbox.endpoints['okta_org_url']}/oauth2/v1/token"

    response = token_request(
        http, sandbox, service_app(sandbox, key), key, proof=ProofKey().proof("POST", url)
    )

    assert response.status_code == 400
    assert response.json()["error"] == "use_dpop_nonce"
    assert response.headers["dpop-nonce"]


def test_it_refuses_a_dpop_bound_token_used_as_a_bearer_token(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    token = dpop_token(http, sandbox, service_app(sandbox, key), key, ProofKey())

    response = http.get("/api/v1/apps", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 400
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ")
    assert 'error="invalid_request"' in challenge
    assert "must use the DPoP authentication scheme" in challenge


def test_it_checks_the_proofs_token_hash_method_and_url(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    proof_key = ProofKey()
    token = dpop_token(http, sandbox, service_app(sandbox, key), key, proof_key)
    url = f"{sandbox.endpoints['okta_org_url']}/api/v1/apps"
    auth = {"Authorization": f"DPoP {token}"}

    good = http.get(
        "/api/v1/apps",
        headers={**auth, "DPoP": proof_key.proof("GET", url, ath=access_token_hash(token))},
    )
    no_proof = http.get("/api/v1/apps", headers=auth)
    wrong_ath = http.get(
        "/api/v1/apps", headers={**auth, "DPoP": proof_key.proof("GET", url, ath="x" * 43)}
    )
    wrong_method = http.get(
        "/api/v1/apps",
        headers={**auth, "DPoP": proof_key.proof("POST", url, ath=access_token_hash(token))},
    )
    other_key = http.get(
        "/api/v1/apps",
        headers={**auth, "DPoP": ProofKey().proof("GET", url, ath=access_token_hash(token))},
    )

    assert good.status_code == 200
    assert (
        'error_description="The resource request requires a DPoP proof."'
        in (no_proof.headers["WWW-Authenticate"])
    )
    assert "'ath' claim in the DPoP proof does not match" in wrong_ath.headers["WWW-Authenticate"]
    assert (
        "'htm' claim in the DPoP proof JWT is invalid."
        in (wrong_method.headers["WWW-Authenticate"])
    )
    assert "not bound to the provided DPoP proof" in other_key.headers["WWW-Authenticate"]
    assert {r.status_code for r in (no_proof, wrong_ath, wrong_method, other_key)} == {400}


def test_it_compares_htu_with_the_decoded_request_path(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    proof_key = ProofKey()
    token = dpop_token(http, sandbox, service_app(sandbox, key), key, proof_key)
    org = sandbox.endpoints["okta_org_url"]
    login = "agent.001@example-sandbox.okta.test"
    ath = access_token_hash(token)

    decoded = http.get(
        f"/api/v1/users/{login}",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": proof_key.proof("GET", f"{org}/api/v1/users/{login}", ath=ath),
        },
    )
    encoded = http.get(
        f"/api/v1/users/{login}",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": proof_key.proof(
                "GET", f"{org}/api/v1/users/{login.replace('@', '%40')}", ath=ath
            ),
        },
    )

    assert decoded.status_code in (200, 404)
    assert encoded.status_code == 400
    assert "'htu' claim in the DPoP proof JWT is invalid." in encoded.headers["WWW-Authenticate"]


def test_it_gives_an_app_without_dpop_a_bearer_token_even_with_a_proof(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    app = service_app(sandbox, key, dpop=False)
    url = f"{sandbox.endpoints['okta_org_url']}/oauth2/v1/token"

    response = token_request(http, sandbox, app, key, proof=ProofKey().proof("POST", url))
    token = response.json()["access_token"]
    as_bearer = http.get("/api/v1/apps", headers={"Authorization": f"Bearer {token}"})
    as_dpop = http.get("/api/v1/apps", headers={"Authorization": f"DPoP {token}"})

    assert response.json()["token_type"] == "Bearer"
    assert as_bearer.status_code == 200
    assert as_dpop.status_code == 401
    assert "The presented access_token is not DPoP bound." in as_dpop.headers["WWW-Authenticate"]


def test_it_refuses_an_assertion_signed_with_another_key(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    app = service_app(sandbox, key, dpop=False)
    stranger = new_service_app_key()
    form = {
        "grant_type": "client_credentials",
        "scope": "okta.apps.manage",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(sandbox, app, stranger.private_pem, kid=key.kid),
    }

    response = http.post("/oauth2/v1/token", data=form)

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "The client_assertion signature is invalid.",
    }


def test_it_refuses_an_expired_or_reused_assertion(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    app = service_app(sandbox, key, dpop=False)
    form = {
        "grant_type": "client_credentials",
        "scope": "okta.apps.manage",
        "client_assertion_type": JWT_BEARER,
    }
    expired = assertion(sandbox, app, key.private_pem, kid=key.kid, lifetime=-5)
    fresh = assertion(sandbox, app, key.private_pem, kid=key.kid)

    late = http.post("/oauth2/v1/token", data={**form, "client_assertion": expired})
    first = http.post("/oauth2/v1/token", data={**form, "client_assertion": fresh})
    replayed = http.post("/oauth2/v1/token", data={**form, "client_assertion": fresh})

    assert (late.status_code, late.json()["error_description"]) == (
        401,
        "The client_assertion token is expired.",
    )
    assert first.status_code == 200
    assert (replayed.status_code, replayed.json()["error_description"]) == (
        401,
        "The client_assertion token has already been used.",
    )


def test_it_refuses_a_call_outside_the_tokens_scopes(
    sandbox: Sandbox, key: ServiceAppKey, http: httpx.Client
) -> None:
    app = service_app(sandbox, key, dpop=False)
    token = token_request(http, sandbox, app, key, scope="okta.users.read okta.groups.read")
    body = token.json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}

    users = http.get("/api/v1/users", params={"limit": 1}, headers=bearer)
    groups = http.get("/api/v1/groups", headers=bearer)

    # okta.groups.read was asked for but never granted: the token leaves it out.
    assert body["scope"] == "okta.users.read"
    assert users.status_code == 200
    assert groups.status_code == 403
    assert groups.content == b""
    challenge = groups.headers["WWW-Authenticate"]
    assert 'scope="okta.groups.read"' in challenge and 'error="insufficient_scope"' in challenge
