"""The Entra flow's wall time and HTTP requests through the wizard's engine against the same setup
done by a bare script (boto3 + msgraph-sdk called directly), in the sandbox with no instance or
Graph delay, both sides warm. The sandbox serves from a process of its own, as in `make run` and
as the clouds do: its work must not count against either side, nor compete with their threads.

The wizard runs in this process like `manage.py setup_sso` in a worker (same runner, audit rows,
plans and verifications), on PostgreSQL and Redis when they answer (BENCH_DATABASE_URL, an empty
database of your own, and BENCH_REDIS_URL; else a throwaway SQLite database and no Redis); the
bare script makes the calls an admin's own script would: create the instance, instantiate and set
up the app, register the metadata, create the policy and role, set claims and relay state, assign
a group, create its users, sign one in. Each side runs once untimed first (imports, SDK models,
the worker's first sign-in and clients), then RUNS rounds of one timed run per side in turn, each
run a new instance and app; every request the sandbox's clouds receive during a timed run is
counted (AWS, Entra and its sign-in, the AWS sign-in check).
Record: {"wizard_s", "bare_s" (medians), "ratio" (the median of the rounds' wizard / bare: the
wizard's own overhead),
"wizard_requests", "bare_requests", "wizard_token_requests", "bare_token_requests",
"wizard_queries" (database statements but BEGIN and COMMIT), "wizard_audit_rows" (per run),
"runs", "database", "load_average", and "careful_bare_s", "careful_ratio",
"careful_bare_requests": the bare script again with the looks-before-create and read-backs a
careful admin's re-runnable script makes (_Careful), a second view beside the target's ratio;
"wizard_cpu_s", "bare_cpu_s": this process's CPU time per run; "latency_ms",
"wizard_s_at_latency", "bare_s_at_latency", "ratio_at_latency": the wizard and the bare script
again with every request answered LATENCY_MS later, a third view: with clouds a network away the
requests, not this machine's CPU, take the time}.
On a busy machine every database round trip waits for the scheduler, so the ratio grows with
the load average: compare figures taken at a similar load.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import multiprocessing
import os
import re
import ssl
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.application_templates.item.instantiate.instantiate_post_request_body import (
    InstantiatePostRequestBody,
)
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.app_role import AppRole
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
from msgraph_core import GraphClientFactory

from sandbox.knobs import Knobs
from sandbox.server import Sandbox

EXAMPLE_PLAN = Path(__file__).resolve().parents[1] / "examples" / "entra-sandbox.toml"
TEMPLATE_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
GROUP = "Connect Admins"
SIGNIN = "https://signin.aws.amazon.com/saml"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Timed rounds (one run per side each), after the untimed warm-up runs; medians are recorded.
RUNS = int(os.environ.get("BENCH_ENTRA_RUNS", "5"))
# Milliseconds added to every request in the second view (ratio_at_latency): an assumed round
# trip and service time of a cloud API called from another network, not a measured figure.
LATENCY_MS = int(os.environ.get("BENCH_ENTRA_LATENCY_MS", "50"))
# The Entra token endpoint's path (sandbox/entra/app.py TOKEN, as login.microsoftonline.com).
TOKEN_PATH = re.compile(r"/oauth2/v2\.0/token$")


def run() -> dict[str, Any]:
    knobs = {
        "rate_limits_enabled": False,
        "instance_creation_delay_s": 0,
        "graph_visibility_delay_s": 0,
    }
    with tempfile.TemporaryDirectory() as state_dir:
        sandbox_file = Path(state_dir) / "sandbox.json"
        with _SandboxProcess(Path(state_dir), knobs, sandbox_file) as requests:
            endpoints = json.loads(sandbox_file.read_text())
            database = _setup_wizard(sandbox_file, Path(state_dir))
            queries = _Queries()
            runs = {
                "wizard": (lambda name: _wizard(Path(state_dir), name), queries.per_run),
                "bare": (lambda name: _bare(endpoints, name), None),
                "careful": (lambda name: _bare(endpoints, name, careful=True), None),
            }
            sides = _interleaved(requests, runs)
            # Again with every request answered LATENCY_MS later, as clouds a network away do.
            requests.set_latency(LATENCY_MS / 1000)
            far = _interleaved(
                requests, {name: runs[name] for name in ("wizard", "bare")}, prefix="bench-far"
            )
    wizard, bare, careful = sides["wizard"], sides["bare"], sides["careful"]
    wizard_s, bare_s = statistics.median(wizard["seconds"]), statistics.median(bare["seconds"])
    careful_s = statistics.median(careful["seconds"])
    return {
        "wizard_s": round(wizard_s, 2),
        "bare_s": round(bare_s, 2),
        # The median of each round's ratio: the sides of a round ran one after the other, under
        # about the same load.
        "ratio": _median_ratio(wizard["seconds"], bare["seconds"]),
        # CPU time of this process (the sandbox runs in another): what each side's own code costs,
        # less swayed by the machine's load than the wall time.
        "wizard_cpu_s": round(statistics.median(wizard["cpu_seconds"]), 2),
        "bare_cpu_s": round(statistics.median(bare["cpu_seconds"]), 2),
        "wizard_requests": wizard["requests"],
        "bare_requests": bare["requests"],
        # The same script with the reads a careful admin's re-runnable script makes (_careful):
        # not the target's ratio, a second view of where the wizard's time goes.
        "careful_bare_s": round(careful_s, 2),
        "careful_ratio": _median_ratio(wizard["seconds"], careful["seconds"]),
        "careful_bare_requests": careful["requests"],
        # The same two sides with LATENCY_MS added to every request: where the ratio heads when
        # the clouds' answers, not this machine's CPU, take the time (an assumed latency, not a
        # measured one: the target's ratio is the one above).
        "latency_ms": LATENCY_MS,
        "wizard_s_at_latency": round(statistics.median(far["wizard"]["seconds"]), 2),
        "bare_s_at_latency": round(statistics.median(far["bare"]["seconds"]), 2),
        "ratio_at_latency": _median_ratio(far["wizard"]["seconds"], far["bare"]["seconds"]),
        "wizard_token_requests": wizard["token_requests"],
        "bare_token_requests": bare["token_requests"],
        "wizard_queries": wizard["queries"],
        "wizard_audit_rows": wizard["audit_rows"],
        "runs": RUNS,
        "database": database,
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


class _SandboxProcess:
    """The sandbox in a process of its own, as `make run` has it (`manage.py sandbox`): the clouds'
    work runs beside each side, not inside the process measured, whose threads it would compete
    with for the interpreter lock. It counts every request its clouds receive (its wire log keeps
    only some of AWS's: not the ones moto answers) by wrapping each cloud's WSGI app; take() asks
    it for the paths requested since the last take()."""

    def __init__(self, state_dir: Path, knobs: dict[str, Any], endpoints_file: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve_counting,
            args=(child, state_dir, knobs, endpoints_file),
            name="bench-sandbox",
            daemon=True,
        )

    def __enter__(self) -> _SandboxProcess:
        self._process.start()
        if self._pipe.recv() != "started":
            raise RuntimeError("the sandbox process did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=30)

    def take(self) -> list[str]:
        self._pipe.send(("take", None))
        paths: list[str] = self._pipe.recv()
        return paths

    def set_latency(self, seconds: float) -> None:
        """Every request from now on is answered `seconds` later."""
        self._pipe.send(("latency", seconds))
        self._pipe.recv()


def _serve_counting(
    pipe: Connection, state_dir: Path, knobs: dict[str, Any], endpoints_file: Path
) -> None:
    sandbox = Sandbox(state_dir=state_dir, knobs=Knobs(**knobs))
    sandbox.start()
    sandbox.write_endpoints(endpoints_file)
    paths: list[str] = []
    lock = threading.Lock()
    latency = [0.0]

    def counting(app: Any) -> Any:
        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            with lock:
                paths.append(environ.get("PATH_INFO", ""))
            if latency[0]:
                time.sleep(latency[0])
            return app(environ, start_response)

        return counted

    for name, app in list(sandbox.apps.items()):
        sandbox.apps[name] = counting(app)
    pipe.send("started")
    try:
        while (command := pipe.recv()) != "stop":
            what, value = command
            if what == "latency":
                latency[0] = value
                pipe.send("set")
                continue
            with lock:
                taken = paths[:]
                paths.clear()
            pipe.send(taken)
    finally:
        sandbox.stop()


class _Queries:
    """Counts the statements this process sends to the database (a wrapper on every new
    connection's execute, cheaper than Django's query log)."""

    def __init__(self) -> None:
        from django.db import connection
        from django.db.backends.signals import connection_created

        self._count = 0
        connection.execute_wrappers.append(self._counted)
        connection_created.connect(self._on_connection, weak=False)

    def _on_connection(self, connection: Any, **_: Any) -> None:
        if self._counted not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._counted)

    def _counted(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self._count += 1
        return execute(sql, params, many, context)

    def per_run(self, alias: str) -> dict[str, int]:
        """The statements sent since the last call (BEGIN and COMMIT not included: the backend
        sends those itself), and the audit rows of the run `alias` (not counted)."""
        from provisioning.models import AuditEvent

        count = self._count
        rows = AuditEvent.objects.filter(run__instance_alias=alias).count()
        self._count = 0
        return {"queries": count, "audit_rows": rows}


def _interleaved(
    requests: _SandboxProcess,
    sides: dict[str, tuple[Callable[[str], None], Callable[[str], dict[str, int]] | None]],
    *,
    prefix: str = "bench",
) -> dict[str, dict[str, Any]]:
    """One untimed run of each side, then RUNS rounds in which each side runs once in turn (so a
    change of the machine's load falls on every side alike), each run under a name of its own.
    Per side: its seconds per round, the requests the sandbox received per timed run (the same
    every run, or the record says which differ), and what its `counts` counts after each run."""
    for name, (side, counts) in sides.items():
        side(f"{prefix}-{name}-warm")
        requests.take()
        if counts:
            counts(f"{prefix}-{name}-warm")
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    seen: dict[str, dict[str, set[int]]] = {
        name: {"requests": set(), "token_requests": set()} for name in sides
    }
    for number in range(RUNS):
        for name, (side, counts) in sides.items():
            alias = f"{prefix}-{name}-{number}"
            started, started_cpu = time.perf_counter(), time.process_time()
            side(alias)
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
            paths = requests.take()
            seen[name]["requests"].add(len(paths))
            seen[name]["token_requests"].add(sum(1 for path in paths if TOKEN_PATH.search(path)))
            for key, value in (counts(alias) if counts else {}).items():
                seen[name].setdefault(key, set()).add(value)
    return {
        name: {
            "seconds": seconds[name],
            "cpu_seconds": cpu[name],
            **{
                key: value.pop() if len(value) == 1 else sorted(value)
                for key, value in seen[name].items()
            },
        }
        for name in sides
    }


def _median_ratio(seconds: list[float], baseline: list[float]) -> float:
    return round(statistics.median(a / b for a, b in zip(seconds, baseline, strict=True)), 2)


def _setup_wizard(sandbox_file: Path, state_dir: Path) -> str:
    database_url = os.environ.get("BENCH_DATABASE_URL", "")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    os.environ.update(
        {
            "WIZARD_TESTING": "1",
            "WIZARD_MODE": "sandbox",
            "WIZARD_SANDBOX_FILE": str(sandbox_file),
            "WIZARD_VAR_DIR": str(state_dir / "var"),
            "DATABASE_URL": database_url or f"sqlite:///{state_dir / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "wizard.settings",
        }
    )
    os.environ.pop("REDIS_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from provisioning.connections.sandbox_registration import register_sandbox_connections

    register_sandbox_connections(sandbox_file=sandbox_file)
    return ("postgresql" if database_url else "sqlite") + (" + redis" if redis_url else "")


def _wizard(state_dir: Path, alias: str) -> None:
    from django.core.management import call_command

    from provisioning.models import RunStatus, SetupRun

    plan = state_dir / f"{alias}.toml"
    plan.write_text(
        EXAMPLE_PLAN.read_text().replace('alias = "entra-sandbox"', f'alias = "{alias}"')
    )
    call_command("setup_sso", str(plan), stdout=io.StringIO())
    assert SetupRun.objects.get(instance_alias=alias).status == RunStatus.SUCCEEDED


def _aws(endpoints: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
    )


def _graph(endpoints: dict[str, str]) -> GraphServiceClient:
    credential = ClientSecretCredential(
        endpoints["entra_tenant_id"],
        endpoints["entra_client_id"],
        endpoints["entra_client_secret"],
        authority=endpoints["entra_authority"],
        disable_instance_discovery=True,
        connection_verify=endpoints["ca_bundle"],
    )
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=endpoints["ca_bundle"]))
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = endpoints["graph_base_url"]
    return GraphServiceClient(request_adapter=adapter)


def _bare(endpoints: dict[str, str], name: str, *, careful: bool = False) -> None:
    asyncio.run(_bare_script(endpoints, name, _Careful(careful)))


class _Careful:
    """The reads that make the bare script one a careful admin would keep and run again: look
    before each create (the instance, app, provider, policy, role, claims policy, assignments and
    users may exist from a run that stopped half way), and read each resource back after setting
    it up. Off for the target's bare side; each read is the one the wizard's steps make for the
    same purpose, so `careful_ratio` shows the wizard's overhead beyond the calls themselves."""

    def __init__(self, on: bool) -> None:
        self.on = on

    async def read(self, *calls: Callable[[], Any]) -> None:
        for call in calls if self.on else ():
            result = call()
            if asyncio.iscoroutine(result):
                await result


async def _bare_script(endpoints: dict[str, str], name: str, careful: _Careful) -> None:
    region = endpoints["aws_region"]
    connect, iam = _aws(endpoints, "connect"), _aws(endpoints, "iam")
    await careful.read(lambda: _aws(endpoints, "sts").get_caller_identity(), connect.list_instances)
    instance = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=name,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    instance_id = instance["Id"]
    while connect.describe_instance(InstanceId=instance_id)["Instance"]["InstanceStatus"] != (
        "ACTIVE"
    ):
        await asyncio.sleep(0.1)
    client = _graph(endpoints)
    await careful.read(
        lambda: connect.describe_instance(InstanceId=instance_id),
        lambda: client.applications.get(
            request_configuration=RequestConfiguration(
                query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
                    filter=f"identifierUris/any(uri:uri eq '{SIGNIN}#{name}')"
                )
            )
        ),
    )
    created = await client.application_templates.by_application_template_id(
        TEMPLATE_ID
    ).instantiate.post(InstantiatePostRequestBody(display_name=f"Amazon Connect {name}"))
    app, sp_id = created.application, str(created.service_principal.id)
    sp = client.service_principals.by_service_principal_id(sp_id)
    # SAML mode before the identifier: the identifier URI policy exempts only SAML apps.
    await sp.patch(ServicePrincipal(preferred_single_sign_on_mode="saml"))
    await client.applications.by_application_id(app.id).patch(
        Application(
            identifier_uris=[f"{SIGNIN}#{name}"], web=WebApplication(redirect_uris=[SIGNIN])
        )
    )
    certificate = await sp.add_token_signing_certificate.post(
        AddTokenSigningCertificatePostRequestBody(
            display_name="CN=Amazon Connect SSO",
            end_date_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365),
        )
    )
    await sp.patch(ServicePrincipal(preferred_token_signing_key_thumbprint=certificate.thumbprint))
    await careful.read(sp.get, client.applications.by_application_id(app.id).get)
    tls = ssl.create_default_context(cafile=endpoints["ca_bundle"])
    # Entra serves the metadata with a UTF-8 byte-order mark, which IAM refuses (azure-docs
    # issue 65434): any script has to strip it.
    metadata = httpx.get(
        f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}/federationmetadata/"
        f"2007-06/federationmetadata.xml?appid={app.app_id}",
        verify=tls,
    ).content.decode("utf-8-sig")
    await careful.read(iam.list_saml_providers)
    provider = iam.create_saml_provider(Name=name, SAMLMetadataDocument=metadata)
    provider_arn = provider["SAMLProviderArn"]
    await careful.read(lambda: iam.get_saml_provider(SAMLProviderArn=provider_arn))
    account = provider_arn.split(":")[4]
    await careful.read(
        lambda: _missing(iam.get_policy, PolicyArn=f"arn:aws:iam::{account}:policy/{name}")
    )
    policy = iam.create_policy(
        PolicyName=name,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "connect:GetFederationToken",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"connect:InstanceId": instance_id}},
                    }
                ],
            }
        ),
    )
    await careful.read(
        lambda: iam.get_policy_version(
            PolicyArn=policy["Policy"]["Arn"], VersionId=policy["Policy"]["DefaultVersionId"]
        ),
        lambda: _missing(iam.get_role, RoleName=name),
    )
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": provider_arn},
                        "Action": "sts:AssumeRoleWithSAML",
                        "Condition": {"StringEquals": {"SAML:aud": SIGNIN}},
                    }
                ],
            }
        ),
    )
    iam.attach_role_policy(RoleName=name, PolicyArn=policy["Policy"]["Arn"])
    await careful.read(
        lambda: iam.get_role(RoleName=name),
        lambda: iam.list_attached_role_policies(RoleName=name),
        sp.claims_mapping_policies.get,
    )
    role_value = f"{role['Role']['Arn']},{provider_arn}"
    role_id = uuid.uuid4()
    current = await client.applications.by_application_id(app.id).get()
    # App roles go on the application; the service principal mirrors them a little later.
    await client.applications.by_application_id(app.id).patch(
        Application(
            app_roles=[
                *current.app_roles,
                AppRole(
                    id=role_id,
                    allowed_member_types=["User"],
                    description="Amazon Connect",
                    display_name="Amazon Connect bench",
                    is_enabled=True,
                    value=role_value,
                ),
            ]
        )
    )
    await sp.patch(
        ServicePrincipal(
            saml_single_sign_on_settings=SamlSingleSignOnSettings(
                relay_state=f"https://{region}.console.aws.amazon.com/connect/federate/"
                f"{instance_id}?destination=%2Fccp-v2"
            ),
        )
    )
    while not any(r.id == role_id for r in (await sp.get()).app_roles or []):
        await asyncio.sleep(0.1)
    from provisioning.steps.entra_claims import policy_definition

    claims = await client.policies.claims_mapping_policies.post(
        ClaimsMappingPolicy(
            display_name="bench", definition=[policy_definition("userprincipalname", 3600)]
        )
    )
    await sp.claims_mapping_policies.ref.post(
        ReferenceCreate(
            odata_id=f"https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/{claims.id}"
        )
    )
    await careful.read(
        client.applications.by_application_id(app.id).get, sp.get, sp.claims_mapping_policies.get
    )
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{GROUP}'"
    )
    groups = await client.groups.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    group = groups.value[0]
    members = await client.groups.by_group_id(group.id).members.graph_user.get()
    await careful.read(sp.app_role_assigned_to.get)
    await sp.app_role_assigned_to.post(
        AppRoleAssignment(
            principal_id=uuid.UUID(group.id), resource_id=uuid.UUID(sp_id), app_role_id=role_id
        )
    )
    await careful.read(
        sp.app_role_assigned_to.get,
        lambda: connect.search_users(InstanceId=instance_id),
    )
    profiles = connect.list_security_profiles(InstanceId=instance_id)["SecurityProfileSummaryList"]
    admin = next(p["Id"] for p in profiles if p["Name"] == "Admin")
    routing = connect.list_routing_profiles(InstanceId=instance_id)["RoutingProfileSummaryList"]
    basic = next(p["Id"] for p in routing if p["Name"] == "Basic Routing Profile")
    for user in members.value:
        connect.create_user(
            InstanceId=instance_id,
            Username=user.user_principal_name,
            IdentityInfo={"FirstName": user.given_name, "LastName": user.surname},
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[admin],
            RoutingProfileId=basic,
        )
    await careful.read(lambda: connect.list_users(InstanceId=instance_id))
    accept = {"Accept": "application/json"}
    first = sorted(user.user_principal_name for user in members.value)[0]
    saml = httpx.get(
        f"{endpoints['entra_authority']}/sandbox/sso/{app.app_id}",
        params={"user": first},
        headers=accept,
        verify=tls,
    ).json()
    verdict = httpx.post(
        saml["action"],
        data={"SAMLResponse": saml["SAMLResponse"], "RelayState": saml["RelayState"]},
        headers=accept,
        verify=tls,
    ).json()
    assert verdict["ok"], verdict


def _missing(call: Callable[..., Any], **params: Any) -> None:
    """A look before a create: the resource is expected not to exist yet."""
    try:
        call(**params)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise


if __name__ == "__main__":
    print(json.dumps({"entra_flow_overhead": run()}))
