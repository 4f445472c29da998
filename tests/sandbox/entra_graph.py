"""azure-identity and msgraph-sdk pointed at the sandbox tenant the way the wizard's Entra client
does, for the Entra tests."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.application_templates.application_templates_request_builder import (
    ApplicationTemplatesRequestBuilder,
)
from msgraph.generated.application_templates.item.instantiate.instantiate_post_request_body import (
    InstantiatePostRequestBody,
)
from msgraph.generated.models.app_role import AppRole
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.user import User
from msgraph.generated.models.web_application import WebApplication
from msgraph.graph_request_adapter import options as graph_default_options
from msgraph_core import GraphClientFactory

from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SESSION_DURATION_ATTRIBUTE,
)

# The scope of every app-only Graph call. Without it kiota derives "https://<host>/.default"
# from the request URL, which Entra (and the sandbox) refuse with AADSTS500011.
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# How long tests wait for instantiated objects to replicate (conftest sets 0.2 s).
VISIBILITY_TIMEOUT_S = 10
POLL_INTERVAL_S = 0.1

T = TypeVar("T")


def graph_credential(endpoints: dict[str, str], *, secret: str | None = None) -> Any:
    return ClientSecretCredential(
        endpoints["entra_tenant_id"],
        endpoints["entra_client_id"],
        secret or endpoints["entra_client_secret"],
        authority=endpoints["entra_authority"],
        disable_instance_discovery=True,
        connection_verify=endpoints["ca_bundle"],
    )


def graph_client(endpoints: dict[str, str], *, credential: Any | None = None) -> GraphServiceClient:
    """A GraphServiceClient on the sandbox's Graph: Graph's default middleware (retry on 429
    with Retry-After, redirects, telemetry) over an httpx client that trusts the sandbox CA.
    Its pooled connections belong to the event loop of its first call: use it through `run`,
    or inside one event loop."""
    auth = AzureIdentityAuthenticationProvider(
        credential or graph_credential(endpoints), scopes=[GRAPH_SCOPE]
    )
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            base_url=endpoints["graph_base_url"],
            verify=ssl.create_default_context(cafile=endpoints["ca_bundle"]),
            timeout=httpx.Timeout(30, connect=10),
        ),
        options=graph_default_options,
    )
    adapter = GraphRequestAdapter(auth, client=http_client)
    # httpx adds a trailing slash to base_url; kiota's URL templates add their own.
    adapter.base_url = endpoints["graph_base_url"]
    return GraphServiceClient(request_adapter=adapter)


def no_retry() -> RequestConfiguration[Any]:
    """A request configuration that lets a 429/503 reach the caller instead of being retried."""
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0, should_retry=False)])


_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _session_loop() -> asyncio.AbstractEventLoop:
    """This process's one event loop for the tests' Graph calls, in a thread of its own (made
    again after a fork), as the wizard keeps its Graph loop (provisioning/entra/client.py): a
    client's kept-alive connections belong to the loop that opened them, so every call of a
    session's client, from whichever thread, must run on that one loop."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="test-graph-loop", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Runs the scenario on the session's Graph loop and waits for its result."""

    async def scenario_coroutine() -> T:
        return await scenario()

    return asyncio.run_coroutine_threadsafe(scenario_coroutine(), _session_loop()).result()


async def until_visible(read: Callable[[], Awaitable[T]]) -> T:
    """Poll a Graph read until the object has replicated (404 before), as the steps must."""
    deadline = time.monotonic() + VISIBILITY_TIMEOUT_S
    while True:
        try:
            return await read()
        except ODataError as error:
            if error.response_status_code != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(POLL_INTERVAL_S)


AWS_TEMPLATE_NAME = "AWS Single-Account Access"
AWS_SIGNIN = "https://signin.aws.amazon.com/saml"


async def new_aws_app(client: GraphServiceClient, display_name: str) -> tuple[Any, Any]:
    """The first two things an admin does by hand in Entra: find the gallery template,
    instantiate it and wait until the application and service principal have replicated."""
    query = ApplicationTemplatesRequestBuilder.ApplicationTemplatesRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{AWS_TEMPLATE_NAME}'"
    )
    templates = await client.application_templates.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    assert templates is not None and templates.value is not None
    (template,) = templates.value
    created = await client.application_templates.by_application_template_id(
        str(template.id)
    ).instantiate.post(InstantiatePostRequestBody(display_name=display_name))
    assert created is not None and created.application and created.service_principal
    app_id, sp_id = str(created.application.id), str(created.service_principal.id)
    application = await until_visible(lambda: client.applications.by_application_id(app_id).get())
    service_principal = await until_visible(
        lambda: client.service_principals.by_service_principal_id(sp_id).get()
    )
    return application, service_principal


def federation_role(value: str, *, enabled: bool = True) -> AppRole:
    """An app role whose value is "<roleArn>,<providerArn>" (IAM User Guide, "Configure SAML
    assertions for the authentication response": a comma-delimited pair of role and provider
    ARNs)."""
    return AppRole(
        id=uuid.uuid4(),
        allowed_member_types=["User"],
        description="Amazon Connect users",
        display_name="ConnectFederation",
        is_enabled=enabled,
        value=value,
    )


async def saml_app_with_role(
    client: GraphServiceClient,
    application: Any,
    service_principal: Any,
    role: AppRole,
    *,
    identifier: str,
) -> None:
    """SAML mode first (the identifier URI policy exempts only SAML apps), then the identifier,
    reply URL and app role on the application, then wait until the service principal mirrors
    the role, as the Entra steps do."""
    sp = client.service_principals.by_service_principal_id(service_principal.id)
    await sp.patch(ServicePrincipal(preferred_single_sign_on_mode="saml"))
    await client.applications.by_application_id(application.id).patch(
        Application(
            identifier_uris=[identifier],
            web=WebApplication(redirect_uris=[AWS_SIGNIN]),
            app_roles=[*application.app_roles, role],
        )
    )
    deadline = time.monotonic() + VISIBILITY_TIMEOUT_S
    while not any(r.id == role.id for r in (await sp.get()).app_roles):
        assert time.monotonic() < deadline, "the service principal never showed the app role"
        await asyncio.sleep(POLL_INTERVAL_S)


def claims_mapping_definition(
    *, session_name_source: str, session_duration: str, role_value: str = ""
) -> str:
    """The ClaimsSchema an admin configures by hand for AWS, as Graph stores it in `definition`
    (Microsoft Graph, "Create claimsMappingPolicy"). With `role_value`, the Role claim is that
    fixed text instead of the assigned roles, as seeds 000 and 004 type "<role ARN>,<provider
    ARN>" into the Role claim's source attribute."""
    role: dict[str, str] = (
        {"Value": role_value, "SamlClaimType": ROLE_ATTRIBUTE}
        if role_value
        else {"Source": "user", "ID": "assignedroles", "SamlClaimType": ROLE_ATTRIBUTE}
    )
    return json.dumps(
        {
            "ClaimsMappingPolicy": {
                "Version": 1,
                "IncludeBasicClaimSet": "true",
                "ClaimsSchema": [
                    role,
                    {
                        "Source": "user",
                        "ID": session_name_source,
                        "SamlClaimType": ROLE_SESSION_NAME_ATTRIBUTE,
                    },
                    {"Value": session_duration, "SamlClaimType": SESSION_DURATION_ATTRIBUTE},
                ],
            }
        }
    )


# What an admin's tool holds to change the directory (Graph permissions reference).
DIRECTORY_WRITE_PERMISSIONS = frozenset({"User.ReadWrite.All", "GroupMember.ReadWrite.All"})


async def create_user(client: Any, upn: str, given: str, surname: str) -> str:
    """A new member user through POST /users, as an admin's tool makes one; its id."""
    user = await client.users.post(
        User(
            account_enabled=True,
            display_name=f"{given} {surname}",
            given_name=given,
            surname=surname,
            mail=upn,
            mail_nickname=upn.split("@")[0].replace(".", ""),
            user_principal_name=upn,
            password_profile=PasswordProfile(password="Sandbox-Passw0rd!"),  # noqa: S106
        )
    )
    return str(user.id)


async def add_member(client: Any, group_id: str, member_id: str) -> None:
    """POST /groups/{id}/members/$ref with the member's directoryObjects reference."""
    await client.groups.by_group_id(group_id).members.ref.post(
        ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{member_id}")
    )


async def remove_member(client: Any, group_id: str, member_id: str) -> None:
    """DELETE /groups/{id}/members/{id}/$ref."""
    await client.groups.by_group_id(group_id).members.by_directory_object_id(member_id).ref.delete()
