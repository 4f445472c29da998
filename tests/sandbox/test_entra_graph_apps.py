"""The sandbox Graph's gallery apps, service principals, certificates, claims mapping policies and
app role assignments, driven through msgraph-sdk exactly as the Entra steps call them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.application_templates.application_templates_request_builder import (
    ApplicationTemplatesRequestBuilder,
)
from msgraph.generated.application_templates.item.instantiate.instantiate_post_request_body import (
    InstantiatePostRequestBody,
)
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.models.app_role import AppRole
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.saml_single_sign_on_settings import SamlSingleSignOnSettings
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.web_application import WebApplication
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.sandbox.entra_graph import (
    AWS_SIGNIN,
    claims_mapping_definition,
    federation_role,
    graph_client,
    new_aws_app,
    no_retry,
    run,
    until_visible,
)

AWS_TEMPLATE_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
ROLE_VALUE = (
    "arn:aws:iam::123456789012:role/ConnectFederation,"
    "arn:aws:iam::123456789012:saml-provider/EntraID"
)


# A little longer than the conftest's replication window (graph_visibility_delay_s = 0.2 s).
MIRROR_WAIT_S = 0.3


def _name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


async def _first_user_id(client: Any) -> str:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=1)
    users = await client.users.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    return str(users.value[0].id)


def test_it_finds_only_the_exact_gallery_template_by_display_name(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[list[Any], Any]:
        client = graph_client(sandbox.endpoints)
        query = (
            ApplicationTemplatesRequestBuilder.ApplicationTemplatesRequestBuilderGetQueryParameters(
                filter="displayName eq 'AWS Single-Account Access'"
            )
        )
        found = await client.application_templates.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        everything = await client.application_templates.get()
        return found.value, everything

    found, everything = run(scenario)
    assert [template.id for template in found] == [AWS_TEMPLATE_ID]
    assert found[0].supported_single_sign_on_modes == ["saml", "external"]
    assert len(everything.value) >= 3


def test_it_shows_instantiated_objects_only_after_the_replication_delay(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    # Long enough for the three early calls on a loaded machine.
    sandbox_knobs.graph_visibility_delay_s = 3.0

    async def scenario() -> tuple[int, Any, Any, float]:
        client = graph_client(sandbox.endpoints)
        created = await client.application_templates.by_application_template_id(
            AWS_TEMPLATE_ID
        ).instantiate.post(InstantiatePostRequestBody(display_name=_name("Connect")))
        started = time.monotonic()
        with pytest.raises(ODataError) as early:
            await client.service_principals.by_service_principal_id(
                created.service_principal.id
            ).get()
        while True:
            try:
                service_principal = await client.service_principals.by_service_principal_id(
                    created.service_principal.id
                ).get()
                break
            except ODataError:
                await asyncio.sleep(0.05)
        return early.value.response_status_code, created, service_principal, started

    status, created, service_principal, started = run(scenario)
    assert status == 404
    assert created.application.app_id == created.service_principal.app_id
    assert created.application.application_template_id == AWS_TEMPLATE_ID
    assert service_principal.app_role_assignment_required is True
    assert {role.display_name for role in service_principal.app_roles} == {"User", "msiam_access"}
    assert time.monotonic() - started >= 0.4


def test_it_answers_404_to_reads_writes_and_links_of_a_new_policy_until_it_replicates(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    # hashicorp/terraform-provider-azuread PR 656: a write to a new object 404s until replicated.
    # Long enough for the three early calls on a loaded machine.
    sandbox_knobs.graph_visibility_delay_s = 3.0

    async def scenario() -> tuple[list[ODataError], float]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        policy = await client.policies.claims_mapping_policies.post(
            ClaimsMappingPolicy(
                display_name=_name("Amazon Connect claims"),
                definition=[
                    claims_mapping_definition(session_name_source="mail", session_duration="3600")
                ],
            )
        )
        started = time.monotonic()
        item = client.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy.id)
        link = client.service_principals.by_service_principal_id(
            service_principal.id
        ).claims_mapping_policies.ref
        reference = ReferenceCreate(
            odata_id=f"https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/{policy.id}"
        )
        refused = []
        for early in (
            item.get(),
            item.patch(ClaimsMappingPolicy(display_name="renamed")),
            link.post(reference),
        ):
            with pytest.raises(ODataError) as not_yet:
                await early
            refused.append(not_yet.value)
        await until_visible(item.get)
        await link.post(reference)
        return refused, time.monotonic() - started

    refused, waited = run(scenario)
    for error in refused:
        assert error.response_status_code == 404
        assert error.error.code == "Request_ResourceNotFound"
        assert error.error.message.startswith("Resource '")
        assert "' does not exist or one of its queried reference-property objects" in (
            error.error.message
        )
    assert waited >= 0.4


def test_it_patches_saml_settings_and_mirrors_them_on_the_service_principal(
    sandbox: Sandbox,
) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, _name("Connect"))
        identifier = f"https://signin.aws.amazon.com/saml#{uuid.uuid4().hex[:8]}"
        await client.service_principals.by_service_principal_id(service_principal.id).patch(
            ServicePrincipal(
                preferred_single_sign_on_mode="saml",
                saml_single_sign_on_settings=SamlSingleSignOnSettings(
                    relay_state="https://ap-northeast-1.console.aws.amazon.com/connect/federate/i-1"
                ),
            )
        )
        await client.applications.by_application_id(application.id).patch(
            Application(
                identifier_uris=[identifier],
                web=WebApplication(redirect_uris=[AWS_SIGNIN]),
                app_roles=[*application.app_roles, _federation_role()],
            )
        )
        await asyncio.sleep(MIRROR_WAIT_S)
        by_app_id = await client.service_principals_with_app_id(application.app_id).get()
        updated_application = await client.applications.by_application_id(application.id).get()
        return by_app_id, updated_application, identifier

    service_principal, application, identifier = run(scenario)
    assert application.identifier_uris == [identifier]
    assert application.web.redirect_uris == [AWS_SIGNIN]
    assert service_principal.preferred_single_sign_on_mode == "saml"
    assert service_principal.saml_single_sign_on_settings.relay_state.endswith("/federate/i-1")
    assert identifier in service_principal.service_principal_names
    assert service_principal.reply_urls == [AWS_SIGNIN]
    assert {role.value for role in service_principal.app_roles} == {None, ROLE_VALUE}
    assert ROLE_VALUE in {role.value for role in application.app_roles}


def test_it_refuses_an_identifier_another_application_holds(sandbox: Sandbox) -> None:
    identifier = f"https://signin.aws.amazon.com/saml#{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[ODataError, list[str], str]:
        client = graph_client(sandbox.endpoints)
        first, first_sp = await new_aws_app(client, _name("Connect"))
        second, second_sp = await new_aws_app(client, _name("Connect"))
        for service_principal in (first_sp, second_sp):
            await client.service_principals.by_service_principal_id(service_principal.id).patch(
                ServicePrincipal(preferred_single_sign_on_mode="saml")
            )
        await client.applications.by_application_id(first.id).patch(
            Application(identifier_uris=[identifier])
        )
        with pytest.raises(ODataError) as raised:
            await client.applications.by_application_id(second.id).patch(
                Application(identifier_uris=[identifier.upper()])
            )
        query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter=f"identifierUris/any(uri:uri eq '{identifier}')"
        )
        holders = await client.applications.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        return raised.value, [application.id for application in holders.value], first.id

    error, holders, first_id = run(scenario)
    assert error.response_status_code == 400
    assert "identifierUris already exists" in error.error.message
    assert holders == [first_id]


def test_it_injects_failures_the_sdk_sees_as_graph_503s(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    sandbox_knobs.error_rates["graph:read"] = 1.0

    async def scenario() -> ODataError:
        client = graph_client(sandbox.endpoints)
        with pytest.raises(ODataError) as raised:
            await client.application_templates.get(request_configuration=no_retry())
        return raised.value

    error = run(scenario)
    assert error.response_status_code == 503
    assert error.error.code == "serviceNotAvailable"
    assert error.response_headers["Retry-After"] == "1"


def _federation_role() -> AppRole:
    return federation_role(ROLE_VALUE)


def test_it_refuses_to_drop_an_enabled_app_role_until_it_is_disabled(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[ODataError, list[str | None]]:
        client = graph_client(sandbox.endpoints)
        application, _ = await new_aws_app(client, _name("Connect"))
        app = client.applications.by_application_id(application.id)
        role = _federation_role()
        await app.patch(Application(app_roles=[*application.app_roles, role]))
        with pytest.raises(ODataError) as raised:
            await app.patch(Application(app_roles=application.app_roles))
        role.is_enabled = False
        await app.patch(Application(app_roles=[*application.app_roles, role]))
        await app.patch(Application(app_roles=application.app_roles))
        left = await app.get()
        return raised.value, [r.value for r in left.app_roles]

    error, left = run(scenario)
    assert error.response_status_code == 400
    assert error.error.code == "CannotDeleteOrUpdateEnabledEntitlement"
    assert left == [None, None]


def test_it_refuses_app_roles_patched_on_a_service_principal(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[ODataError, Any]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        with pytest.raises(ODataError) as raised:
            await sp.patch(
                ServicePrincipal(app_roles=[*service_principal.app_roles, _federation_role()])
            )
        # The same list it already mirrors is no change, and passes.
        await sp.patch(ServicePrincipal(app_roles=service_principal.app_roles))
        return raised.value, await sp.get()

    error, service_principal = run(scenario)
    assert error.response_status_code == 400
    assert error.error.code == "Request_BadRequest"
    assert "does not match the application object" in error.error.message
    assert {role.value for role in service_principal.app_roles} == {None}


# The sandbox's replication window in the mirror test: the early calls must fall inside it.
MIRROR_WINDOW_S = 3.0


def test_it_mirrors_the_application_app_roles_on_the_service_principal_only_after_a_delay(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    # Long enough for the early read and assignment on a loaded machine.
    sandbox_knobs.graph_visibility_delay_s = MIRROR_WINDOW_S

    async def scenario() -> tuple[set[str | None], set[str | None], ODataError]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, _name("Connect"))
        role = _federation_role()
        await client.applications.by_application_id(application.id).patch(
            Application(app_roles=[*application.app_roles, role])
        )
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        early = {r.value for r in (await sp.get()).app_roles}
        with pytest.raises(ODataError) as refused:
            await sp.app_role_assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(await _first_user_id(client)),
                    resource_id=uuid.UUID(str(service_principal.id)),
                    app_role_id=role.id,
                )
            )
        await asyncio.sleep(MIRROR_WINDOW_S + 0.5)
        late = {r.value for r in (await sp.get()).app_roles}
        return early, late, refused.value

    early, late, refused = run(scenario)
    assert early == {None}
    assert "Permission being assigned was not found" in refused.error.message
    assert late == {None, ROLE_VALUE}


def test_it_refuses_an_identifier_outside_verified_domains_until_the_app_is_in_saml_mode(
    sandbox: Sandbox,
) -> None:
    identifier = f"https://signin.aws.amazon.com/saml#{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[ODataError, list[str]]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, _name("Connect"))
        app = client.applications.by_application_id(application.id)
        with pytest.raises(ODataError) as refused:
            await app.patch(Application(identifier_uris=[identifier]))
        # The tenant's own domain and the app ID pass in any mode.
        own = f"https://connect.contoso-sandbox.onmicrosoft.com/{uuid.uuid4().hex[:8]}"
        await app.patch(Application(identifier_uris=[own, f"api://{application.app_id}"]))
        await client.service_principals.by_service_principal_id(service_principal.id).patch(
            ServicePrincipal(preferred_single_sign_on_mode="saml")
        )
        await app.patch(Application(identifier_uris=[identifier]))
        return refused.value, (await app.get()).identifier_uris

    refused, identifiers = run(scenario)
    assert refused.response_status_code == 400
    assert refused.error.message.startswith(f"Failed to add identifier URI {identifier}.")
    assert "aka.ms/identifier-uri-addition-error" in refused.error.message
    assert identifiers == [identifier]


def test_it_issues_a_token_signing_certificate_and_lists_its_keys(sandbox: Sandbox) -> None:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)

    async def scenario() -> tuple[Any, Any]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        certificate = await client.service_principals.by_service_principal_id(
            service_principal.id
        ).add_token_signing_certificate.post(
            AddTokenSigningCertificatePostRequestBody(
                display_name="CN=Amazon Connect SSO", end_date_time=end
            )
        )
        await client.service_principals.by_service_principal_id(service_principal.id).patch(
            ServicePrincipal(preferred_token_signing_key_thumbprint=certificate.thumbprint)
        )
        updated = await client.service_principals.by_service_principal_id(
            service_principal.id
        ).get()
        return certificate, updated

    certificate, service_principal = run(scenario)
    x509_certificate = x509.load_der_x509_certificate(certificate.key)
    assert certificate.thumbprint == x509_certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert x509_certificate.subject.rfc4514_string() == "CN=Amazon Connect SSO"
    assert abs((certificate.end_date_time - end).total_seconds()) < 2
    assert service_principal.preferred_token_signing_key_thumbprint == certificate.thumbprint
    usages = sorted(key.usage for key in service_principal.key_credentials)
    assert usages == ["Sign", "Verify"]
    assert {key.custom_key_identifier for key in service_principal.key_credentials} == {
        bytes.fromhex(certificate.thumbprint)
    }


def test_it_links_one_claims_mapping_policy_per_service_principal(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[list[str], int, list[str], ODataError]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        policies = []
        for session_name_source in ("userprincipalname", "mail"):
            policies.append(
                await client.policies.claims_mapping_policies.post(
                    ClaimsMappingPolicy(
                        display_name=_name("Amazon Connect claims"),
                        definition=[
                            claims_mapping_definition(
                                session_name_source=session_name_source, session_duration="3600"
                            )
                        ],
                    )
                )
            )
        for policy in policies:
            await until_visible(
                lambda policy=policy: (
                    client.policies.claims_mapping_policies.by_claims_mapping_policy_id(  # noqa: E501
                        policy.id
                    ).get()
                )
            )
        graph_url = "https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/"
        await sp.claims_mapping_policies.ref.post(
            ReferenceCreate(odata_id=graph_url + policies[0].id)
        )
        linked = await sp.claims_mapping_policies.get()
        with pytest.raises(ODataError) as second:
            await sp.claims_mapping_policies.ref.post(
                ReferenceCreate(odata_id=graph_url + policies[1].id)
            )
        await sp.claims_mapping_policies.by_claims_mapping_policy_id(policies[0].id).ref.delete()
        after_unlink = await sp.claims_mapping_policies.get()
        await client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
            policies[0].id
        ).delete()
        with pytest.raises(ODataError) as gone:
            await client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                policies[0].id
            ).get()
        return (
            [policy.id for policy in linked.value] + [linked.value[0].definition[0]],
            gone.value.response_status_code,
            [policy.id for policy in after_unlink.value],
            second.value,
        )

    linked, gone_status, after_unlink, second = run(scenario)
    assert len(linked) == 2 and '"ID": "assignedroles"' in linked[1]
    assert second.response_status_code == 409
    assert after_unlink == []
    assert gone_status == 404


def test_it_links_one_claims_mapping_policy_to_several_service_principals(
    sandbox: Sandbox,
) -> None:
    async def scenario() -> tuple[list[str], set[str]]:
        client = graph_client(sandbox.endpoints)
        service_principals = [(await new_aws_app(client, _name("Connect")))[1] for _ in range(2)]
        policy = await client.policies.claims_mapping_policies.post(
            ClaimsMappingPolicy(
                display_name=_name("Shared claims"),
                definition=[
                    claims_mapping_definition(session_name_source="mail", session_duration="3600")
                ],
            )
        )
        # A new policy replicates before it can be linked (see BEHAVIOURS.md).
        policies = client.policies.claims_mapping_policies
        await until_visible(lambda: policies.by_claims_mapping_policy_id(policy.id).get())
        graph_url = "https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/"
        linked = []
        for service_principal in service_principals:
            sp = client.service_principals.by_service_principal_id(service_principal.id)
            await sp.claims_mapping_policies.ref.post(
                ReferenceCreate(odata_id=graph_url + policy.id)
            )
            linked.extend(p.id for p in (await sp.claims_mapping_policies.get()).value)
        targets = await client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
            policy.id
        ).applies_to.get()
        return linked, {target.id for target in targets.value}

    linked, targets = run(scenario)
    assert len(set(linked)) == 1 and len(linked) == 2
    assert len(targets) == 2


def test_it_assigns_lists_and_removes_app_role_assignments(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[Any, list[str], list[str], ODataError]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        user_id = await _first_user_id(client)
        role = next(role for role in service_principal.app_roles if role.display_name == "User")
        assigned_to = client.service_principals.by_service_principal_id(
            service_principal.id
        ).app_role_assigned_to
        assignment = await assigned_to.post(
            AppRoleAssignment(
                principal_id=uuid.UUID(user_id),
                resource_id=service_principal.id,
                app_role_id=role.id,
            )
        )
        listed = await assigned_to.get()
        with pytest.raises(ODataError) as duplicate:
            await assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(user_id),
                    resource_id=service_principal.id,
                    app_role_id=role.id,
                )
            )
        await assigned_to.by_app_role_assignment_id(assignment.id).delete()
        after = await assigned_to.get()
        return (
            assignment,
            [item.id for item in listed.value],
            [item.id for item in after.value],
            duplicate.value,
        )

    assignment, listed, after, duplicate = run(scenario)
    assert assignment.principal_type == "User"
    assert listed == [assignment.id]
    assert after == []
    assert duplicate.response_status_code == 400


def test_it_throttles_writes_past_the_graph_write_rate_with_retry_after(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    async def scenario() -> tuple[ODataError, float]:
        client = graph_client(sandbox.endpoints)
        _, service_principal = await new_aws_app(client, _name("Connect"))
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        sandbox_knobs.rate_limits["graph:write"] = (1, 1)
        sandbox_knobs.rate_limits_enabled = True
        sandbox_knobs.reset_buckets()
        await sp.patch(ServicePrincipal(notes="first write takes the only token"))
        with pytest.raises(ODataError) as throttled:
            await sp.patch(ServicePrincipal(notes="second write"), request_configuration=no_retry())
        started = time.monotonic()
        # With its default middleware the SDK waits out Retry-After and succeeds.
        await sp.patch(ServicePrincipal(notes="third write, retried"))
        return throttled.value, time.monotonic() - started

    throttled, retried_after = run(scenario)
    assert throttled.response_status_code == 429
    assert throttled.error.code == "TooManyRequests"
    assert throttled.response_headers["Retry-After"] == "1"
    assert retried_after >= 0.5


def test_it_deletes_an_application_with_its_service_principal(sandbox: Sandbox) -> None:
    async def scenario() -> tuple[int, list[Any]]:
        client = graph_client(sandbox.endpoints)
        application, service_principal = await new_aws_app(client, _name("Connect"))
        await client.applications.by_application_id(application.id).delete()
        with pytest.raises(ODataError) as gone:
            await client.service_principals.by_service_principal_id(service_principal.id).get()
        query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
            filter=f"appId eq '{application.app_id}'"
        )
        found = await client.service_principals.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        return gone.value.response_status_code, found.value

    status, found = run(scenario)
    assert status == 404
    assert found == []
