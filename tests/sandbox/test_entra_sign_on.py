"""The sandbox Entra's SAML side: per-app federation metadata and IdP-initiated sign-on for an app
set up through msgraph-sdk the way an admin sets it up by hand."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from defusedxml import ElementTree as SafeElementTree
from lxml import etree
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.saml_single_sign_on_settings import SamlSingleSignOnSettings
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)
from signxml import SignatureConfiguration, XMLVerifier

from sandbox.directory import CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP, Person, seed_directory
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SAML_ASSERTION,
    SAML_METADATA,
    SAML_PROTOCOL,
    SESSION_DURATION_ATTRIBUTE,
    XMLDSIG,
)
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.sandbox.entra_graph import (
    AWS_SIGNIN,
    claims_mapping_definition,
    federation_role,
    graph_client,
    new_aws_app,
    run,
    saml_app_with_role,
    until_visible,
)

ROLE_VALUE = (
    "arn:aws:iam::123456789012:role/ConnectFederation,"
    "arn:aws:iam::123456789012:saml-provider/EntraID"
)
RELAY_STATE = "https://ap-northeast-1.console.aws.amazon.com/connect/federate/instance-1"
SESSION_DURATION = "28800"
NS = {"md": SAML_METADATA, "ds": XMLDSIG, "saml": SAML_ASSERTION, "samlp": SAML_PROTOCOL}


@dataclass(frozen=True)
class ConnectApp:
    app_id: str
    identifier: str
    thumbprint: str
    certificate_b64: str
    directly_assigned: Person  # signs in with RoleSessionName = mail, which differs from UPN
    supervisor: Person  # reaches the app through a group assigned to it
    nested_agent: Person  # only in a group nested inside an assigned group


def _people(sandbox: Sandbox) -> list[Person]:
    return seed_directory(domain=ENTRA_DOMAIN, agents=sandbox.knobs.directory_agents).people


@pytest.fixture(scope="module")
def connect_app(sandbox: Sandbox) -> ConnectApp:
    """An AWS Single-Account Access app with every SAML setting made through the SDK, roles
    mapped by a claims mapping policy that takes RoleSessionName from `mail`."""
    people = _people(sandbox)
    direct = next(person for person in people if person.key == "same-email-1")
    supervisor = next(person for person in people if SUPERVISORS_GROUP in person.groups)
    nested_agent = next(person for person in people if person.key == "agent0000")
    identifier = f"https://signin.aws.amazon.com/saml#{uuid.uuid4().hex[:8]}"

    async def configure() -> ConnectApp:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, "Amazon Connect (sign-on)")
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        connect_role = federation_role(ROLE_VALUE)
        await saml_app_with_role(
            client, application, service_principal, connect_role, identifier=identifier
        )
        certificate = await sp.add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(
                display_name="CN=Amazon Connect",
                end_date_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=365),
            )
        )
        await sp.patch(
            ServicePrincipal(
                preferred_token_signing_key_thumbprint=certificate.thumbprint,
                saml_single_sign_on_settings=SamlSingleSignOnSettings(relay_state=RELAY_STATE),
            )
        )
        policy = await client.policies.claims_mapping_policies.post(
            ClaimsMappingPolicy(
                display_name="Amazon Connect claims",
                definition=[
                    claims_mapping_definition(
                        session_name_source="mail", session_duration=SESSION_DURATION
                    )
                ],
            )
        )
        # A new policy replicates before it can be linked (404 until then).
        await until_visible(
            lambda: client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                policy.id
            ).get()
        )
        await sp.claims_mapping_policies.ref.post(
            ReferenceCreate(
                odata_id=f"https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/{policy.id}"
            )
        )
        direct_user = await client.users.by_user_id(direct.login).get()
        principals = [direct_user.id]
        for name in (SUPERVISORS_GROUP, CONTACT_CENTRE_GROUP):
            groups = await client.groups.get()
            principals.append(
                next(group.id for group in groups.value if group.display_name == name)
            )
        for principal_id in principals:
            await sp.app_role_assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(str(principal_id)),
                    resource_id=service_principal.id,
                    app_role_id=connect_role.id,
                )
            )
        return ConnectApp(
            app_id=str(application.app_id),
            identifier=identifier,
            thumbprint=str(certificate.thumbprint),
            certificate_b64=base64.b64encode(certificate.key).decode(),
            directly_assigned=direct,
            supervisor=supervisor,
            nested_agent=nested_agent,
        )

    return run(configure)


def _metadata(sandbox: Sandbox, app_id: str) -> etree._Element:
    endpoints = sandbox.endpoints
    response = requests.get(
        f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}"
        f"/federationmetadata/2007-06/federationmetadata.xml",
        params={"appid": app_id},
        verify=endpoints["ca_bundle"],
        timeout=10,
    )
    response.raise_for_status()
    SafeElementTree.fromstring(response.content)  # refuses entities and DTDs before lxml parses
    return etree.fromstring(response.content)


def _metadata_certificate(metadata: etree._Element) -> str:
    return metadata.findtext(
        "md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/"
        "ds:X509Certificate",
        namespaces=NS,
    )


def _sign_on(sandbox: Sandbox, app_id: str, user: str, *, accept: str) -> requests.Response:
    return requests.get(
        f"{sandbox.endpoints['entra_authority']}/sandbox/sso/{app_id}",
        params={"user": user},
        headers={"Accept": accept},
        verify=sandbox.endpoints["ca_bundle"],
        timeout=10,
    )


def _verified_assertion(saml_response: str, certificate_b64: str) -> etree._Element:
    pem = x509.load_der_x509_certificate(base64.b64decode(certificate_b64)).public_bytes(
        serialization.Encoding.PEM
    )
    result = XMLVerifier().verify(
        base64.b64decode(saml_response),
        x509_cert=pem.decode(),
        expect_config=SignatureConfiguration(location=f"./{{{SAML_ASSERTION}}}Assertion/"),
    )
    return result.signed_xml


def _attributes(assertion: etree._Element) -> dict[str, list[str]]:
    return {
        attribute.get("Name"): [
            value.text for value in attribute.findall("saml:AttributeValue", NS)
        ]
        for attribute in assertion.findall("saml:AttributeStatement/saml:Attribute", NS)
    }


def test_it_publishes_federation_metadata_with_the_preferred_certificate(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    metadata = _metadata(sandbox, connect_app.app_id)

    tenant_id = sandbox.endpoints["entra_tenant_id"]
    assert metadata.get("entityID") == f"https://sts.windows.net/{tenant_id}/"
    assert _metadata_certificate(metadata) == connect_app.certificate_b64


def test_it_serves_federation_metadata_with_a_utf8_byte_order_mark(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    endpoints = sandbox.endpoints
    response = requests.get(
        f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}"
        f"/federationmetadata/2007-06/federationmetadata.xml",
        params={"appid": connect_app.app_id},
        verify=endpoints["ca_bundle"],
        timeout=10,
    )

    # As Entra does (MicrosoftDocs/azure-docs issue 65434): EF BB BF, then the XML declaration.
    assert response.content.startswith(b"\xef\xbb\xbf<?xml")


def test_it_signs_with_the_tenant_certificate_until_a_preferred_one_is_set(
    sandbox: Sandbox,
) -> None:
    async def scenario() -> tuple[str, str]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, "Amazon Connect (no cert)")
        certificate = await client.service_principals.by_service_principal_id(
            service_principal.id
        ).add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(display_name="CN=Not preferred yet")
        )
        return str(application.app_id), base64.b64encode(certificate.key).decode()

    app_id, added_certificate = run(scenario)
    published = _metadata_certificate(_metadata(sandbox, app_id))
    assert published != added_certificate
    assert published == sandbox.apps["entra"].tenant.tenant_signing_certificate.cert_base64


def test_it_signs_a_saml_response_with_exactly_the_configured_claims(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    user = connect_app.directly_assigned
    response = _sign_on(sandbox, connect_app.app_id, user.login, accept="application/json")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] == sandbox.endpoints["aws_signin_url"]
    assert body["RelayState"] == RELAY_STATE
    document = etree.fromstring(base64.b64decode(body["SAMLResponse"]))
    assert document.get("Destination") == AWS_SIGNIN
    assertion = _verified_assertion(body["SAMLResponse"], connect_app.certificate_b64)
    tenant_id = sandbox.endpoints["entra_tenant_id"]
    assert (
        assertion.findtext("saml:Issuer", namespaces=NS) == f"https://sts.windows.net/{tenant_id}/"
    )
    assert (
        assertion.findtext("saml:Conditions/saml:AudienceRestriction/saml:Audience", namespaces=NS)
        == "https://signin.aws.amazon.com/saml"
    )
    confirmation = assertion.find(
        "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS
    )
    assert confirmation.get("Recipient") == AWS_SIGNIN
    attributes = _attributes(assertion)
    assert attributes[ROLE_ATTRIBUTE] == [ROLE_VALUE]
    assert user.email != user.login
    assert attributes[ROLE_SESSION_NAME_ATTRIBUTE] == [user.email]
    assert attributes[SESSION_DURATION_ATTRIBUTE] == [SESSION_DURATION]


def test_it_renders_a_form_that_posts_to_the_sandbox_aws_sign_in(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    response = _sign_on(
        sandbox, connect_app.app_id, connect_app.supervisor.login, accept="text/html"
    )

    assert response.status_code == 200, response.text
    page = etree.fromstring(response.content, etree.HTMLParser())
    (form,) = page.findall(".//form")
    assert form.get("method") == "POST"
    assert form.get("action") == sandbox.endpoints["aws_signin_url"]
    fields = {field.get("name"): field.get("value") for field in form.findall(".//input")}
    assert fields["RelayState"] == RELAY_STATE
    assertion = _verified_assertion(fields["SAMLResponse"], connect_app.certificate_b64)
    assert _attributes(assertion)[ROLE_ATTRIBUTE] == [ROLE_VALUE]
    assert form.find(".//button[@type='submit']") is not None


def test_it_refuses_users_reaching_the_app_only_through_a_nested_group(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    response = _sign_on(
        sandbox, connect_app.app_id, connect_app.nested_agent.login, accept="application/json"
    )

    assert response.status_code == 403
    assert response.json()["error"] == "AADSTS50105"
    assert "not a direct member of a group" in response.json()["error_description"]


def test_it_refuses_an_unknown_user_with_an_error_page(
    sandbox: Sandbox, connect_app: ConnectApp
) -> None:
    response = _sign_on(sandbox, connect_app.app_id, f"nobody@{ENTRA_DOMAIN}", accept="text/html")

    assert response.status_code == 400
    assert "AADSTS50034" in response.text
    assert "SAMLResponse" not in response.text


def test_it_sends_the_gallery_apps_default_claims_without_a_policy(sandbox: Sandbox) -> None:
    person = next(person for person in _people(sandbox) if person.key == "same-email-2")

    async def scenario() -> str:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, "Amazon Connect (defaults)")
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        role = federation_role(ROLE_VALUE)
        await saml_app_with_role(
            client,
            application,
            service_principal,
            role,
            identifier=f"https://signin.aws.amazon.com/saml#{uuid.uuid4().hex[:8]}",
        )
        user = await client.users.by_user_id(person.login).get()
        await sp.app_role_assigned_to.post(
            AppRoleAssignment(
                principal_id=uuid.UUID(str(user.id)),
                resource_id=service_principal.id,
                app_role_id=role.id,
            )
        )
        return str(application.app_id)

    app_id = run(scenario)
    response = _sign_on(sandbox, app_id, person.login, accept="application/json")

    assert response.status_code == 200, response.text
    assert response.json()["RelayState"] is None
    tenant_certificate = _metadata_certificate(_metadata(sandbox, app_id))
    attributes = _attributes(
        _verified_assertion(response.json()["SAMLResponse"], tenant_certificate)
    )
    assert attributes[ROLE_ATTRIBUTE] == [ROLE_VALUE]
    assert attributes[ROLE_SESSION_NAME_ATTRIBUTE] == [person.login]
    assert SESSION_DURATION_ATTRIBUTE not in attributes
