"""Builds an audited Microsoft Graph client for an Entra ID connection, runs its calls from sync
code, and turns Graph and sign-in errors into the project's errors.

Auth methods (Connection.config["method"]): "client_secret" (config "tenant_id", "client_id";
secret "client_secret") and "certificate" (same config; secret "certificate": a PEM with the
private key and the certificate, optional secret "certificate_password"). In sandbox mode a
sandbox connection signs in at the sandbox's authority and calls its Graph, trusting the
sandbox CA; nowhere else is that CA trusted.

Threads and loops: the SDK is async and Celery workers are sync. A worker process runs one
event loop for its whole life, in a thread of its own ("graph-loop", made again after a fork);
run_graph() hands a call to that loop and, while it runs, the calling thread serves the
call's sync work (asgiref's CurrentThreadExecutor, as async_to_sync does): the audit rows and
the (sync) azure-identity token requests run there, on the caller's database connection. As
the loop outlives every call, its HTTP connections are pooled: one httpx transport per trust
(CA bundle) in the process keeps Graph's TLS connection open from call to call and step to
step, where a loop per call (async_to_sync's) had to open and close a connection per request.

Auditing is per Graph request: one "started" row before it is sent and one "finished" row after
its response (or failure). Token requests to the sign-in endpoint are audited per HTTP attempt
(service "login"), under the run and step whose call needed the token.

Sign-in: a worker process keeps one azure-identity credential per connection (replaced when the
connection's config, secret or sandbox changes), so the token it caches serves every step of
every run until it nears expiry (azure-identity refreshes it then, MSAL's token cache), and the
authority's OpenID configuration is read once: one sign-in per hour, not one per step. The
Graph client (its audit middleware is bound to a step) is still built per step. A connection
test and the tenant preflight sign in afresh (fresh_sign_in), so a permission the admin has just
granted shows in the token's roles at once; the fresh credential then serves the later steps.

Throttling: Graph's 429 and 503 carry Retry-After in seconds (Microsoft Graph throttling guidance,
learn.microsoft.com/graph/throttling: wait that long, then retry). The wizard's engine does the
waiting: a throttled call raises RetryableError whose retry_after_s is the header's value, and
the runner re-enqueues the step after it (as it does with Okta's X-Rate-Limit-Reset). kiota's own
RetryHandler (kiota_http.middleware.retry_handler) would otherwise retry first: up to 3 times, for
every method including POST, sleeping in the worker for as long as Retry-After says (below 180 s,
uncapped otherwise) or a backoff of up to 120 s, and all its attempts inside one audit row, since
it sits below the audit middleware. So it is switched off (RetryHandlerOption max_retries=0) and
only one layer retries: one request, one audit row, one retry decision, taken by the engine.

Replication: an object Graph has just created can answer 404 Request_ResourceNotFound for a while,
to writes as well as reads, and so can a write that references it (Terraform's azuread provider
retries these 404s after creating: hashicorp/terraform-provider-azuread PR 656, issue 1811). A
write (POST, PATCH, PUT) whose 404 names an object this run's own Graph POST answered with less
than WIZARD_GRAPH_REPLICATION_WINDOW_S ago raises WaitForCloud, and the engine re-enqueues the
step; after the window the same 404 is a PermanentError that says so. "This run created it" is
read from the run's audit rows, so it holds across workers and re-enqueues.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import hashlib
import json
import os
import re
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import certifi
import httpx
from asgiref.current_thread_executor import CurrentThreadExecutor
from asgiref.sync import sync_to_async
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import CertificateCredential, ClientSecretCredential
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware.middleware import BaseMiddleware
from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
from msgraph import GraphServiceClient
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph_core import GraphClientFactory

from provisioning.audit import AuditScope, finish_call, start_call
from provisioning.call_summaries import identifiers, json_safe, parse_json_body
from provisioning.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    NotFound,
    PermanentError,
    ProvisioningError,
    RetryableError,
    Throttled,
    Unauthenticated,
    Unavailable,
    WaitForCloud,
)
from provisioning.http_errors import error_class, http_error, retry_after_s
from provisioning.messages import Message
from provisioning.models import AuditEvent, AuditKind, AuditOutcome, Cloud, Connection
from provisioning.redaction import register_secret_values
from provisioning.sandbox_endpoints import sandbox_endpoints

T = TypeVar("T")

AUTH_METHODS = ("client_secret", "certificate")
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# What the wizard's app registration needs (application permissions, with admin consent), from
# the Graph permissions reference for the calls the Entra steps make.
REQUIRED_GRAPH_PERMISSIONS = (
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "Policy.ReadWrite.ApplicationConfiguration",
    "Policy.Read.All",
    "User.Read.All",
    "Group.Read.All",
)
# kiota's defaults (KiotaClientFactory.get_default_client): 30 s to connect, 100 s per request.
GRAPH_TIMEOUT = httpx.Timeout(100.0, connect=30.0)
# Longest operation name the audit log stores (AuditEvent.operation max_length).
MAX_OPERATION_CHARS = 128
# Graph's 404 for an object it can't find names it: "Resource '<id>' does not exist or one of its
# queried reference-property objects are not present." (Request_ResourceNotFound, as quoted in
# hashicorp/terraform-provider-azuread issues 1802 and 1811).
NOT_FOUND_OBJECT = re.compile(r"Resource '([^']+)' does not exist")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT"})


def graph_client(
    connection: Connection, *, audit: AuditScope, fresh_sign_in: bool = False
) -> GraphServiceClient:
    """A GraphServiceClient whose every request (and token request) is written to the audit log.
    Run its calls with run_graph(). It signs in with this process's credential of the connection
    (a token still valid is reused), or with a new one when `fresh_sign_in`."""
    if connection.cloud != Cloud.ENTRA:
        raise PermanentError(
            Message(
                gettext_noop("“%(connection)s” is not an Entra ID connection."),
                {"connection": connection.name},
            ),
            code="wrong_connection_cloud",
        )
    sandbox = sandbox_endpoints(connection)
    ca_bundle = sandbox["ca_bundle"] if sandbox else certifi.where()
    base_url = sandbox["graph_base_url"] if sandbox else GRAPH_BASE_URL
    credential = _shared_credential(
        connection, sandbox=sandbox, ca_bundle=ca_bundle, fresh=fresh_sign_in
    )
    auth = AzureIdentityAuthenticationProvider(
        _TokenFromCallerThread(credential, audit),
        scopes=[GRAPH_SCOPE],
        # The token goes only to the Graph host, never to a host named in a nextLink or redirect.
        allowed_hosts=[urlsplit(base_url).hostname or ""],
    )
    http = httpx.AsyncClient(
        transport=_shared_transport(ca_bundle), timeout=GRAPH_TIMEOUT, follow_redirects=False
    )
    middleware = [
        _NewObjectReplication(audit),
        _GraphCallAudit(audit, base_url),
        *KiotaClientFactory.get_default_middleware(_MIDDLEWARE_OPTIONS),
    ]
    http = GraphClientFactory.create_with_custom_middleware(middleware, client=http)
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


def run_graph(call: Awaitable[T]) -> T:
    """Run one Graph SDK call (a coroutine such as `client.organization.get()`) from sync code and
    return its result; Graph, sign-in and network errors come out as the project's errors. The
    call runs on the process's Graph loop while this thread serves its sync work (audit rows,
    token requests), so both happen on this thread's database connection."""
    caller = CurrentThreadExecutor(None)

    async def wait() -> T:
        _caller.set(caller)
        return await call

    future = asyncio.run_coroutine_threadsafe(wait(), _graph_loop())
    caller.run_until_future(future)
    try:
        return future.result()
    except (APIError, AzureError, httpx.HTTPError, ssl.SSLError) as exc:
        raise map_graph_error(exc) from exc


def run_graph_together(*calls: Awaitable[Any]) -> list[Any]:
    """Run Graph reads that don't depend on each other at the same time, as run_graph() runs one:
    their results in the order given. With Graph a network away each request is a round trip, and
    a step's reads (the application, its service principal, the policies linked to it) need not
    wait for each other. Every call is let finish, so none is left writing audit rows after this
    returns; then the first failure, in the order given, is raised as run_graph() raises it."""

    async def together() -> list[Any]:
        return list(await asyncio.gather(*calls, return_exceptions=True))

    results = run_graph(together())
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is None:
        return results
    if isinstance(failed, (APIError, AzureError, httpx.HTTPError, ssl.SSLError)):
        raise map_graph_error(failed) from failed
    raise failed


# The thread that called run_graph(), as an executor: the sync work of its call runs there.
_caller: contextvars.ContextVar[CurrentThreadExecutor | None] = contextvars.ContextVar(
    "graph_caller", default=None
)


async def _in_caller(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run sync `function` in the thread that called run_graph() (database work stays on its
    connection); outside run_graph(), in asgiref's thread for sync code."""
    caller = _caller.get()
    if caller is None:
        return await sync_to_async(function)(*args, **kwargs)
    return await asyncio.wrap_future(caller.submit(function, *args, **kwargs))


class _GraphLoop:
    """This process's event loop for Graph calls, running in a daemon thread of its own, and the
    pooled HTTP transports of the calls it runs (they belong to this loop and live as long)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.transports: dict[str, httpx.AsyncHTTPTransport] = {}
        threading.Thread(target=self.loop.run_forever, name="graph-loop", daemon=True).start()


_loop: _GraphLoop | None = None
_loop_lock = threading.Lock()


def _graph_loop() -> asyncio.AbstractEventLoop:
    """The process's Graph loop, started on first use and again in a forked child (a fork keeps
    no thread but the forking one, so the parent's loop does not run there)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.pid != os.getpid():
            _loop = _GraphLoop()
        return _loop.loop


def _shared_transport(ca_bundle: str) -> httpx.AsyncBaseTransport:
    """The Graph loop's pooled transport that trusts `ca_bundle` (the sandbox CA or certifi's
    public roots, never both), made on first use: its connections stay open between calls."""
    _graph_loop()
    assert _loop is not None
    with _loop_lock:
        transport = _loop.transports.get(ca_bundle)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(
                verify=ssl.create_default_context(cafile=ca_bundle)
            )
            _loop.transports[ca_bundle] = transport
    return _KeptOpen(transport)


class _KeptOpen(httpx.AsyncBaseTransport):
    """A shared transport as one Graph client's: closing the client leaves the pool open."""

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """The pool is the process's; it stays open for the next client."""


def token_permissions(client: GraphServiceClient) -> list[str]:
    """The application permissions granted to the wizard's app: the `roles` claim of the access
    token the client signs in with (requested and read here, not verified: it is our own token,
    and Graph verifies it on every call)."""
    adapter = client.request_adapter
    # kiota keeps the provider private; the token's roles claim is only reachable through it.
    provider = adapter._authentication_provider.access_token_provider  # type: ignore[attr-defined]
    token = run_graph(provider.get_authorization_token(adapter.base_url + "/organization"))
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise PermanentError(
            Message(gettext_noop("Entra ID gave the wizard a token it can't read.")),
            code="entra_token_unreadable",
        ) from exc
    roles = claims.get("roles") or []
    return sorted(str(role) for role in roles) if isinstance(roles, list) else []


_MIDDLEWARE_OPTIONS: dict[str, Any] = {
    RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False),
    # msgraph's own option: /me is written /users/me-token-to-replace by the generated builders.
    UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
        enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
    ),
}


def _shared_credential(
    connection: Connection, *, sandbox: dict[str, Any] | None, ca_bundle: str, fresh: bool
) -> TokenCredential:
    """This process's credential of `connection`: made again when its config, stored secret or
    sandbox changed since, or when `fresh`."""
    fingerprint = hashlib.sha256(
        json.dumps(
            [connection.config, connection.secret_ciphertext, sandbox, ca_bundle],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    with _credentials_lock:
        kept = _credentials.get(connection.pk)
        if kept is not None and kept[0] == fingerprint and not fresh:
            # Its secrets are masked in this process already: _credential registered them.
            return kept[1]
        credential = _credential(connection, sandbox=sandbox, ca_bundle=ca_bundle)
        if connection.pk is not None:
            _credentials[connection.pk] = (fingerprint, credential)
        return credential


# Connection id -> (fingerprint of what the credential was made from, the credential).
_credentials: dict[int, tuple[str, TokenCredential]] = {}
_credentials_lock = threading.Lock()
# Per credential: the access token it last gave per (scopes, tenant, CAE), reused until
# TOKEN_REFRESH_S before it expires, the point where azure-identity asks for a new one itself
# (azure.identity._constants.DEFAULT_REFRESH_OFFSET, 300 s).
_tokens: weakref.WeakKeyDictionary[TokenCredential, dict[Any, AccessToken]] = (
    weakref.WeakKeyDictionary()
)
TOKEN_REFRESH_S = 300


def _fresh_enough(token: AccessToken) -> bool:
    return token.expires_on - TOKEN_REFRESH_S > time.time()


# The audit scope of the Graph call that is asking the shared credential for a token, per thread:
# the credential's transport writes the token request's rows under it.
_signing_in = threading.local()


def _credential(
    connection: Connection, *, sandbox: dict[str, Any] | None, ca_bundle: str
) -> TokenCredential:
    config = connection.config
    method = config.get("method", "")
    secrets = connection.secrets
    register_secret_values(secrets.values())
    tenant_id = config.get("tenant_id", "").strip()
    client_id = config.get("client_id", "").strip()
    if not tenant_id or not client_id:
        raise PermanentError(
            Message(
                gettext_noop("The connection lacks the tenant ID or the application (client) ID.")
            ),
            code="entra_missing_ids",
            hint=Message(
                gettext_noop(
                    "Edit the connection: both are on the app registration's Overview page."
                )
            ),
        )
    options: dict[str, Any] = {"transport": _AuditedTokenTransport(connection_verify=ca_bundle)}
    if sandbox is not None:
        options["authority"] = sandbox["entra_authority"]
        options["disable_instance_discovery"] = True
    if method == "client_secret":
        secret = secrets.get("client_secret", "")
        if not secret:
            raise PermanentError(
                Message(gettext_noop("The connection has no client secret.")),
                code="entra_missing_secret",
                hint=Message(
                    gettext_noop("Edit the connection and enter the client secret's Value.")
                ),
            )
        return ClientSecretCredential(tenant_id, client_id, secret, **options)
    if method == "certificate":
        pem = secrets.get("certificate", "")
        password = secrets.get("certificate_password") or None
        try:
            return CertificateCredential(
                tenant_id,
                client_id,
                certificate_data=pem.encode(),
                password=password.encode() if password else None,
                **options,
            )
        except (ValueError, TypeError) as exc:
            raise PermanentError(
                Message(gettext_noop("The connection's certificate can't be read.")),
                code="entra_bad_certificate",
                hint=Message(
                    gettext_noop(
                        "Paste a PEM with both the private key and the certificate (and the "
                        "password if the key is encrypted)."
                    )
                ),
            ) from exc
    raise PermanentError(
        Message(gettext_noop("Unknown Entra ID sign-in method “%(method)s”."), {"method": method}),
        code="entra_unknown_method",
        hint=Message(
            gettext_noop("Edit the connection and choose: %(methods)s."),
            {"methods": ", ".join(AUTH_METHODS)},
        ),
    )


class _TokenFromCallerThread(AsyncTokenCredential):
    """Lets kiota await a sync azure-identity credential: get_token runs in the thread that called
    run_graph(), where the token request's audit rows can be written, under `scope`."""

    def __init__(self, credential: TokenCredential, scope: AuditScope) -> None:
        self._credential = credential
        self._scope = scope

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = (scopes, tenant_id, enable_cae)
        kept = _tokens.get(self._credential, {}).get(key)
        if kept is not None and not claims and not kwargs and _fresh_enough(kept):
            # What the credential would answer from its own cache, without the hop to the
            # caller's thread that asking it costs.
            return kept

        def get_token() -> AccessToken:
            _signing_in.scope = self._scope
            try:
                return self._credential.get_token(
                    *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
                )
            finally:
                _signing_in.scope = None

        token = await _in_caller(get_token)
        if not claims and not kwargs:
            with _credentials_lock:
                _tokens.setdefault(self._credential, {})[key] = token
        return token

    async def close(self) -> None:
        """The sync credential holds no loop-bound resources; nothing to close here."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()


class _AuditedTokenTransport(RequestsTransport):
    """azure-core transport of the sign-in requests (discovery and token), each one audited under
    the scope of the Graph call that asked for the token."""

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        path = urlsplit(request.url).path
        scope = getattr(_signing_in, "scope", None)
        if scope is None:
            raise RuntimeError("A sign-in request went out without a Graph call asking for it.")
        record = start_call(
            scope,
            cloud=Cloud.ENTRA.value,
            service="login",
            operation=f"{request.method} {path}"[:MAX_OPERATION_CHARS],
            request={"method": request.method, "path": path},
        )
        try:
            response = super().send(request, **kwargs)
        except Exception as exc:
            finish_call(
                record,
                outcome="error",
                response={"error": type(exc).__name__},
                error_code=type(exc).__name__,
            )
            raise
        status = response.status_code
        body = parse_json_body(response.body()) if status >= 400 else None
        finish_call(
            record,
            outcome="error" if status >= 400 else "ok",
            response={
                "http_status": status,
                "request_id": response.headers.get("x-ms-request-id", ""),
            },
            error_code=str(body.get("error", "")) if isinstance(body, dict) else "",
        )
        return response


class _GraphCallAudit(BaseMiddleware):
    """The kiota middleware inside _NewObjectReplication: a started row before each Graph
    request, a finished row after its response or failure."""

    def __init__(self, scope: AuditScope, base_url: str) -> None:
        super().__init__()
        self.scope = scope
        self.base_path = urlsplit(base_url).path.rstrip("/")

    async def send(
        self, request: httpx.Request, transport: httpx.AsyncBaseTransport
    ) -> httpx.Response:
        path = request.url.path
        if path.startswith(self.base_path):
            path = path[len(self.base_path) :] or "/"
        summary: dict[str, Any] = {"method": request.method, "path": path}
        query = dict(parse_qsl(request.url.query.decode()))
        if query:
            summary["query"] = json_safe(query)
        body = parse_json_body(request.content)
        if body is not None:
            summary["body"] = json_safe(body)
        record = await _in_caller(
            start_call,
            self.scope,
            cloud=Cloud.ENTRA.value,
            service="graph",
            operation=f"{request.method} {path}"[:MAX_OPERATION_CHARS],
            request=summary,
        )
        try:
            response = await super().send(request, transport)
        except Exception as exc:
            await _in_caller(
                finish_call,
                record,
                outcome="error",
                response={"error": type(exc).__name__},
                error_code=type(exc).__name__,
            )
            raise
        payload = parse_json_body(await response.aread())
        result: dict[str, Any] = {
            "http_status": response.status_code,
            "request_id": response.headers.get("request-id", ""),
        }
        error_code = ""
        if response.status_code >= 400:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            error_code = str(error.get("code", "")) if isinstance(error, dict) else ""
            if "retry-after" in response.headers:
                result["retry_after"] = response.headers["retry-after"]
        else:
            result.update(identifiers(payload))
        await _in_caller(
            finish_call,
            record,
            outcome="error" if response.status_code >= 400 else "ok",
            response=result,
            error_code=error_code,
        )
        return response


def _succeeded_calls(scope: AuditScope) -> Any:
    """This run's Graph calls that answered successfully (their "finished" audit rows)."""
    return AuditEvent.objects.filter(
        run_id=scope.run_id,
        cloud=Cloud.ENTRA.value,
        service="graph",
        kind=AuditKind.CALL_FINISHED,
        outcome=AuditOutcome.OK,
    )


def created_by_run_at(scope: AuditScope, object_id: str) -> dt.datetime | None:
    """When one of this run's Graph POSTs answered with `object_id` as the id of what it made (the
    audit rows keep the ids of every answer), or None when the run did not create it."""
    if scope.run_id is None or not object_id:
        return None
    wanted = object_id.casefold()
    answers = (
        _succeeded_calls(scope).filter(operation__startswith="POST ").values_list("at", "response")
    )
    for at, response in answers:
        # The object ids of the answer ("id", or "application.id" in instantiate's), not the ids
        # it merely mentions (an assignment's principalId is a user the run did not create).
        created = [
            value
            for key, value in (response.items() if isinstance(response, dict) else ())
            if key == "id" or key.endswith(".id")
        ]
        if any(isinstance(value, str) and value.casefold() == wanted for value in created):
            return at
    return None


def ids_made_by_run(scope: AuditScope, collection: str) -> list[str]:
    """The ids of what this run's successful POSTs to `collection` (e.g.
    "/policies/claimsMappingPolicies") made and its DELETEs did not remove, oldest first: what the
    run made, even if it crashed before recording it."""
    if scope.run_id is None:
        return []
    calls = _succeeded_calls(scope).order_by("at", "pk")
    made = [
        str(response["id"])
        for response in calls.filter(operation=f"POST {collection}").values_list(
            "response", flat=True
        )
        if isinstance(response, dict) and isinstance(response.get("id"), str)
    ]
    deleted = {
        operation.rpartition("/")[2].casefold()
        for operation in calls.filter(operation__startswith=f"DELETE {collection}/").values_list(
            "operation", flat=True
        )
    }
    return [made_id for made_id in made if made_id.casefold() not in deleted]


def posts_went_out(scope: AuditScope, collection: str) -> bool:
    """Whether an attempt of this run sent a POST to `collection`, answered or not: its
    "call_started" row is committed before the call leaves (audit.start_call), so without one no
    attempt of this run can have made anything there."""
    if scope.run_id is None:
        return False
    return AuditEvent.objects.filter(
        run_id=scope.run_id,
        cloud=Cloud.ENTRA.value,
        service="graph",
        kind=AuditKind.CALL_STARTED,
        operation=f"POST {collection}",
    ).exists()


@dataclass(frozen=True)
class InstantiateCalls:
    """This run's calls instantiating an app from a template, as its audit rows keep them."""

    # The ids of the applications the answered ones made (the rows keep the answer's
    # application.id), oldest first: the apps it made, even if it crashed before recording one.
    application_ids: list[str]
    # Whether one went out at all: its "call_started" row is committed before the call leaves
    # (audit.start_call), so without one no attempt of this run can have made an app.
    any_went_out: bool


def instantiate_calls(scope: AuditScope) -> InstantiateCalls:
    """This run's instantiate calls (one read of the audit log)."""
    if scope.run_id is None:
        return InstantiateCalls([], any_went_out=False)
    rows = (
        AuditEvent.objects.filter(
            run_id=scope.run_id,
            cloud=Cloud.ENTRA.value,
            service="graph",
            kind__in=[AuditKind.CALL_STARTED, AuditKind.CALL_FINISHED],
            operation__startswith="POST /applicationTemplates/",
            operation__endswith="/instantiate",
        )
        .order_by("at", "pk")
        .values_list("kind", "outcome", "response")
    )
    application_ids: list[str] = []
    any_went_out = False
    for kind, outcome, response in rows:
        any_went_out = True
        if (
            kind == AuditKind.CALL_FINISHED
            and outcome == AuditOutcome.OK
            and isinstance(response, dict)
            and isinstance(response.get("application.id"), str)
        ):
            application_ids.append(str(response["application.id"]))
    return InstantiateCalls(application_ids, any_went_out=any_went_out)


def is_replicating(scope: AuditScope, object_id: str) -> bool:
    """Whether this run created `object_id` less than WIZARD_GRAPH_REPLICATION_WINDOW_S ago and
    has not deleted it since, so a 404 on it means "not replicated yet" rather than "gone"."""
    created = created_by_run_at(scope, object_id)
    return (
        created is not None
        and _age_s(created) < settings.WIZARD_GRAPH_REPLICATION_WINDOW_S
        and not _deleted_by_run(scope, object_id)
    )


def _deleted_by_run(scope: AuditScope, object_id: str) -> bool:
    return (
        _succeeded_calls(scope)
        .filter(operation__startswith="DELETE ", operation__iendswith=f"/{object_id}")
        .exists()
    )


def _age_s(moment: dt.datetime) -> float:
    return (timezone.now() - moment).total_seconds()


def _wait_for_replication(scope: AuditScope, body: bytes) -> None:
    """Raise WaitForCloud when a write's 404 names an object this run created within the
    replication window, PermanentError when the window has passed; else return."""
    payload = parse_json_body(body)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or error.get("code") != "Request_ResourceNotFound":
        return
    for object_id in NOT_FOUND_OBJECT.findall(str(error.get("message") or "")):
        created = created_by_run_at(scope, object_id)
        if created is None:
            continue
        age = _age_s(created)
        window = settings.WIZARD_GRAPH_REPLICATION_WINDOW_S
        if age < window:
            raise WaitForCloud(
                Message(
                    gettext_noop(
                        "Waiting for Entra ID to replicate %(object)s, created %(age)d s ago."
                    ),
                    {"object": object_id, "age": age},
                )
            )
        raise PermanentError(
            Message(
                gettext_noop(
                    "Microsoft Graph still can't find %(object)s, which this run created "
                    "%(minutes)d minutes ago."
                ),
                {"object": object_id, "minutes": age // 60},
            ),
            code="graph_not_replicated",
            hint=Message(
                gettext_noop(
                    "Entra ID did not make it visible within %(window)d minutes. Check it in the "
                    "Entra admin center, then retry the step: the wizard finds what it created."
                ),
                {"window": window // 60},
            ),
        )


class _NewObjectReplication(BaseMiddleware):
    """The outermost kiota middleware: turns a write's 404 on an object this run has just created
    into a wait (see the module docstring). The 404 itself is audited like any answer."""

    def __init__(self, scope: AuditScope) -> None:
        super().__init__()
        self.scope = scope

    async def send(
        self, request: httpx.Request, transport: httpx.AsyncBaseTransport
    ) -> httpx.Response:
        response = await super().send(request, transport)
        if response.status_code == 404 and request.method in WRITE_METHODS:
            await _in_caller(_wait_for_replication, self.scope, await response.aread())
        return response


# AADSTS codes of the sign-in errors an admin can fix, and the field to fix (Microsoft Entra
# authentication and authorization error codes reference).
SIGN_IN_ERRORS = {
    "AADSTS7000215": (
        gettext_noop("The client secret is wrong."),
        gettext_noop("Edit the connection and paste the secret's Value (not its Secret ID)."),
    ),
    "AADSTS7000222": (
        gettext_noop("The client secret has expired."),
        gettext_noop(
            "Create a new client secret on the app registration and paste its Value "
            "into the connection."
        ),
    ),
    "AADSTS700016": (
        gettext_noop("No application with this client ID exists in the tenant."),
        gettext_noop("Edit the connection: check the Application (client) ID and the tenant ID."),
    ),
    "AADSTS90002": (
        gettext_noop("The tenant was not found."),
        gettext_noop("Edit the connection: check the Directory (tenant) ID."),
    ),
    "AADSTS900023": (
        gettext_noop("The tenant ID is not valid."),
        gettext_noop("Edit the connection: the Directory (tenant) ID is a GUID or a domain."),
    ),
    "AADSTS700027": (
        gettext_noop("The certificate was not accepted."),
        gettext_noop(
            "Upload the certificate's public part to the app registration, or paste the "
            "matching private key and certificate into the connection."
        ),
    ),
    "AADSTS53003": (
        gettext_noop("A Conditional Access policy blocked the wizard's sign-in."),
        gettext_noop("Exclude the wizard's app (workload identity) from that policy."),
    ),
}


def map_graph_error(exc: BaseException) -> ProvisioningError:
    """The project's error for a Graph (ODataError/APIError), sign-in or network exception."""
    if isinstance(exc, ProvisioningError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and _unreachable(exc):
        # azure-identity wraps every failure of a token request in ClientAuthenticationError,
        # a refused connection or a timeout too ("Authentication failed: <cause>"): a network
        # fault is not a wrong credential.
        return RetryableError(
            Message(gettext_noop("Entra ID's sign-in endpoint could not be reached.")),
            code="entra_unreachable",
            hint=Message(
                gettext_noop(
                    "The wizard retries. If it keeps failing, check the worker's network access "
                    "and the connection's authority."
                )
            ),
        )
    if isinstance(exc, ClientAuthenticationError):
        text = str(exc.message or exc)
        for code, (message, hint) in SIGN_IN_ERRORS.items():
            if code in text:
                return PermanentError(
                    Message(
                        gettext_noop("Entra ID refused the wizard's sign-in: %(reason)s"),
                        {"reason": Message(message)},
                    ),
                    code=code,
                    hint=Message(hint),
                )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return _tls_untrusted()
        return PermanentError(
            Message(gettext_noop("Entra ID refused the wizard's sign-in.")),
            code="entra_sign_in_failed",
            hint=Message(
                gettext_noop(
                    "Check the tenant ID, client ID and secret or certificate of the connection."
                )
            ),
        )
    if isinstance(exc, APIError):
        return _map_api_error(exc)
    if isinstance(exc, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return _tls_untrusted()
    if isinstance(exc, httpx.HTTPError | ServiceRequestError | AzureError):
        return RetryableError(
            Message(
                gettext_noop("Microsoft Graph could not be reached (%(error)s)."),
                {"error": type(exc).__name__},
            ),
            code="graph_unreachable",
            hint=Message(
                gettext_noop(
                    "The wizard retries. If it keeps failing, check the worker's network access."
                )
            ),
        )
    return PermanentError(
        Message(
            gettext_noop("Unexpected error calling Microsoft Graph: %(error)s"),
            {"error": type(exc).__name__},
        ),
        code="graph_unexpected",
    )


def _unreachable(exc: BaseException) -> bool:
    """Whether a network fault (not an answer from Entra) lies behind the exception."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientAuthenticationError) and seen.response is not None:
            return False  # Entra answered: the answer says what is wrong
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return False  # reached, but not trusted: said as such
        if isinstance(seen, ServiceRequestError | httpx.TransportError | ConnectionError):
            return True
        inner = getattr(seen, "inner_exception", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return False


def _tls_untrusted() -> PermanentError:
    return PermanentError(
        Message(gettext_noop("The Microsoft endpoint's TLS certificate is not trusted.")),
        code="entra_tls_untrusted",
        hint=Message(gettext_noop("In live mode only publicly trusted certificates are accepted.")),
    )


# Graph's own error codes that say what kind of refusal it was, whatever the status.
_GRAPH_CODE_ERRORS: dict[str, type[ProvisioningError]] = {
    "Authorization_RequestDenied": AccessDenied,
}


def _map_api_error(exc: APIError) -> ProvisioningError:
    status = exc.response_status_code or 0
    main = getattr(exc, "error", None)
    code = str(getattr(main, "code", "") or "") or f"http_{status}"
    graph_message = str(getattr(main, "message", "") or "").strip()
    said: Message | str = (
        Message(gettext_noop(" Graph said: “%(message)s”"), {"message": graph_message})
        if graph_message
        else ""
    )
    where_from = {"status": status, "said": said}
    kind = error_class(status, code=code, by_code=_GRAPH_CODE_ERRORS)
    if kind is Throttled or status in (503, 504):
        retry_after = retry_after_s(exc.response_headers)
        if retry_after is None:
            # No header: the guidance's exponential backoff, which is the engine's own.
            hint = Message(gettext_noop("The wizard retries with a growing wait."))
        else:
            hint = Message(
                gettext_noop("Graph asked to wait %(seconds)s s; the wizard retries after that."),
                {"seconds": f"{retry_after:g}"},
            )
        return http_error(
            kind,
            Message(
                gettext_noop("Microsoft Graph is throttling or busy (HTTP %(status)s)."),
                {"status": status},
            ),
            code=code,
            hint=hint,
            retry_after_s=retry_after,
        )
    if kind is Unavailable:
        return http_error(
            kind,
            Message(
                gettext_noop("Microsoft Graph had a temporary problem (HTTP %(status)s).%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(gettext_noop("The wizard retries.")),
            retry_after_s=retry_after_s(exc.response_headers),
        )
    if kind is AccessDenied:
        return http_error(
            kind,
            Message(
                gettext_noop("The wizard's app lacks a Microsoft Graph permission.%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "In the app registration › API permissions, add these Microsoft Graph "
                    "application permissions and grant admin consent: %(permissions)s."
                ),
                {"permissions": ", ".join(REQUIRED_GRAPH_PERMISSIONS)},
            ),
        )
    if kind is Unauthenticated:
        return http_error(
            kind,
            Message(
                gettext_noop("Microsoft Graph did not accept the wizard's token.%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Check the connection's tenant ID and client ID, and that admin consent was "
                    "granted."
                )
            ),
        )
    if kind is NotFound:
        return http_error(
            kind,
            Message(gettext_noop("Microsoft Graph did not find the object.%(said)s"), where_from),
            code=code,
            hint=Message(
                gettext_noop(
                    "Check the ID or name you typed; new objects can take a few seconds to appear."
                )
            ),
        )
    if kind in (InvalidRequest, Conflict):
        return http_error(
            kind,
            Message(gettext_noop("Microsoft Graph refused a value.%(said)s"), where_from),
            code=code,
            hint=Message(gettext_noop("Change the value Graph names in its message, then retry.")),
        )
    return http_error(
        kind,
        Message(gettext_noop("Microsoft Graph call failed (HTTP %(status)s).%(said)s"), where_from),
        code=code,
    )
