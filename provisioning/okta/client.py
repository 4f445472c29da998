"""Builds an audited Okta management client for a connection, runs its calls from sync code, and
turns Okta errors into the project's errors.

Auth methods (Connection.config["method"]): "api_token" (config "org_url"; secret "api_token",
sent as `SSWS <token>`) and "private_key" (OAuth 2.0 service app: config "org_url",
"client_id", "scopes" (space separated), optional "key_id"; secret "private_key", a PEM).
The org URL is checked first (provisioning/okta/org_url.py); in sandbox mode a sandbox
connection goes only to the sandbox's Okta URL and trusts the sandbox CA.

Threads and loops: like the Graph client, run_okta() runs a call with asgiref's async_to_sync,
so audit rows are written in the calling thread; each request opens its own aiohttp session.
Auditing is per HTTP request, which here is per API call: the SDK's retries are off (maxRetries
0), because Okta's rate-limit reset can be a minute away and a worker must not sleep through it;
a throttled call raises RetryableError with the reset time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import certifi
from asgiref.sync import async_to_sync, sync_to_async
from okta.client import Client as OktaClient
from okta.errors.error import Error as OktaError
from okta.errors.http_error import HTTPError as OktaHTTPError
from okta.errors.okta_api_error import OktaAPIError
from okta.http_client import HTTPClient

from provisioning.audit import AuditScope, finish_call, register_secret_values, start_call
from provisioning.call_summaries import identifiers, json_safe, parse_json_body
from provisioning.errors import PermanentError, ProvisioningError, RetryableError
from provisioning.okta.org_url import validate_okta_org_url
from provisioning.sandbox_endpoints import sandbox_endpoints
from wizard.models import Cloud, Connection

T = TypeVar("T")

AUTH_METHODS = ("api_token", "private_key")
DEFAULT_SCOPES = "okta.apps.manage okta.users.read okta.groups.read"
USER_AGENT = "connect-sso-wizard/0.1"
# Seconds for one request, connection included (the SDK's requestTimeout; 0 would be none).
REQUEST_TIMEOUT_S = 60
# When Okta throttles without X-Rate-Limit-Reset, wait this long (its limits are per minute).
DEFAULT_RESET_WAIT_S = 60.0
MAX_OPERATION_CHARS = 128


def okta_client(connection: Connection, *, audit: AuditScope) -> OktaClient:
    """An Okta SDK client whose every request is written to the audit log. Run its calls with
    run_okta()."""
    if connection.cloud != Cloud.OKTA:
        raise PermanentError(
            f"“{connection.name}” is not an Okta connection.", code="wrong_connection_cloud"
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
                "The connection has no API token.",
                code="okta_missing_token",
                hint="Edit the connection and paste an Okta API token.",
            )
        settings.update(authorizationMode="SSWS", token=token)
    elif method == "private_key":
        private_key = secrets.get("private_key", "")
        if not config.get("client_id") or not private_key:
            raise PermanentError(
                "The connection lacks the service app's client ID or private key.",
                code="okta_missing_oauth",
                hint="Edit the connection and enter both.",
            )
        settings.update(
            authorizationMode="PrivateKey",
            clientId=config["client_id"],
            scopes=(config.get("scopes") or DEFAULT_SCOPES).split(),
            privateKey=private_key,
        )
        if config.get("key_id"):
            settings["kid"] = config["key_id"]
    else:
        raise PermanentError(
            f"Unknown Okta sign-in method “{method}”.",
            code="okta_unknown_method",
            hint="Edit the connection and choose: " + ", ".join(AUTH_METHODS) + ".",
        )
    ca_bundle = sandbox["ca_bundle"] if sandbox else certifi.where()
    settings["httpClient"] = type(
        "AuditedOktaHTTP", (_AuditedOktaHTTP,), {"scope": audit, "ca_bundle": ca_bundle}
    )
    try:
        return OktaClient(settings)
    except ValueError as exc:
        raise PermanentError(
            f"The Okta settings are not valid: {exc}", code="okta_bad_settings"
        ) from exc


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
        if not failed and isinstance(payload, dict):
            result.update(identifiers(payload))
        await sync_to_async(finish_call)(
            record,
            outcome="error" if failed else "ok",
            response=result,
            error_code=str(payload.get("errorCode", ""))
            if failed and isinstance(payload, dict)
            else (f"http_{response.status}" if failed else ""),
        )
        return response.request_info, response, text, None


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
        return _map_api_error(exc.status or 0, "", "", [], exc.response_headers or {})
    if isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError) or "CERTIFICATE_VERIFY_FAILED" in str(
        exc
    ):
        return PermanentError(
            "The Okta org's TLS certificate is not trusted.",
            code="okta_tls_untrusted",
            hint="In live mode only publicly trusted certificates are accepted.",
        )
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return RetryableError(
            f"Okta could not be reached ({type(exc).__name__}).",
            code="okta_unreachable",
            hint="The wizard retries. If it keeps failing, check the org URL and the worker's "
            "network access.",
        )
    if isinstance(exc, OktaError):
        return PermanentError(f"The Okta SDK failed: {exc.message}", code="okta_sdk_error")
    return PermanentError(
        f"Unexpected error calling Okta: {type(exc).__name__}", code="okta_unexpected"
    )


def _map_api_error(
    status: int, code: str, summary: str, causes: list[str], headers: Any
) -> ProvisioningError:
    detail = "; ".join(c for c in causes if c)
    said = f" Okta said: “{summary}{' — ' + detail if detail else ''}”" if summary else ""
    code = code or f"http_{status}"
    if code == "E0000047" or status == 429:
        wait_s, reset_at = _reset_wait(headers.get("X-Rate-Limit-Reset"))
        return RetryableError(
            "Okta's rate limit for this API is used up.",
            code=code,
            hint=f"It resets at {reset_at} (in {wait_s:.0f} s); the wizard retries then.",
            retry_after_s=wait_s,
        )
    if status >= 500:
        return RetryableError(
            f"Okta had a temporary problem (HTTP {status}).{said}",
            code=code,
            hint="The wizard retries.",
        )
    if code == "E0000011" or status == 401:
        return PermanentError(
            f"Okta did not accept the connection's credentials.{said}",
            code=code,
            hint="Edit the connection: paste a current API token (Security › API › Tokens; "
            "unused tokens expire after 30 days), or fix the service app's client ID and key.",
        )
    if code in ("E0000006", "E0000015") or status == 403:
        return PermanentError(
            f"The Okta admin behind the connection lacks a permission.{said}",
            code=code,
            hint="Create the API token as a Super Administrator (or an admin with the "
            "Application Administrator role and access to the users and groups), or grant the "
            f"service app the scopes {DEFAULT_SCOPES} and an admin role.",
        )
    if code == "E0000007" or status == 404:
        return PermanentError(
            f"Okta did not find the object.{said}",
            code=code,
            hint="Check the ID, login or name you typed.",
        )
    if status in (400, 409, 422):
        return PermanentError(
            f"Okta refused a value.{said}",
            code=code,
            hint="Change the value Okta names in its message, then retry.",
        )
    return PermanentError(f"The Okta call failed (HTTP {status}).{said}", code=code)


def _reset_wait(reset_header: str | None) -> tuple[float, str]:
    now = dt.datetime.now(dt.UTC)
    try:
        reset = dt.datetime.fromtimestamp(int(reset_header or ""), dt.UTC)
    except ValueError:
        reset = now + dt.timedelta(seconds=DEFAULT_RESET_WAIT_S)
    wait_s = max((reset - now).total_seconds(), 0.0)
    return wait_s, reset.strftime("%H:%M:%S UTC")
