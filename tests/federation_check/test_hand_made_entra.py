"""`check_federation` on an Entra federation built by hand through the SDKs, step by step as the
Japanese blog posts do it (Entra gallery app "AWS Single-Account Access", IAM provider, a policy on
"*" with connect:InstanceId, a SAML role, Connect users added by hand), with the mistakes such
hand-made federations carry: RoleSessionName taken from `mail` while the Connect usernames are
UPNs, and no relay state. Each mistake must come back as its named finding with its why and fix."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import requests
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.saml_single_sign_on_settings import SamlSingleSignOnSettings
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.web_application import WebApplication
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)

from sandbox.directory import Person, seed_directory
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.federation_check.hand_made import (
    assert_healthy,
    check_args,
    check_json,
    findings,
    link_states,
)
from tests.federation_check.test_check_federation import REGION, check
from tests.flows.entra_runs import entra_sandbox  # noqa: F401
from tests.sandbox.aws_clients import active_instance, aws_client, default_profiles
from tests.sandbox.entra_graph import (
    claims_mapping_definition,
    federation_role,
    graph_client,
    new_aws_app,
    run,
    saml_app_with_role,
    until_visible,
)


def _people(sandbox: Sandbox, *keys: str) -> list[Person]:
    people = seed_directory(domain=ENTRA_DOMAIN, agents=sandbox.knobs.directory_agents).people
    return [next(person for person in people if person.key == key) for key in keys]


def _federation_metadata(sandbox: Sandbox, app_id: str) -> str:
    """The "Federation Metadata XML" download of the app's SAML certificates block."""
    endpoints = sandbox.endpoints
    response = requests.get(
        f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}"
        "/federationmetadata/2007-06/federationmetadata.xml",
        params={"appid": app_id},
        verify=endpoints["ca_bundle"],
        timeout=10,
    )
    response.raise_for_status()
    # Entra's file starts with a byte-order mark, which IAM's API refuses; the console's
    # upload of the saved file reads it as UTF-8 text, without it.
    return response.content.decode("utf-8-sig")


def build_by_hand(
    sandbox: Sandbox,
    people: list[Person],
    *,
    session_name_source: str = "mail",
    fixed_role_claim: bool = False,
    relay_state: bool = False,
) -> dict[str, Any]:
    """Seed steps 1-6: Connect instance (SAML), Entra app in SAML mode, IAM provider from the
    downloaded metadata, the federation policy and SAML role, the Role claim, the people
    assigned, Connect users named by their UPN. By default the claims mapping policy sends
    `mail` as RoleSessionName, the Role claim comes from an app role and the relay state is
    never set. `fixed_role_claim` types "<provider ARN>,<role ARN>" as the Role claim's source
    and assigns people the gallery app's own msiam_access role (seed 004, "Microsoft Entra IDの
    登録2" 9); `relay_state` sets seed 000's relay state, destination included (5-2)."""
    connect = aws_client(sandbox, "connect")
    iam = aws_client(sandbox, "iam")
    instance = active_instance(connect, "handmade")
    suffix = uuid.uuid4().hex[:8]

    async def entra_app() -> tuple[str, str, Any, Any, Any]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, f"Amazon Connect {suffix}")
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        await sp.patch(ServicePrincipal(preferred_single_sign_on_mode="saml"))
        certificate = await sp.add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(
                display_name="CN=Microsoft Azure Federated SSO Certificate",
                end_date_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365),
            )
        )
        await sp.patch(
            ServicePrincipal(preferred_token_signing_key_thumbprint=certificate.thumbprint)
        )
        return str(application.app_id), str(service_principal.id), client, application, sp

    async def configure() -> dict[str, Any]:
        app_id, sp_id, client, application, sp = await entra_app()
        metadata = _federation_metadata(sandbox, app_id)
        provider_arn = iam.create_saml_provider(
            Name=f"entra-sso-example-{suffix}", SAMLMetadataDocument=metadata
        )["SAMLProviderArn"]
        policy_arn = iam.create_policy(
            PolicyName=f"AmazonConnectEntraSso-{suffix}",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowConnectFederation",
                            "Effect": "Allow",
                            "Action": "connect:GetFederationToken",
                            "Resource": "*",
                            "Condition": {"StringEquals": {"connect:InstanceId": instance["Id"]}},
                        }
                    ],
                }
            ),
        )["Policy"]["Arn"]
        # The console's "SAML 2.0 federation" role with the non-regional sign-in endpoint.
        role = iam.create_role(
            RoleName=f"AmazonConnectEntra-{suffix}",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": provider_arn},
                            "Action": "sts:AssumeRoleWithSAML",
                            "Condition": {
                                "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}
                            },
                        }
                    ],
                }
            ),
        )["Role"]
        iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=policy_arn)
        identifier = f"https://signin.aws.amazon.com/saml#{suffix}"
        if fixed_role_claim:
            await client.applications.by_application_id(application.id).patch(
                Application(
                    identifier_uris=[identifier],
                    web=WebApplication(redirect_uris=["https://signin.aws.amazon.com/saml"]),
                )
            )
            assigned_role_id = next(
                r.id for r in application.app_roles if r.display_name == "msiam_access"
            )
        else:
            connect_role = federation_role(f"{role['Arn']},{provider_arn}")
            await saml_app_with_role(
                client, application, await sp.get(), connect_role, identifier=identifier
            )
            assigned_role_id = connect_role.id
        if relay_state:
            await sp.patch(
                ServicePrincipal(
                    saml_single_sign_on_settings=SamlSingleSignOnSettings(
                        relay_state=f"https://{REGION}.console.aws.amazon.com/connect/federate/"
                        f"{instance['Id']}?destination=%2Fconnect%2Fhome"
                    )
                )
            )
        policy = await client.policies.claims_mapping_policies.post(
            ClaimsMappingPolicy(
                display_name=f"AWS claims {suffix}",
                definition=[
                    claims_mapping_definition(
                        session_name_source=session_name_source,
                        session_duration="3600",
                        role_value=f"{provider_arn},{role['Arn']}" if fixed_role_claim else "",
                    )
                ],
            )
        )
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
        for person in people:
            user = await client.users.by_user_id(person.login).get()
            await sp.app_role_assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(str(user.id)),
                    resource_id=uuid.UUID(sp_id),
                    app_role_id=assigned_role_id,
                )
            )
        return {"app_id": app_id, "provider_arn": provider_arn, "role_arn": role["Arn"]}

    built = run(configure)
    security, routing = default_profiles(connect, instance["Id"])
    for person in people:
        connect.create_user(
            Username=person.login,
            IdentityInfo={"FirstName": person.given_name, "LastName": person.surname or "-"},
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[security["Agent"]],
            RoutingProfileId=routing,
            InstanceId=instance["Id"],
        )
    return {**built, "instance_id": instance["Id"], "alias": instance["InstanceAlias"]}


def test_it_names_each_mistake_of_a_federation_made_by_hand(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    # Two people whose mail is a shared mailbox, unlike their UPN.
    people = _people(entra_sandbox, "same-email-1", "same-email-2")
    built = build_by_hand(entra_sandbox, people)

    code, result = check_json("entra", built)

    assert code == 1, result
    assert link_states(result) == {
        "idp_app": "ok",
        "claims": "broken",
        "saml_provider": "ok",
        "federation_role": "ok",
        "connect_instance": "ok",
        "connect_users": "broken",
    }, result["findings"]
    found = findings(result)
    assert set(found) == {
        ("claims", "relay_state_missing"),
        ("connect_users", "session_name_from_other_attribute"),
    }, result["findings"]
    wrong_source = found[("connect_users", "session_name_from_other_attribute")]
    assert wrong_source["source"] == "mail"
    assert wrong_source["names"] == ", ".join(sorted(person.login for person in people))

    code, text = check(*check_args("entra", built))

    assert code == 1
    assert "The app has no relay state." in text
    assert "AWS opens the AWS console instead of Amazon Connect" in text
    assert "/connect/federate/" + built["instance_id"] in text
    assert "sends RoleSessionName from mail" in text
    assert "Map RoleSessionName to user.userprincipalname" in text


def test_it_reads_a_role_claim_typed_as_fixed_text(entra_sandbox: Sandbox) -> None:  # noqa: F811
    # Seeds 000 and 004 type the ARNs into the Role claim's source instead of an app role, and
    # name Connect users by UPN: a healthy federation, which the check must not flag.
    people = _people(entra_sandbox, "same-email-1", "same-email-2")
    built = build_by_hand(
        entra_sandbox,
        people,
        session_name_source="userprincipalname",
        fixed_role_claim=True,
        relay_state=True,
    )

    links = assert_healthy(*check_json("entra", built))
    assert links["federation_role"]["fact"] == built["role_arn"].rsplit("/", 1)[-1]
    assert links["saml_provider"]["fact"] == built["provider_arn"].rsplit("/", 1)[-1]


def test_it_finds_an_app_by_its_fixed_text_role_claim_alone(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    # Seed 004: the ARNs typed into the Role claim, no relay state, no app role naming the role;
    # only the claims mapping policy's constant says which role the app signs in to.
    people = _people(entra_sandbox, "same-email-1")
    built = build_by_hand(
        entra_sandbox, people, session_name_source="userprincipalname", fixed_role_claim=True
    )

    code, result = check_json("entra", built)

    assert set(findings(result)) == {("claims", "relay_state_missing")}, result["findings"]
    assert code == 1
    links = {link["key"]: link for link in result["links"]}
    assert links["federation_role"]["fact"] == built["role_arn"].rsplit("/", 1)[-1]
