"""Builds an audited Okta management client for a connection, runs its calls from sync code, and
turns Okta errors into the project's errors.

Auth methods (Connection.config["method"]): "api_token" (config "org_url"; secret "api_token",
sent as `SSWS <token>`) and "private_key" (OAuth 2.0 service app: config "org_url",
"client_id", "scopes" (space separated), optional "key_id", "dpop" ("on", the default, or
"off"); secret "private_key", a PEM). With DPoP on, the SDK binds the token to a key of its own
and signs a proof for every call (dpopEnabled); when the service app and the connection disagree
about DPoP, the token request says so and the error names the setting to change.
The org URL is checked first (provisioning/okta/org_url.py); in sandbox mode a sandbox
connection goes only to the sandbox's Okta URL and trusts the sandbox CA.

Threads and loops: run_okta() runs a call with asgiref's async_to_sync (a loop per call; the Graph
client keeps one loop per process instead), so audit rows are written in the calling thread; each
request opens its own aiohttp session.
Auditing is per HTTP request, which here is per API call: the SDK's retries are off (maxRetries
0), because Okta's rate-limit reset can be a minute away and a worker must not sleep through it;
a throttled call raises RetryableError with the reset time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import ssl
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import certifi
from asgiref.sync import async_to_sync, sync_to_async
from django.utils.translation import gettext_noop
from okta import oauth as okta_oauth
from okta.client import Client as OktaClient
from okta.dpop import DPoPProofGenerator as SdkDPoPProofGenerator
from okta.errors.error import Error as OktaError
from okta.errors.http_error import HTTPError as OktaHTTPError
from okta.errors.okta_api_error import OktaAPIError
from okta.http_client import HTTPClient

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
)
from provisioning.http_errors import error_class, http_error, retry_after_s
from provisioning.messages import Message
from provisioning.models import Cloud, Connection
from provisioning.okta.org_url import validate_okta_org_url
from provisioning.redaction import register_secret_values
from provisioning.sandbox_endpoints import sandbox_endpoints

T = TypeVar("T")

AUTH_METHODS = ("api_token", "private_key")
DEFAULT_SCOPES = "okta.apps.manage okta.users.read okta.groups.read"
USER_AGENT = "connect-sso-wizard/0.1"
# Seconds for one request, connection included (the SDK's requestTimeout; 0 would be none).
REQUEST_TIMEOUT_S = 60
# When Okta throttles without X-Rate-Limit-Reset, wait this long (its limits are per minute).
DEFAULT_RESET_WAIT_S = 60.0
MAX_OPERATION_CHARS = 128
# The org authorization server's token endpoint (Okta, "Implement OAuth for Okta with a service
# app"), which the SDK calls before the first API call of a private_key connection.
TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 - a URL path
DPOP_ON = "on"
DPOP_OFF = "off"
# Where an Okta admin turns DPoP on or off for a service app (Okta Support, "The DPoP Proof JWT
# Header Is Missing": Applications > Applications > General Settings; the checkbox's label as in
# Okta's DPoP guide, developer.okta.com/docs/guides/dpop/oktaresourceserver/main/).
DPOP_CONSOLE_SETTING = (
    "Applications › Applications › (the service app) › General › General Settings: "
    "“Require Demonstrating Proof of Possession (DPoP) header in token requests”"
)
# The WWW-Authenticate parameters Okta puts the reason of an OAuth refusal in (okta-sdk-golang
# issue 145: error="insufficient_scope", scope="okta.groups.read"; okta-sdk-python issue 541).
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def _reused_dpop_generator(client_config: dict[str, Any]) -> Any:
    """Stands in for the SDK's DPoPProofGenerator(config): one generator, and so one DPoP key
    pair, per service app per worker process. The SDK makes a fresh 3072-bit RSA key for every
    client (seconds of CPU each) and the wizard makes a client per step; the key stays in memory
    and the SDK still rotates it every dpopKeyRotationInterval."""
    key = (str(client_config.get("orgUrl", "")), str(client_config.get("clientId", "")))
    with _DPOP_GENERATORS_LOCK:
        generator = _DPOP_GENERATORS.get(key)
        if generator is None:
            if len(_DPOP_GENERATORS) >= DPOP_GENERATORS_KEPT:
                _DPOP_GENERATORS.pop(next(iter(_DPOP_GENERATORS)))
            generator = _DPOP_GENERATORS[key] = _SDK_DPOP_GENERATOR(client_config)
        return generator


def forget_dpop_keys() -> None:
    """Drop the DPoP keys (and Okta's nonces) this process keeps: the next client starts afresh,
    as a new worker process does."""
    with _DPOP_GENERATORS_LOCK:
        _DPOP_GENERATORS.clear()


# Service apps whose DPoP key a worker process keeps (a site has a handful of Okta connections).
DPOP_GENERATORS_KEPT = 32
_DPOP_GENERATORS: dict[tuple[str, str], Any] = {}
_DPOP_GENERATORS_LOCK = threading.Lock()
_SDK_DPOP_GENERATOR = SdkDPoPProofGenerator
# okta/oauth.py sets `DPoPProofGenerator = None` before its guarded import, so its declared type
# is None; the SDK looks the name up on the module at call time, which is what this replaces.
okta_oauth.DPoPProofGenerator = _reused_dpop_generator  # type: ignore[assignment]


def okta_client(connection: Connection, *, audit: AuditScope) -> OktaClient:
    """An Okta SDK client whose every request is written to the audit log. Run its calls with
    run_okta()."""
    if connection.cloud != Cloud.OKTA:
        raise PermanentError(
            Message(
                gettext_noop("“%(connection)s” is not an Okta connection."),
                {"connection": connection.name},
            ),
            code="wrong_connection_cloud",
        )
    sandbox = sandbox_endpoints(connection)
    config = connection.config
    org_url = validate_okta_org_url(
        sandbox["okta_org_url"] if sandbox else config.get("org_url", ""),
        sandbox_org_url=sandbox["okta_org_url"] if sandbox else None,
    )
    secrets = connection.secrets
    register_secret_values(secrets.values())
    method = config.get("method", "")
    settings: dict[str, Any] = {
        "orgUrl": org_url,
        "userAgent": USER_AGENT,
        "requestTimeout": REQUEST_TIMEOUT_S,
        "rateLimit": {"maxRetries": 0},
        # The SDK caches GET responses by URL; a wizard that polls for changes must not.
        "cache": {"enabled": False},
    }
    if method == "api_token":
        token = secrets.get("api_token", "")
        if not token:
            raise PermanentError(
                Message(gettext_noop("The connection has no API token.")),
                code="okta_missing_token",
                hint=Message(gettext_noop("Edit the connection and paste an Okta API token.")),
            )
        settings.update(authorizationMode="SSWS", token=token)
    elif method == "private_key":
        private_key = secrets.get("private_key", "")
        if not config.get("client_id") or not private_key:
            raise PermanentError(
                Message(
                    gettext_noop("The connection lacks the service app's client ID or private key.")
                ),
                code="okta_missing_oauth",
                hint=Message(gettext_noop("Edit the connection and enter both.")),
            )
        settings.update(
            authorizationMode="PrivateKey",
            clientId=config["client_id"],
            scopes=(config.get("scopes") or DEFAULT_SCOPES).split(),
            privateKey=private_key,
            dpopEnabled=uses_dpop(connection),
        )
        if config.get("key_id"):
            settings["kid"] = config["key_id"]
    else:
        raise PermanentError(
            Message(gettext_noop("Unknown Okta sign-in method “%(method)s”."), {"method": method}),
            code="okta_unknown_method",
            hint=Message(
                gettext_noop("Edit the connection and choose: %(methods)s."),
                {"methods": ", ".join(AUTH_METHODS)},
            ),
        )
    ca_bundle = sandbox["ca_bundle"] if sandbox else certifi.where()
    settings["httpClient"] = type(
        "AuditedOktaHTTP",
        (_AuditedOktaHTTP,),
        {
            "scope": audit,
            "ca_bundle": ca_bundle,
            "dpop_expected": uses_dpop(connection) if method == "private_key" else None,
        },
    )
    try:
        return OktaClient(settings)
    except ValueError as exc:
        raise PermanentError(
            Message(
                gettext_noop("The Okta settings are not valid: %(error)s"), {"error": str(exc)}
            ),
            code="okta_bad_settings",
        ) from exc


def uses_dpop(connection: Connection) -> bool:
    """Whether a service-app connection asks for DPoP-bound tokens (on unless turned off, as
    new Okta API service apps require DPoP)."""
    return connection.config.get("dpop", DPOP_ON) != DPOP_OFF


def run_okta(call: Awaitable[Any]) -> Any:
    """Run one Okta SDK call (e.g. `client.get_user("me")`) from sync code. The SDK returns
    (result, response, error) tuples; this returns the result (the response for calls without a
    body) and raises the project's error instead of returning one."""

    async def wait() -> Any:
        return await call

    try:
        outcome = async_to_sync(wait)()
    except (TimeoutError, OktaError, aiohttp.ClientError, ssl.SSLError) as exc:
        raise map_okta_error(exc) from exc
    if isinstance(outcome, tuple) and outcome:
        if outcome[-1] is not None:
            raise map_okta_error(outcome[-1])
        return outcome[0]
    return outcome


class _AuditedOktaHTTP(HTTPClient):
    """The SDK's HTTP client, sending each request in its own aiohttp session with this
    connection's trust store, between a started and a finished audit row."""

    scope: AuditScope
    ca_bundle: str
    # For a service-app connection, whether it asked for DPoP; None for an API token.
    dpop_expected: bool | None

    def __init__(self, http_config: dict[str, Any]) -> None:
        super().__init__(http_config)
        self._tls = ssl.create_default_context(cafile=self.ca_bundle)

    async def send_request(self, request: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        url = urlsplit(request["url"])
        summary: dict[str, Any] = {"method": request["method"], "path": url.path}
        if url.query:
            summary["query"] = json_safe(dict(parse_qsl(url.query)))
        body = request.get("data") or request.get("json")
        if body:
            # Form bodies (the OAuth token request's signed assertion) are never kept.
            summary["body"] = json_safe(body)
        segments = [part for part in url.path.split("/") if part]
        record = await sync_to_async(start_call)(
            self.scope,
            cloud=Cloud.OKTA.value,
            service=segments[2]
            if len(segments) > 2 and segments[0] == "api"
            else (segments[0] if segments else ""),
            operation=f"{request['method']} {url.path}"[:MAX_OPERATION_CHARS],
            request=summary,
        )
        headers = {**self._default_headers, **request["headers"]}
        params: dict[str, Any] = {"method": request["method"], "url": request["url"]}
        if request.get("data"):
            params["data"] = json.dumps(request["data"])
        elif request.get("form"):
            # aiohttp url-encodes a dict and sets its own Content-Type.
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            params["data"] = request["form"]
        if request.get("json"):
            params["json"] = request["json"]
        params["headers"] = headers
        try:
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=self._tls), timeout=self._timeout
                ) as session,
                session.request(**params) as response,
            ):
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            await sync_to_async(finish_call)(
                record,
                outcome="error",
                response={"error": type(exc).__name__},
                error_code=type(exc).__name__,
            )
            raise map_okta_error(exc) from exc
        payload = parse_json_body(text.encode())
        result: dict[str, Any] = {
            "http_status": response.status,
            "request_id": response.headers.get("X-Okta-Request-Id", ""),
        }
        for header in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
            if header in response.headers:
                result[header.lower()] = response.headers[header]
        failed = response.status >= 400
        is_token_request = url.path == TOKEN_PATH
        if is_token_request and isinstance(payload, dict):
            # Never the token itself: only its type, lifetime and scopes.
            kept = ("token_type", "expires_in", "scope", "error", "error_description")
            result.update({key: payload[key] for key in kept if key in payload})
        elif not failed and isinstance(payload, dict):
            result.update(identifiers(payload))
        error_code = ""
        if failed and isinstance(payload, dict):
            error_code = str(payload.get("errorCode") or payload.get("error") or "")
        elif failed:
            error_code = _challenge(response.headers).get("error") or f"http_{response.status}"
        await sync_to_async(finish_call)(
            record,
            outcome="error" if failed else "ok",
            response=result,
            error_code=error_code,
        )
        mismatch = (
            _dpop_mismatch(self.dpop_expected, response.status, payload)
            if is_token_request
            else None
        )
        return response.request_info, response, text, mismatch


def _dpop_mismatch(expected: bool | None, status: int, payload: Any) -> ProvisioningError | None:
    """The error to raise when a token response shows that the service app and the connection
    disagree about DPoP, else None.

    - App requires DPoP, connection has it off: Okta answers 400 invalid_dpop_proof "The DPoP
      proof JWT header is missing." (Okta Support, "The DPoP Proof JWT Header Is Missing").
    - App does not require DPoP, connection has it on: Okta ignores the proof and answers with a
      plain Bearer token (okta-sdk-python okta/oauth.py: "DPoP was enabled but server returned
      Bearer token"), so the connection would run without the binding its admin asked for.
    """
    if expected is None or not isinstance(payload, dict):
        return None
    if status == 400 and payload.get("error") == "invalid_dpop_proof" and not expected:
        return PermanentError(
            Message(
                gettext_noop(
                    "The Okta service app requires DPoP-bound tokens, and this connection has "
                    "DPoP turned off."
                )
            ),
            code="okta_dpop_required_by_app",
            hint=Message(
                gettext_noop(
                    "Edit the connection and turn on DPoP. (Or, in the Okta Admin Console, untick "
                    "%(setting)s; Okta recommends keeping it on.)"
                ),
                {"setting": DPOP_CONSOLE_SETTING},
            ),
        )
    if status == 200 and expected and payload.get("token_type") == "Bearer":
        return PermanentError(
            Message(
                gettext_noop(
                    "This connection has DPoP turned on, but the Okta service app does not require "
                    "it: Okta issued a plain Bearer token."
                )
            ),
            code="okta_dpop_not_required_by_app",
            hint=Message(
                gettext_noop(
                    "In the Okta Admin Console, tick %(setting)s and save. (Or edit the connection "
                    "and turn off DPoP.)"
                ),
                {"setting": DPOP_CONSOLE_SETTING},
            ),
        )
    return None


def _challenge(headers: Any) -> dict[str, str]:
    """The parameters of a WWW-Authenticate header ({} without one)."""
    value = headers.get("WWW-Authenticate", "") if headers else ""
    return dict(_CHALLENGE_PARAM.findall(value))


def map_okta_error(exc: BaseException) -> ProvisioningError:
    """The project's error for an Okta SDK error (OktaAPIError/HTTPError) or network failure."""
    if isinstance(exc, ProvisioningError):
        return exc
    if isinstance(exc, OktaAPIError):
        return _map_api_error(
            exc.status or 0,
            exc.error_code,
            exc.error_summary,
            [c.get("errorSummary", "") for c in exc.error_causes],
            exc.headers or {},
        )
    if isinstance(exc, OktaHTTPError):
        challenge = _challenge(exc.response_headers)
        if challenge.get("error"):
            return _map_oauth_refusal(exc.status or 0, challenge)
        return _map_api_error(exc.status or 0, "", "", [], exc.response_headers or {})
    if isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError) or "CERTIFICATE_VERIFY_FAILED" in str(
        exc
    ):
        return PermanentError(
            Message(gettext_noop("The Okta org's TLS certificate is not trusted.")),
            code="okta_tls_untrusted",
            hint=Message(
                gettext_noop("In live mode only publicly trusted certificates are accepted.")
            ),
        )
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return RetryableError(
            Message(
                gettext_noop("Okta could not be reached (%(error)s)."),
                {"error": type(exc).__name__},
            ),
            code="okta_unreachable",
            hint=Message(
                gettext_noop(
                    "The wizard retries. If it keeps failing, check the org URL and the worker's "
                    "network access."
                )
            ),
        )
    if isinstance(exc, OktaError):
        return PermanentError(
            Message(gettext_noop("The Okta SDK failed: %(error)s"), {"error": str(exc.message)}),
            code="okta_sdk_error",
        )
    return PermanentError(
        Message(
            gettext_noop("Unexpected error calling Okta: %(error)s"), {"error": type(exc).__name__}
        ),
        code="okta_unexpected",
    )


def _map_oauth_refusal(status: int, challenge: dict[str, str]) -> ProvisioningError:
    """A management API call refused for the OAuth token it carried (the reason is in
    WWW-Authenticate, the body empty)."""
    error = challenge.get("error", "")
    said = challenge.get("error_description", "")
    if error == "insufficient_scope":
        return PermanentError(
            Message(
                gettext_noop("The Okta service app's token lacks the scope %(scope)s."),
                {"scope": challenge.get("scope", "")},
            ),
            code="okta_insufficient_scope",
            hint=Message(
                gettext_noop(
                    "Grant %(scope)s to the service app (its Okta API Scopes tab) and add it to "
                    "the "
                    "connection's scopes."
                ),
                {"scope": challenge.get("scope", "")},
            ),
        )
    return PermanentError(
        Message(
            gettext_noop("Okta refused the service app's token (%(error)s): %(said)s"),
            {"error": error, "said": said},
        ),
        code=error or f"http_{status}",
        hint=Message(
            gettext_noop(
                "Test the connection again; if it keeps failing, check the worker's clock and "
                "whether DPoP is on in both the connection and the service app."
            )
        ),
    )


# Token endpoint refusals of the client assertion whose cause is the worker's clock, not the key
# (Okta's OAuth 2.0 error catalogue, invalid_client).
_CLOCK_CAUSES = (
    "The client_assertion token is expired.",
    "The client_assertion token must be issued before the current time.",
    "The client_assertion token has an expiration too far into the future.",
)


def _map_token_error(code: str, summary: str) -> ProvisioningError | None:
    """The org authorization server's OAuth errors (RFC 6749 section 5.2 codes), or None."""
    said = summary.split("\n\nServer error: ")[-1].strip()
    if code == "invalid_client" and said in _CLOCK_CAUSES:
        return PermanentError(
            Message(
                gettext_noop("Okta refused the service app's signed client assertion: %(said)s"),
                {"said": said},
            ),
            code="okta_assertion_time",
            hint=Message(
                gettext_noop(
                    "The worker's clock is wrong: the assertion is valid for 50 minutes from the "
                    "moment it is signed. Set the worker host's clock (NTP), then test again."
                )
            ),
        )
    if code == "invalid_client":
        return PermanentError(
            Message(
                gettext_noop("Okta refused the service app's signed client assertion: %(said)s"),
                {"said": said},
            ),
            code="okta_invalid_client",
            hint=Message(
                gettext_noop(
                    "Edit the connection: the client ID must be the service app's, and the private "
                    "key must match a public key on its General tab (Client Credentials); give the "
                    "key ID (kid) when the app has several keys."
                )
            ),
        )
    if code in ("invalid_scope", "consent_required"):
        return PermanentError(
            Message(
                gettext_noop("Okta granted none of the scopes the connection asks for: %(said)s"),
                {"said": said},
            ),
            code="okta_scopes_not_granted",
            hint=Message(
                gettext_noop(
                    "Grant the scopes to the service app (its Okta API Scopes tab), or fix the "
                    "connection's scopes."
                )
            ),
        )
    if code.startswith(("invalid_dpop", "use_dpop", "dpop_")):
        return PermanentError(
            Message(gettext_noop("Okta refused the DPoP proof: %(said)s"), {"said": said}),
            code=code,
            hint=Message(
                gettext_noop(
                    "Check the worker's clock (proofs older than five minutes are refused), then "
                    "test the connection again."
                )
            ),
        )
    return None


# Okta's error codes that say what kind of refusal it was, whatever the status (Okta error
# codes reference: E0000047 API rate limit exceeded, E0000011 invalid token, E0000006 and
# E0000015 no permission, E0000007 not found).
_OKTA_CODE_ERRORS: dict[str, type[ProvisioningError]] = {
    "E0000047": Throttled,
    "E0000011": Unauthenticated,
    "E0000006": AccessDenied,
    "E0000015": AccessDenied,
    "E0000007": NotFound,
}


def _map_api_error(
    status: int, code: str, summary: str, causes: list[str], headers: Any
) -> ProvisioningError:
    token_error = _map_token_error(code, summary)
    if token_error is not None:
        return token_error
    detail = "; ".join(c for c in causes if c)
    said: Message | str = (
        Message(
            gettext_noop(" Okta said: “%(message)s”"),
            {"message": summary + (" — " + detail if detail else "")},
        )
        if summary
        else ""
    )
    where_from = {"status": status, "said": said}
    code = code or f"http_{status}"
    kind = error_class(status, code=code, by_code=_OKTA_CODE_ERRORS)
    if kind is Throttled:
        wait_s, reset_at = _reset_wait(headers.get("X-Rate-Limit-Reset"))
        return http_error(
            kind,
            Message(gettext_noop("Okta's rate limit for this API is used up.")),
            code=code,
            hint=Message(
                gettext_noop(
                    "It resets at %(reset_at)s (in %(seconds)s s); the wizard retries then."
                ),
                {"reset_at": reset_at, "seconds": f"{wait_s:.0f}"},
            ),
            retry_after_s=wait_s,
        )
    if kind is Unavailable:
        return http_error(
            kind,
            Message(
                gettext_noop("Okta had a temporary problem (HTTP %(status)s).%(said)s"), where_from
            ),
            code=code,
            hint=Message(gettext_noop("The wizard retries.")),
            retry_after_s=retry_after_s(headers),
        )
    if kind is Unauthenticated:
        return http_error(
            kind,
            Message(
                gettext_noop("Okta did not accept the connection's credentials.%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Edit the connection: paste a current API token (Security › API › Tokens; "
                    "unused tokens expire after 30 days), or fix the service app's client ID "
                    "and key."
                )
            ),
        )
    if kind is AccessDenied:
        return http_error(
            kind,
            Message(
                gettext_noop("The Okta admin behind the connection lacks a permission.%(said)s"),
                where_from,
            ),
            code=code,
            hint=Message(
                gettext_noop(
                    "Create the API token as a Super Administrator (or an admin with the "
                    "Application Administrator role and access to the users and groups), or "
                    "grant the service app the scopes %(scopes)s and an admin role."
                ),
                {"scopes": DEFAULT_SCOPES},
            ),
        )
    if kind is NotFound:
        return http_error(
            kind,
            Message(gettext_noop("Okta did not find the object.%(said)s"), where_from),
            code=code,
            hint=Message(gettext_noop("Check the ID, login or name you typed.")),
        )
    if kind in (InvalidRequest, Conflict):
        return http_error(
            kind,
            Message(gettext_noop("Okta refused a value.%(said)s"), where_from),
            code=code,
            hint=Message(gettext_noop("Change the value Okta names in its message, then retry.")),
        )
    return http_error(
        kind,
        Message(gettext_noop("The Okta call failed (HTTP %(status)s).%(said)s"), where_from),
        code=code,
    )


def _reset_wait(reset_header: str | None) -> tuple[float, str]:
    now = dt.datetime.now(dt.UTC)
    try:
        reset = dt.datetime.fromtimestamp(int(reset_header or ""), dt.UTC)
    except ValueError:
        reset = now + dt.timedelta(seconds=DEFAULT_RESET_WAIT_S)
    wait_s = max((reset - now).total_seconds(), 0.0)
    return wait_s, reset.strftime("%H:%M:%S UTC")
