"""Proof that the signing-certificate rotation order keeps sign-ins working (Okta, in the sandbox).

A thread signs in once a second throughout — Okta's IdP-initiated sign-on, then STS
AssumeRoleWithSAML with the response, as the AWS sign-in page does — while the test rotates the
app's signing key in the order provisioning/signing_rotation.py describes. Every failure is
counted. A second test switches the key before IAM trusts it and must see sign-ins refused, so
the first test's zero is not a harness that cannot fail.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from botocore.exceptions import ClientError
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)

from provisioning.signing_rotation import (
    adding_certificate,
    overlap_metadata,
    signing_fingerprints,
)
from sandbox.directory import seed_directory
from sandbox.server import ENTRA_DOMAIN, OKTA_DOMAIN, Sandbox
from tests.sandbox.aws_clients import aws_client, saml_trust_policy
from tests.sandbox.entra_graph import (
    federation_role,
    graph_client,
    new_aws_app,
    run,
    saml_app_with_role,
)
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


def _idp_then_sts(
    sandbox: Sandbox, sso_url: str, user: str, role_arn: str, provider_arn: str, sts: Any
) -> str:
    """ "" when `user` signs in (the IdP's IdP-initiated sign-on, then STS AssumeRoleWithSAML
    with the response, as the AWS sign-in page does); otherwise why not."""
    reply = httpx.get(
        sso_url,
        params={"user": user},
        headers={"Accept": "application/json"},
        verify=ssl.create_default_context(cafile=sandbox.endpoints["ca_bundle"]),
    )
    if reply.status_code != 200:
        return f"the IdP answered {reply.status_code}"
    try:
        sts.assume_role_with_saml(
            RoleArn=role_arn, PrincipalArn=provider_arn, SAMLAssertion=reply.json()["SAMLResponse"]
        )
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return ""


def _sign_in(sandbox: Sandbox, federation: Federation, sts: Any) -> str:
    sso_url = f"{sandbox.endpoints['okta_org_url']}/sandbox/sso/{federation.app['id']}"
    return _idp_then_sts(
        sandbox, sso_url, AGENT.lower(), federation.role_arn, federation.provider_arn, sts
    )


def _iam_holds(iam: Any, provider_arn: str, document: str) -> None:
    """UpdateSAMLProvider: the provider's metadata, and so the certificates it verifies with."""
    iam.update_saml_provider(SAMLProviderArn=provider_arn, SAMLMetadataDocument=document)


def _sign_in_every_second(sign_in: Callable[[], str], counter: SignInCounter) -> threading.Thread:
    def loop() -> None:
        while not counter.stop.is_set():
            started = time.monotonic()
            counter.attempts += 1
            failure = sign_in()
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
    sts = aws_client(sandbox, "sts")
    thread = _sign_in_every_second(lambda: _sign_in(sandbox, federation, sts), counter)
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
        _iam_holds(iam, federation.provider_arn, both)
        time.sleep(PHASE_S)
        # 3. Okta signs with the new key.
        _switch_signing_key(sandbox, federation, new_kid)
        time.sleep(PHASE_S)
        # 4. A sign-in signed by the new key works.
        assert _sign_in(sandbox, federation, aws_client(sandbox, "sts")) == ""
        # 5. The old certificate is retired from IAM.
        _iam_holds(iam, federation.provider_arn, new_metadata)
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


# Entra ID ------------------------------------------------------------------------------------


def _entra_metadata(sandbox: Sandbox, app_id: str) -> str:
    endpoints = sandbox.endpoints
    reply = httpx.get(
        f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}"
        "/federationmetadata/2007-06/federationmetadata.xml",
        params={"appid": app_id},
        verify=ssl.create_default_context(cafile=endpoints["ca_bundle"]),
    )
    reply.raise_for_status()
    # Entra serves a byte-order mark first, which IAM refuses (see sandbox/BEHAVIOURS.md).
    return reply.content.decode("utf-8-sig")


@dataclass
class EntraFederation:
    app_id: str
    service_principal_id: str
    old_thumbprint: str
    login: str
    provider_arn: str
    role_arn: str


def _entra_federation(sandbox: Sandbox) -> EntraFederation:
    """An AWS gallery app signing with a certificate of its own, an IAM provider from its
    federation metadata, a role for it, one person assigned the role."""
    run_id = uuid.uuid4().hex[:8]
    iam = aws_client(sandbox, "iam")
    person = next(
        p
        for p in seed_directory(domain=ENTRA_DOMAIN, agents=sandbox.knobs.directory_agents).people
        if p.key == "same-email-2"
    )

    async def configure() -> tuple[str, str, str]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, f"Rotation {run_id}")
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        certificate = await sp.add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(display_name="CN=Amazon Connect")
        )
        assert certificate is not None
        await sp.patch(
            ServicePrincipal(preferred_token_signing_key_thumbprint=certificate.thumbprint)
        )
        return str(application.app_id), str(service_principal.id), str(certificate.thumbprint)

    app_id, sp_id, thumbprint = run(configure)
    provider_arn = iam.create_saml_provider(
        Name=f"EntraRotation{run_id}", SAMLMetadataDocument=_entra_metadata(sandbox, app_id)
    )["SAMLProviderArn"]
    role_arn = iam.create_role(
        RoleName=f"ConnectRotation{run_id}",
        AssumeRolePolicyDocument=saml_trust_policy(provider_arn, AWS_SIGN_IN_URL),
    )["Role"]["Arn"]

    async def assign() -> None:
        client = graph_client(sandbox.endpoints)
        application = await client.applications_with_app_id(app_id).get()
        service_principal = await client.service_principals.by_service_principal_id(sp_id).get()
        role = federation_role(f"{role_arn},{provider_arn}")
        await saml_app_with_role(
            client,
            application,
            service_principal,
            role,
            identifier=f"https://signin.aws.amazon.com/saml#{run_id}",
        )
        user = await client.users.by_user_id(person.login).get()
        assert user is not None
        await client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to.post(
            AppRoleAssignment(
                principal_id=uuid.UUID(str(user.id)),
                resource_id=uuid.UUID(sp_id),
                app_role_id=role.id,
            )
        )

    run(assign)
    return EntraFederation(app_id, sp_id, thumbprint, person.login, provider_arn, role_arn)


def _entra_sign_in(sandbox: Sandbox, federation: EntraFederation, sts: Any) -> str:
    sso_url = f"{sandbox.endpoints['entra_authority']}/sandbox/sso/{federation.app_id}"
    return _idp_then_sts(
        sandbox, sso_url, federation.login, federation.role_arn, federation.provider_arn, sts
    )


def test_the_entra_rotation_order_keeps_every_once_a_second_sign_in_working(
    sandbox: Sandbox,
) -> None:
    federation = _entra_federation(sandbox)
    iam = aws_client(sandbox, "iam")
    sts = aws_client(sandbox, "sts")
    assert _entra_sign_in(sandbox, federation, sts) == ""
    sp = graph_client(sandbox.endpoints).service_principals.by_service_principal_id(
        federation.service_principal_id
    )
    counter = SignInCounter()
    thread = _sign_in_every_second(lambda: _entra_sign_in(sandbox, federation, sts), counter)
    try:
        time.sleep(PHASE_S)
        # 1. A new certificate on the service principal (keyCredentials), not preferred yet.
        new = run(
            lambda: sp.add_token_signing_certificate.post(
                AddTokenSigningCertificatePostRequestBody(display_name="CN=Amazon Connect 2")
            )
        )
        assert new is not None and new.key is not None
        old_metadata = _entra_metadata(sandbox, federation.app_id)
        time.sleep(PHASE_S)
        # 2. IAM trusts both: Entra's metadata still lists the old one, the new one is added.
        both = adding_certificate(old_metadata, base64.b64encode(new.key).decode())
        assert len(signing_fingerprints(both)) == 2
        _iam_holds(iam, federation.provider_arn, both)
        time.sleep(PHASE_S)
        # 3. Entra signs with the new certificate.
        run(
            lambda: sp.patch(
                ServicePrincipal(preferred_token_signing_key_thumbprint=new.thumbprint)
            )
        )
        time.sleep(PHASE_S)
        # 4. A sign-in signed by the new certificate works; its metadata now lists it alone.
        assert _entra_sign_in(sandbox, federation, sts) == ""
        new_metadata = _entra_metadata(sandbox, federation.app_id)
        assert signing_fingerprints(new_metadata) < signing_fingerprints(both)
        # 5. The old certificate is retired from IAM.
        _iam_holds(iam, federation.provider_arn, new_metadata)
        time.sleep(PHASE_S)
    finally:
        counter.stop.set()
        thread.join(timeout=10)
    print(f"entra rotation: {counter.attempts} sign-ins, {len(counter.failures)} failed")  # noqa: T201
    assert counter.attempts >= 5 * PHASE_S - 1
    assert counter.failures == []


def test_preferring_a_certificate_iam_does_not_hold_refuses_entra_sign_ins(
    sandbox: Sandbox,
) -> None:
    federation = _entra_federation(sandbox)
    sts = aws_client(sandbox, "sts")
    assert _entra_sign_in(sandbox, federation, sts) == ""
    sp = graph_client(sandbox.endpoints).service_principals.by_service_principal_id(
        federation.service_principal_id
    )
    new = run(
        lambda: sp.add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(display_name="CN=Amazon Connect 2")
        )
    )
    assert new is not None
    # Adding it changes nothing yet: Entra still signs with the preferred (old) certificate.
    assert _entra_sign_in(sandbox, federation, sts) == ""
    run(lambda: sp.patch(ServicePrincipal(preferred_token_signing_key_thumbprint=new.thumbprint)))
    assert _entra_sign_in(sandbox, federation, sts) == "InvalidIdentityToken"
