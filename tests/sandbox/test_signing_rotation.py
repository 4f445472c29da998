"""Proof that the signing-certificate rotation order keeps sign-ins working (Okta, in the sandbox).

A thread signs in once a second throughout — Okta's IdP-initiated sign-on, then STS
AssumeRoleWithSAML with the response, as the AWS sign-in page does — while the test rotates the
app's signing key in the order provisioning/signing_rotation.py describes. Every failure is
counted. A second test switches the key before IAM trusts it and must see sign-ins refused, so
the first test's zero is not a harness that cannot fail.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from botocore.exceptions import ClientError

from provisioning.signing_rotation import overlap_metadata, signing_fingerprints
from sandbox.server import OKTA_DOMAIN, Sandbox
from tests.sandbox.aws_clients import aws_client, saml_trust_policy
from tests.sandbox.okta_sdk import okta_client, send

AWS_SIGN_IN_URL = "https://signin.aws.amazon.com/saml"
AGENT = f"Keiko.McDonald@{OKTA_DOMAIN}"
# Seconds each phase of the rotation is held, so the once-a-second sign-ins land in every phase.
PHASE_S = 2.0


@dataclass
class Federation:
    app: dict[str, Any]
    provider_arn: str
    role_arn: str


@dataclass
class SignInCounter:
    """Sign-ins attempted once a second by a thread, with the failures' reasons."""

    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _okta(sandbox: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async def call() -> Any:
        async with okta_client(sandbox.endpoints) as client:
            result, error = await send(client, method, path, body)
            assert error is None, error
            return result

    return asyncio.run(call())


def _metadata(sandbox: Sandbox, app_id: str, kid: str) -> str:
    async def call() -> str:
        async with okta_client(sandbox.endpoints) as client:
            document, _, error = await client.preview_sam_lmetadata_for_application(app_id, kid)
            assert error is None, error
            return str(document)

    return asyncio.run(call())


def _federation(sandbox: Sandbox) -> Federation:
    """An Okta AWS app, an IAM provider from its metadata, a role for it, the agent given it."""
    run = uuid.uuid4().hex[:8]
    app = _okta(
        sandbox,
        "POST",
        "/api/v1/apps",
        {
            "name": "amazon_aws",
            "label": f"Rotation {run}",
            "signOnMode": "SAML_2_0",
            "settings": {
                "app": {"identityProviderArn": "", "sessionDuration": 3600},
                "signOn": {"defaultRelayState": ""},
            },
        },
    )
    iam = aws_client(sandbox, "iam")
    provider_arn = iam.create_saml_provider(
        Name=f"OktaRotation{run}",
        SAMLMetadataDocument=_metadata(sandbox, app["id"], app["credentials"]["signing"]["kid"]),
    )["SAMLProviderArn"]
    role_name = f"ConnectRotation{run}"
    role_arn = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=saml_trust_policy(provider_arn, AWS_SIGN_IN_URL),
    )["Role"]["Arn"]
    # Okta's group mapping gives the role: one group whose name carries the account and role.
    account = provider_arn.split(":")[4]
    prefix = f"aws{run}"
    app_settings = {
        **app["settings"]["app"],
        "identityProviderArn": provider_arn,
        "useGroupMapping": True,
        "groupFilter": prefix + r"_(?{{accountid}}\d+)_(?{{role}}[a-zA-Z0-9+=,.@\-_]+)",
        "roleValuePattern": f"arn:aws:iam::${{accountid}}:saml-provider/OktaRotation{run},"
        "arn:aws:iam::${accountid}:role/${role}",
    }
    app = _okta(
        sandbox,
        "PUT",
        f"/api/v1/apps/{app['id']}",
        {**app, "settings": {**app["settings"], "app": app_settings}},
    )
    group = _okta(
        sandbox, "POST", "/api/v1/groups", {"profile": {"name": f"{prefix}_{account}_{role_name}"}}
    )
    agent = _okta(sandbox, "GET", f"/api/v1/users/{AGENT}")
    _okta(sandbox, "PUT", f"/api/v1/groups/{group['id']}/users/{agent['id']}")
    _okta(sandbox, "PUT", f"/api/v1/apps/{app['id']}/groups/{group['id']}", {"priority": 0})
    return Federation(app, provider_arn, role_arn)


def _sign_in(sandbox: Sandbox, federation: Federation, sts: Any) -> str:
    """ "" when the agent signs in; otherwise why not."""
    reply = httpx.get(
        f"{sandbox.endpoints['okta_org_url']}/sandbox/sso/{federation.app['id']}",
        params={"user": AGENT.lower()},
        headers={"Accept": "application/json"},
        verify=ssl.create_default_context(cafile=sandbox.endpoints["ca_bundle"]),
    )
    if reply.status_code != 200:
        return f"Okta answered {reply.status_code}"
    try:
        sts.assume_role_with_saml(
            RoleArn=federation.role_arn,
            PrincipalArn=federation.provider_arn,
            SAMLAssertion=reply.json()["SAMLResponse"],
        )
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return ""


def _sign_in_every_second(
    sandbox: Sandbox, federation: Federation, counter: SignInCounter
) -> threading.Thread:
    sts = aws_client(sandbox, "sts")

    def loop() -> None:
        while not counter.stop.is_set():
            started = time.monotonic()
            counter.attempts += 1
            failure = _sign_in(sandbox, federation, sts)
            if failure:
                counter.failures.append(failure)
            counter.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    thread = threading.Thread(target=loop, name="sign-in-every-second", daemon=True)
    thread.start()
    return thread


def _switch_signing_key(sandbox: Sandbox, federation: Federation, kid: str) -> None:
    app = _okta(sandbox, "GET", f"/api/v1/apps/{federation.app['id']}")
    _okta(
        sandbox,
        "PUT",
        f"/api/v1/apps/{app['id']}",
        {**app, "credentials": {**app["credentials"], "signing": {"kid": kid}}},
    )


def test_the_rotation_order_keeps_every_once_a_second_sign_in_working(sandbox: Sandbox) -> None:
    federation = _federation(sandbox)
    app_id, old_kid = federation.app["id"], federation.app["credentials"]["signing"]["kid"]
    iam = aws_client(sandbox, "iam")
    counter = SignInCounter()
    thread = _sign_in_every_second(sandbox, federation, counter)
    try:
        time.sleep(PHASE_S)
        # 1. A new key at Okta, not signing yet.
        new_kid = _okta(
            sandbox, "POST", f"/api/v1/apps/{app_id}/credentials/keys/generate?validityYears=2"
        )["kid"]
        old_metadata = _metadata(sandbox, app_id, old_kid)
        new_metadata = _metadata(sandbox, app_id, new_kid)
        time.sleep(PHASE_S)
        # 2. IAM trusts both.
        both = overlap_metadata(new_metadata, old_metadata)
        assert signing_fingerprints(both) == (
            signing_fingerprints(old_metadata) | signing_fingerprints(new_metadata)
        )
        iam.update_saml_provider(SAMLProviderArn=federation.provider_arn, SAMLMetadataDocument=both)
        time.sleep(PHASE_S)
        # 3. Okta signs with the new key.
        _switch_signing_key(sandbox, federation, new_kid)
        time.sleep(PHASE_S)
        # 4. A sign-in signed by the new key works.
        assert _sign_in(sandbox, federation, aws_client(sandbox, "sts")) == ""
        # 5. The old certificate is retired from IAM.
        iam.update_saml_provider(
            SAMLProviderArn=federation.provider_arn, SAMLMetadataDocument=new_metadata
        )
        time.sleep(PHASE_S)
    finally:
        counter.stop.set()
        thread.join(timeout=10)
    held = iam.get_saml_provider(SAMLProviderArn=federation.provider_arn)["SAMLMetadataDocument"]
    assert signing_fingerprints(held) == signing_fingerprints(new_metadata)
    print(f"rotation: {counter.attempts} sign-ins, {len(counter.failures)} failed")  # noqa: T201
    assert counter.attempts >= 5 * PHASE_S - 1
    assert counter.failures == []


def test_switching_before_iam_trusts_the_new_key_refuses_sign_ins(sandbox: Sandbox) -> None:
    federation = _federation(sandbox)
    app_id = federation.app["id"]
    sts = aws_client(sandbox, "sts")
    assert _sign_in(sandbox, federation, sts) == ""
    new_kid = _okta(
        sandbox, "POST", f"/api/v1/apps/{app_id}/credentials/keys/generate?validityYears=2"
    )["kid"]
    _switch_signing_key(sandbox, federation, new_kid)
    # IAM still holds only the old certificate: the response signed by the new key is refused.
    assert _sign_in(sandbox, federation, sts) == "InvalidIdentityToken"
