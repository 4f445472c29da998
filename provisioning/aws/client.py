"""Builds audited AWS SDK clients for a connection; turns botocore errors into the project's.

Auth methods (Connection.config["method"]): "default_chain" (environment, shared files, instance
role of the worker's host), "profile" (config "profile"), "access_key" (secrets "access_key_id",
"secret_access_key"), "assume_role" (config "role_arn", optional "external_id" and
"role_session_name"; base credentials from the optional secrets "access_key_id" and
"secret_access_key", else the default chain). In sandbox mode a sandbox connection uses the
sandbox's endpoint and CA bundle from var/sandbox.json (nowhere else is that CA trusted), and its
own access key if it has one (an IAM user made in the sandbox), else the sandbox's keys.

Auditing is per API call, not per HTTP attempt: botocore's standard retry mode retries inside one
call, so each call writes one "started" row (before-call) and one "finished" row (after-call, or
after-call-error when no response came back), and the finished row counts the attempts.

Sessions: a worker process keeps one botocore Session per connection and region (made again
when the connection's config, secret or sandbox changes), so credentials are resolved once, not
per client: an assumed role's credentials are refreshed by botocore before they expire
(RefreshableCredentials, botocore/credentials.py) and never used past that. A botocore Session
is not thread-safe (boto3 docs, "Multithreading or multiprocessing with resources"; clients
are), so clients are made from it under a lock. The worker keeps one client per session and
service for every run and step (making one costs ~25 ms of CPU, and its connection pool is kept
with it): the audit scope (run, step, actor) is not bound to the client but to the AwsSdkProxy
that aws_client() hands out, which sets it for the calling thread around each call; the client's
audit handlers write under the scope of the call running in their thread. The AssumeRole calls
that refresh the shared credentials are audited under the call that needed them the same way.

Rate limiting is per HTTP attempt: for a rate-limited service (api_quotas.RATE_LIMITED_SERVICES),
every attempt, botocore's retries included, first waits for its turn in the shared bucket of its
API, account and region (provisioning/ratelimit.py), sized from the API's quota (api_quotas). A
turn further away than WIZARD_RATE_LIMIT_MAX_WAIT_S fails the call with a RetryableError.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from botocore import loaders
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
    UnknownServiceError,
    WaiterError,
)
from botocore.paginate import PageIterator, Paginator
from botocore.waiter import Waiter
from django.utils.translation import gettext_noop

from provisioning.audit import AuditScope, finish_call, start_call
from provisioning.aws.api_quotas import ApiLimits, Lookup, rate_limited
from provisioning.call_summaries import identifiers, json_safe
from provisioning.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    NotFound,
    PermanentError,
    ProvisioningError,
    QuotaExceeded,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from provisioning.http_errors import error_class, http_error, retry_after_s
from provisioning.messages import Message
from provisioning.models import Cloud, Connection
from provisioning.ratelimit import wait_for_turn
from provisioning.redaction import register_secret_values
from provisioning.sandbox_endpoints import sandbox_endpoints

AUTH_METHODS = ("default_chain", "profile", "access_key", "assume_role")
USER_AGENT_EXTRA = "connect-sso-wizard/0.1"
# Standard retry mode: 3 attempts in all, exponential backoff capped at 20 s, on throttling,
# transient and 5xx errors (AWS SDKs and Tools reference guide, "Retry behavior"). botocore's
# `max_attempts` would count retries only; `total_max_attempts` counts the first try too.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    user_agent_extra=USER_AGENT_EXTRA,
    connect_timeout=10,
    read_timeout=60,
)
# STS AssumeRole's default session length; botocore refreshes before expiry.
ASSUME_ROLE_SECONDS = 3600
DEFAULT_ROLE_SESSION_NAME = "connect-sso-wizard"

# Clients kept per worker process (least recently used dropped first): a few steps' worth.
CLIENTS_KEPT = 64
# botocore parses every service's JSON model once per loader; one loader for the process saves
# ~130 ms per client (a new session per client would otherwise re-read the models).
_LOADER = loaders.create_loader()

_PARAMS = "wizard_audit_params"
_RECORD = "wizard_audit_record"


def aws_client(
    connection: Connection, service: str, *, region: str, audit: AuditScope
) -> AwsSdkProxy:
    """A botocore client (what boto3's Session.client returns) for `service` in `region`, whose
    every call is written to the audit log and raises only the project's errors (AwsSdkProxy)."""
    if connection.cloud != Cloud.AWS:
        raise PermanentError(
            Message(
                gettext_noop("“%(connection)s” is not an AWS connection."),
                {"connection": connection.name},
            ),
            code="wrong_connection_cloud",
        )
    sandbox = sandbox_endpoints(connection)
    region = region or (sandbox or {}).get("aws_region", "")
    if not region:
        raise PermanentError(
            Message(gettext_noop("No AWS region was chosen.")),
            code="aws_no_region",
            hint=Message(gettext_noop("Choose the region of the Amazon Connect instance.")),
        )
    session = _shared_session(connection, region=region, sandbox=sandbox)
    client = _shared_client(
        connection, session, service, region=region, sandbox=sandbox, limited=rate_limited(service)
    )
    mapped = AwsSdkProxy(client, audit)
    if rate_limited(service):
        # What api_rate() reports for this proxy: a quota lookup made outside any call (a users
        # step sizing its workers) is audited under this proxy's scope.
        ApiLimits(
            connection,
            service=service,
            region=region,
            sandbox=sandbox,
            lookup=_lookup(connection, session, region=region, sandbox=sandbox, audit=audit),
        ).attach(mapped)
    return mapped


def _shared_client(
    connection: Connection,
    session: botocore.session.Session,
    service: str,
    *,
    region: str,
    sandbox: dict[str, Any] | None,
    limited: bool,
) -> BaseClient:
    """This process's client of `session` for `service` (made on first use): its calls are
    audited under the scope the AwsSdkProxy calling it sets, and when `limited`, each HTTP attempt
    waits for its turn in the API's bucket (the quota lookups that sizes are audited under the
    same call's scope)."""
    key = (session, service, limited)
    with _sessions_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    client = _audited_client(session, service, region=region, sandbox=sandbox)
    if limited:
        limits = ApiLimits(
            connection,
            service=service,
            region=region,
            sandbox=sandbox,
            lookup=_lookup(connection, session, region=region, sandbox=sandbox, audit=None),
        )
        _ApiTurns(limits).register(client)
    if connection.pk is not None:
        with _sessions_lock:
            _clients[key] = client
            while len(_clients) > CLIENTS_KEPT:
                _clients.popitem(last=False)
    return client


@contextmanager
def _sdk_errors() -> Iterator[None]:
    """Re-raise any botocore error inside the block as the project's error (map_aws_error)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise map_aws_error(exc) from exc


class AwsSdkProxy:
    """A botocore client, paginator, page iterator or waiter whose every call (and every page
    fetched while iterating) raises the project's errors instead of botocore's: the one place
    where SDK errors stop (boto3 guide, "Error handling": ClientError for the service's answers,
    BotoCoreError subclasses for the client's own, https://docs.aws.amazon.com/boto3/latest/
    guide/error-handling.html). A proxy rather than a botocore event handler because not every
    error passes an event: ParamValidationError is raised while building the request, before
    "before-call" (BaseClient._make_api_call), and a paginator's PaginationError or a waiter's
    WaiterError outside any call (botocore "Events" topic lists what each event carries,
    https://docs.aws.amazon.com/botocore/latest/topics/events.html). `exceptions` is withheld: a
    step catches the project's typed errors (NotFound, Conflict, ...), whose `code` is AWS's."""

    def __init__(self, wrapped: Any, scope: AuditScope | None = None) -> None:
        self.wrapped = wrapped
        # The audit scope of every call made through this proxy (None: the scope of the call
        # running in this thread, for a client used inside another call).
        self.scope = scope

    def __getattr__(self, name: str) -> Any:
        if name == "exceptions":
            raise AttributeError(
                "Calls through aws_client() raise provisioning.errors types; catch those "
                "(NotFound, Conflict, AccessDenied, ...) and compare .code with AWS's error code."
            )
        attribute = getattr(self.wrapped, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _sdk_errors(), _audited_as(self.scope):
                result = attribute(*args, **kwargs)
            if isinstance(result, Paginator | PageIterator | Waiter):
                return AwsSdkProxy(result, self.scope)
            if isinstance(result, Iterator):
                return _mapped_iteration(result, self.scope)
            return result

        return call

    def __iter__(self) -> Iterator[Any]:
        # A page iterator fetches each page as it is iterated: every fetch can fail.
        return _mapped_iteration(iter(self.wrapped), self.scope)


def _mapped_iteration(items: Iterator[Any], scope: AuditScope | None) -> Iterator[Any]:
    while True:
        with _sdk_errors(), _audited_as(scope):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def calling_scope() -> AuditScope | None:
    """The audit scope of the AWS call running in this thread (None outside one): a handler
    registered on a shared client's events tells one run's or step's calls from another's by it."""
    return getattr(_calling, "scope", None)


@contextmanager
def _audited_as(scope: AuditScope | None) -> Iterator[None]:
    """The calls this thread makes inside the block are audited under `scope` (None: keep the
    scope of the call already running, if any)."""
    if scope is None:
        yield
        return
    outer = getattr(_calling, "scope", None)
    _calling.scope = scope
    try:
        yield
    finally:
        _calling.scope = outer


def _new_session(**kwargs: Any) -> botocore.session.Session:
    session = botocore.session.Session(**kwargs)
    session.register_component("data_loader", _LOADER)
    return session


def _shared_session(
    connection: Connection, *, region: str, sandbox: dict[str, Any] | None
) -> botocore.session.Session:
    """This process's session of `connection` in `region`: made again when its config, stored
    secret or sandbox changed since."""
    fingerprint = hashlib.sha256(
        json.dumps(
            [connection.config, connection.secret_ciphertext, sandbox], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    with _sessions_lock:
        kept = _sessions.get((connection.pk, region))
        if kept is not None and kept[0] == fingerprint:
            # Its secrets are masked in this process already: _session_for registered them.
            return kept[1]
        session = _session_for(connection, region=region, sandbox=sandbox)
        if connection.pk is not None:
            _sessions[(connection.pk, region)] = (fingerprint, session)
        return session


# (connection id, region) -> (fingerprint of what the session was made from, the session).
_sessions: dict[tuple[int, str], tuple[str, botocore.session.Session]] = {}
# (session, service, rate limited) -> the client made for them, newest use last: every run and
# step of this process uses it (botocore clients are thread-safe; the audit scope comes from the
# calling thread), so a worker makes each client once, and keeps its connections open.
_clients: OrderedDict[tuple[botocore.session.Session, str, bool], BaseClient] = OrderedDict()
# Guards _sessions, _clients and every create_client on a kept session (re-entered: making an
# assume-role session makes its STS client).
_sessions_lock = threading.RLock()


def _forget_after_fork() -> None:
    """A forked child starts with no sessions nor clients: the parent's pooled connections (their
    sockets are shared with the parent after a fork) and a lock another thread held at the fork
    must not be used there."""
    global _sessions_lock
    _sessions.clear()
    _clients.clear()
    _sessions_lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_after_fork)
# The audit scope of the API call running in this thread (set by AwsSdkProxy): what a shared
# client's audit handlers write under, the AssumeRole call that refreshes a session's credentials
# while signing it included.
_calling = threading.local()


def _audited_client(
    session: botocore.session.Session,
    service: str,
    *,
    region: str,
    sandbox: dict[str, Any] | None,
) -> BaseClient:
    """A client of `session` whose calls are audited under the scope of the call running in the
    calling thread (AwsSdkProxy sets it)."""
    kwargs: dict[str, Any] = {"region_name": region, "config": CLIENT_CONFIG}
    if sandbox is not None:
        kwargs["endpoint_url"] = sandbox["aws_endpoint_url"]
        kwargs["verify"] = sandbox["ca_bundle"]
    with _sdk_errors(), _sessions_lock:
        client = session.create_client(service, **kwargs)
    _CallAudit().register(client)
    return client


def _lookup(
    connection: Connection,
    session: botocore.session.Session,
    *,
    region: str,
    sandbox: dict[str, Any] | None,
    audit: AuditScope | None,
) -> Lookup:
    """The quota lookups' calls: audited like the caller's, with its session (so its credentials),
    region and audit scope (None: the scope of the call running in this thread, whose turn is
    being sized), but not rate limited (api_quotas says why)."""

    def lookup(service: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        client = _shared_client(
            connection, session, service, region=region, sandbox=sandbox, limited=False
        )
        response: dict[str, Any] = getattr(AwsSdkProxy(client, audit), method)(**params)
        return response

    return lookup


def _secret(secrets: dict[str, str], name: str, label: Message) -> str:
    value = secrets.get(name, "")
    if not value:
        raise PermanentError(
            Message(gettext_noop("The connection has no %(secret)s."), {"secret": label}),
            code="aws_missing_secret",
            hint=Message(
                gettext_noop("Edit the connection and enter the %(secret)s."), {"secret": label}
            ),
        )
    return value


def _session_for(
    connection: Connection, *, region: str, sandbox: dict[str, Any] | None
) -> botocore.session.Session:
    method = connection.config.get("method", "")
    secrets = connection.secrets
    register_secret_values(secrets.values())
    if method not in AUTH_METHODS:
        raise PermanentError(
            Message(gettext_noop("Unknown AWS sign-in method “%(method)s”."), {"method": method}),
            code="aws_unknown_method",
            hint=Message(
                gettext_noop("Edit the connection and choose one of: %(methods)s."),
                {"methods": ", ".join(AUTH_METHODS)},
            ),
        )
    if sandbox is not None and not secrets.get("access_key_id"):
        # The sandbox's fixed keys for a method without keys of its own: a profile or the default
        # chain could hold real credentials, and nothing here may use those.
        base = _new_session()
        base.set_credentials(sandbox["aws_access_key_id"], sandbox["aws_secret_access_key"])
        register_secret_values([sandbox["aws_secret_access_key"]])
    elif (
        sandbox is not None
        or method == "access_key"
        or (method == "assume_role" and secrets.get("access_key_id"))
    ):
        # A sandbox connection's own keys (an IAM user made in the sandbox) sign its calls; every
        # client of a sandbox connection has the sandbox's endpoint, so they reach nothing else.
        base = _new_session()
        base.set_credentials(
            _secret(secrets, "access_key_id", Message(gettext_noop("access key ID"))),
            _secret(secrets, "secret_access_key", Message(gettext_noop("secret access key"))),
        )
    elif method == "profile":
        profile = connection.config.get("profile", "")
        if not profile:
            raise PermanentError(
                Message(gettext_noop("The connection names no AWS profile.")),
                code="aws_missing_profile",
                hint=Message(gettext_noop("Edit the connection and enter the profile name.")),
            )
        base = _new_session(profile=profile)
    else:
        base = _new_session()
    if method != "assume_role":
        return base
    refresh = _assume_role_refresher(connection, base, region=region, sandbox=sandbox)
    session = _new_session()
    session.register_component(
        "credential_provider",
        CredentialResolver([_AssumedRole(DeferredRefreshableCredentials(refresh, "assume-role"))]),
    )
    return session


class _AssumedRole(CredentialProvider):
    """Hands botocore the refreshable credentials of the connection's role."""

    METHOD = "assume-role"
    CANONICAL_NAME = "custom-connect-sso-wizard-assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _assume_role_refresher(
    connection: Connection,
    base: botocore.session.Session,
    *,
    region: str,
    sandbox: dict[str, Any] | None,
) -> Callable[[], dict[str, str]]:
    role_arn = connection.config.get("role_arn", "")
    if not role_arn:
        raise PermanentError(
            Message(gettext_noop("The connection names no role to assume.")),
            code="aws_missing_role",
            hint=Message(gettext_noop("Edit the connection and enter the role ARN.")),
        )
    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": connection.config.get("role_session_name") or DEFAULT_ROLE_SESSION_NAME,
        "DurationSeconds": ASSUME_ROLE_SECONDS,
    }
    if connection.config.get("external_id"):
        params["ExternalId"] = connection.config["external_id"]
    sts = _audited_client(base, "sts", region=region, sandbox=sandbox)

    def refresh() -> dict[str, str]:
        try:
            issued = sts.assume_role(**params)["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            error = map_aws_error(exc)
            if isinstance(error, PermanentError):
                error.hint = Message(
                    gettext_noop(
                        "Check that %(role)s exists, that its trust policy allows the "
                        "connection's base identity to call sts:AssumeRole, and that the "
                        "external ID matches. %(hint)s"
                    ),
                    {"role": role_arn, "hint": error.given_hint},
                )
            raise error from exc
        register_secret_values([issued["SecretAccessKey"], issued["SessionToken"]])
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": issued["Expiration"].isoformat(),
        }

    return refresh


class _CallAudit:
    """botocore event handlers that write a started row before each call and a finished after,
    under the scope of the call running in this thread (AwsSdkProxy sets it; an AssumeRole that
    refreshes credentials while another call is signed is audited under that call)."""

    def register(self, client: BaseClient) -> None:
        events = client.meta.events
        # The only event that carries the caller's parameters (before-call has the wire form).
        events.register("before-parameter-build.*.*", self.keep_params)
        events.register("before-call.*.*", self.started)
        events.register("after-call.*.*", self.finished)
        events.register("after-call-error.*.*", self.failed)

    def keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS] = json_safe(params)

    def started(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        scope = getattr(_calling, "scope", None)
        if scope is None:
            raise RuntimeError("An AWS call went out without an audit scope (not via aws_client).")
        context[_RECORD] = start_call(
            scope,
            cloud=Cloud.AWS.value,
            service=model.service_model.service_name,
            operation=model.name,
            request=context.get(_PARAMS, {}),
        )

    def finished(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        record = context.pop(_RECORD, None)
        if record is None:
            return
        metadata = parsed.get("ResponseMetadata", {})
        summary = {
            "http_status": http_response.status_code,
            "request_id": metadata.get("RequestId", ""),
            "attempts": metadata.get("RetryAttempts", 0) + 1,
            **identifiers(parsed),
        }
        failed = http_response.status_code >= 300
        finish_call(
            record,
            outcome="error" if failed else "ok",
            response=summary,
            error_code=parsed.get("Error", {}).get("Code", "") if failed else "",
        )

    def failed(self, exception: Exception, context: dict[str, Any], **_: Any) -> None:
        record = context.pop(_RECORD, None)
        if record is None:
            return
        error = exception if isinstance(exception, ProvisioningError) else map_aws_error(exception)
        finish_call(
            record,
            outcome="error",
            response={"error": type(exception).__name__},
            error_code=error.code,
        )


class _ApiTurns:
    """A botocore handler that makes each HTTP attempt of a rate-limited client wait for its turn
    in the shared bucket of its operation."""

    def __init__(self, limits: ApiLimits) -> None:
        self.limits = limits

    def register(self, client: BaseClient) -> None:
        service_id = client.meta.service_model.service_id.hyphenize()
        # botocore emits before-send.<service id>.<Operation> once per HTTP attempt, just before
        # sending (Endpoint._do_get_response in botocore/endpoint.py), so its own retries take a
        # turn too. What a handler raises there ends the call: botocore does not retry it.
        client.meta.events.register(f"before-send.{service_id}", self.wait_for_turn)

    def wait_for_turn(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        wait_for_turn(self.limits.bucket_key(operation), self.limits.rate(operation))


# Error codes, from botocore's standard retry checker (retries/standard.py) and the service
# models of the APIs the wizard calls (STS, IAM, Connect, Service Quotas).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceFailure",
        "ServiceFailureException",
        "IDPCommunicationError",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedException",
        "AuthorizationError",
        "AuthFailure",
    }
)
QUOTA_CODES = frozenset(
    {
        "ServiceQuotaExceededException",
        "LimitExceeded",
        "LimitExceededException",
        "QuotaExceededException",
    }
)
BAD_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "InvalidToken",
    }
)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
DUPLICATE_CODES = frozenset(
    {
        "DuplicateResourceException",
        "ResourceConflictException",
        "EntityAlreadyExists",
        "EntityAlreadyExistsException",
        "ResourceExistsException",
        "ConflictException",
        "ResourceInUseException",
        "DeleteConflict",
        "IdempotencyParameterMismatchException",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchEntityException",
        "NotFoundException",
    }
)
INVALID_INPUT_CODES = frozenset(
    {
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidInput",
        "ValidationException",
        "ValidationError",
        "InvalidRequestException",
        "MalformedPolicyDocument",
        "MalformedPolicyDocumentException",
        "MissingParameter",
        "InvalidContactFlowException",
        "InvalidIdentityToken",
        "PackedPolicyTooLarge",
        "UnmodifiableEntity",
    }
)
# Which Service Quotas entry an operation's quota error is about, so the admin knows what to ask.
# Service Quotas' own names (the QuotaName its API returns, which the console's search finds), so
# they go into the message as AWS's words, a parameter, not as messages of ours.
QUOTA_BY_OPERATION = {
    "CreateInstance": "Amazon Connect › Amazon Connect instances per account",
    "CreateUser": "Amazon Connect › Users per instance",
    "ClaimPhoneNumber": "Amazon Connect › Phone numbers per instance",
    "CreateSecurityProfile": "Amazon Connect › Security profiles per instance",
    "CreateRoutingProfile": "Amazon Connect › Routing profiles per instance",
    "CreateSAMLProvider": "IAM › Identity providers (SAML) per account",
    "CreateRole": "IAM › Roles per account",
    "CreatePolicy": "IAM › Customer managed policies per account",
    "AttachRolePolicy": "IAM › Managed policies per role",
    "PutRolePolicy": "IAM › Role policy size",
}
_NOT_AUTHORIZED = re.compile(
    r"(?P<who>arn:[\w:/+=,.@-]+)?[^:]*?is not authorized to perform:? ?(?P<action>[\w-]+:[\w*]+)"
)
# Where AWS says the deny is: "... with an explicit deny in an identity-based policy" (or "a
# service control policy", "a permissions boundary", "a resource-based policy"; IAM User Guide,
# "Troubleshoot access denied error messages").
_DENY_PLACE = re.compile(r"with an explicit deny in (?P<place>an? [\w -]+)")


def map_aws_error(exc: BaseException) -> ProvisioningError:
    """The project's error for a botocore/boto3 exception, with a message an admin can act on."""
    if isinstance(exc, ProvisioningError):
        return exc
    if isinstance(exc, ClientError):
        return _map_client_error(exc)
    if isinstance(exc, SSLError):
        return PermanentError(
            Message(gettext_noop("The AWS endpoint's TLS certificate is not trusted.")),
            code="aws_tls_untrusted",
            hint=Message(
                gettext_noop(
                    "In live mode only publicly trusted certificates are accepted. If a proxy "
                    "inspects TLS, set AWS_CA_BUNDLE for the worker to that proxy's CA."
                )
            ),
        )
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return Unavailable(
            Message(gettext_noop("AWS could not be reached: %(error)s"), {"error": str(exc)}),
            code="aws_unreachable",
            hint=Message(
                gettext_noop(
                    "The wizard retries. If it keeps failing, check the worker's network access "
                    "to AWS (proxy, firewall, DNS)."
                )
            ),
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentError(
            Message(gettext_noop("No complete AWS credentials were found for this connection.")),
            code="aws_no_credentials",
            hint=Message(
                gettext_noop(
                    "With “default credentials”, the worker's host needs AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY, a shared credentials file or an instance role. "
                    "Otherwise edit the connection and use an access key or a profile."
                )
            ),
        )
    if isinstance(exc, ProfileNotFound):
        return PermanentError(
            Message(
                gettext_noop("The AWS profile is not configured on the worker's host: %(error)s"),
                {"error": str(exc)},
            ),
            code="aws_profile_not_found",
            hint=Message(
                gettext_noop(
                    "Fix the profile name in the connection, or add the profile to "
                    "~/.aws/config of the user the worker runs as."
                )
            ),
        )
    if isinstance(exc, NoRegionError):
        return PermanentError(
            Message(gettext_noop("No AWS region was chosen.")),
            code="aws_no_region",
            hint=Message(gettext_noop("Choose the region of the Amazon Connect instance.")),
        )
    if isinstance(exc, ParamValidationError | UnknownServiceError):
        return InvalidRequest(
            Message(gettext_noop("The AWS request was not valid: %(error)s"), {"error": str(exc)}),
            code="aws_invalid_request",
            hint=Message(gettext_noop("Check the values you typed for this step.")),
        )
    if isinstance(exc, WaiterError):
        return _map_waiter_error(exc)
    if isinstance(exc, BotoCoreError):
        return PermanentError(
            Message(gettext_noop("The AWS SDK failed: %(error)s"), {"error": str(exc)}),
            code="aws_sdk_error",
        )
    return PermanentError(
        Message(
            gettext_noop("Unexpected error calling AWS: %(error)s"),
            {"error": type(exc).__name__},
        ),
        code="aws_unexpected",
    )


def _map_waiter_error(exc: WaiterError) -> ProvisioningError:
    """A waiter stops on an error answer (mapped like the call's own), a failure state, or after
    its last attempt (botocore/waiter.py, Waiter.wait)."""
    name = exc.kwargs.get("name", "")
    reason = str(exc.kwargs.get("reason", ""))
    if reason.startswith("Max attempts exceeded"):
        return Unavailable(
            Message(
                gettext_noop("AWS did not reach the state %(waiter)s waits for in time."),
                {"waiter": name},
            ),
            code="aws_wait_timed_out",
            hint=Message(
                gettext_noop(
                    "The wizard retries; if it keeps waiting, look at the resource in the console."
                )
            ),
        )
    if reason.startswith("An error occurred") and "Error" in (exc.last_response or {}):
        # An error answer no acceptor expected: the call's own error.
        return _map_client_error(ClientError(exc.last_response, name))
    return PermanentError(
        Message(
            gettext_noop("AWS reached a state %(waiter)s cannot go on from: %(reason)s"),
            {"waiter": name, "reason": reason},
        ),
        code="aws_wait_failed",
        hint=Message(
            gettext_noop("Look at the resource in the AWS console, fix it, then retry the step.")
        ),
    )


def _map_client_error(exc: ClientError) -> ProvisioningError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "")) or "Unknown"
    aws_message = str(error.get("Message", "")).strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    operation = exc.operation_name
    said: Message | str = (
        Message(gettext_noop(" AWS said: “%(message)s”"), {"message": aws_message})
        if aws_message
        else ""
    )
    where_from = {"operation": operation, "code": code, "said": said}
    # Before the status check: Connect answers a used-up quota with LimitExceededException and
    # HTTP 429, which is not throttling and won't pass by waiting.
    if code in QUOTA_CODES:
        quota: Message | str = QUOTA_BY_OPERATION.get(operation) or Message(
            gettext_noop("the quota that limits %(operation)s"), {"operation": operation}
        )
        return QuotaExceeded(
            Message(
                gettext_noop("An AWS quota is used up: %(quota)s.%(said)s"),
                {"quota": quota, "said": said},
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Request an increase in Service Quotas (AWS console › Service Quotas › "
                    "%(quota)s), or remove resources you no longer need, then retry."
                ),
                {"quota": quota},
            ),
        )
    if code in THROTTLING_CODES or status == 429:
        return Throttled(
            Message(gettext_noop("AWS is throttling %(operation)s (%(code)s)."), where_from),
            code=code,
            hint=Message(
                gettext_noop("The wizard waits and retries at the API's rate; nothing to do.")
            ),
            retry_after_s=retry_after_s(
                exc.response.get("ResponseMetadata", {}).get("HTTPHeaders")
            ),
        )
    if code in TRANSIENT_CODES or status >= 500:
        return Unavailable(
            Message(
                gettext_noop("AWS had a temporary problem with %(operation)s (%(code)s).%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "The wizard retries; if it keeps failing, check the AWS Health Dashboard."
                )
            ),
        )
    if code in ACCESS_DENIED_CODES:
        match = _NOT_AUTHORIZED.search(aws_message)
        action: Message | str = (
            match.group("action")
            if match
            else Message(gettext_noop("the permission for %(operation)s"), {"operation": operation})
        )
        who: Message | str = (
            match.group("who")
            if match and match.group("who")
            else Message(gettext_noop("this connection's identity"))
        )
        hint: Message
        if "explicit deny" in aws_message:
            place = _DENY_PLACE.search(aws_message)
            # AWS's own words for where the deny is, else ours.
            where: Message | str = (
                place.group("place")
                if place
                else Message(gettext_noop("an SCP, a permission boundary or a resource policy"))
            )
            hint = Message(
                gettext_noop(
                    "A policy explicitly denies %(action)s to %(who)s (%(where)s): remove that "
                    "deny, then retry."
                ),
                {"action": action, "who": who, "where": where},
            )
        else:
            hint = Message(
                gettext_noop("Add %(action)s to an IAM policy of %(who)s, then retry the step."),
                {"action": action, "who": who},
            )
        return AccessDenied(
            Message(
                gettext_noop(
                    "AWS refused %(operation)s: %(who)s is missing the permission "
                    "%(action)s.%(said)s"
                ),
                {**where_from, "who": who, "action": action},
            ),
            code=code,
            hint=hint,
        )
    if code in BAD_CREDENTIAL_CODES:
        return Unauthenticated(
            Message(
                gettext_noop("AWS did not accept the connection's credentials (%(code)s).%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Edit the connection: check the access key ID and secret access key (a "
                    "deleted or deactivated key gives this error), or the profile/role it uses."
                )
            ),
        )
    if code in EXPIRED_CODES:
        return Unauthenticated(
            Message(
                gettext_noop("The connection's AWS credentials have expired (%(code)s)."),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Refresh them (e.g. `aws sso login` for a profile) or switch the connection "
                    "to a role or a long-lived key."
                )
            ),
        )
    if code in DUPLICATE_CODES:
        return Conflict(
            Message(
                gettext_noop("%(operation)s conflicts with something that already exists.%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Type a different name, or adopt the existing resource instead of creating it."
                )
            ),
        )
    if code in NOT_FOUND_CODES:
        return NotFound(
            Message(gettext_noop("%(operation)s did not find what it needs.%(said)s"), where_from),
            code=code,
            hint=Message(
                gettext_noop(
                    "Check the ID, ARN or name you typed, and that it is in the chosen region."
                )
            ),
        )
    if code in INVALID_INPUT_CODES or status == 400:
        return InvalidRequest(
            Message(gettext_noop("AWS refused a value in %(operation)s.%(said)s"), where_from),
            code=code,
            hint=Message(
                gettext_noop("Change the value AWS names in its message, then retry the step.")
            ),
        )
    # An unknown code: its HTTP status still says what kind of refusal it was.
    return http_error(
        error_class(status),
        Message(gettext_noop("%(operation)s failed (%(code)s).%(said)s"), where_from),
        code=code,
    )
