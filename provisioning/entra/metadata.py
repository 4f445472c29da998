"""Downloads an Entra app's SAML federation metadata from the tenant's own metadata URL, audited.

Live: `https://login.microsoftonline.com/{tenant}/federationmetadata/2007-06/federationmetadata.xml
?appid={appId}` (the app's "App Federation Metadata Url" in the Entra admin center); sandbox: the
same path on the sandbox's authority. The URL is built here from the connection's tenant and the
app's appId, never taken from an admin or a response, so the wizard can't be pointed at another
host.
"""

from __future__ import annotations

import re
import ssl
import uuid
from urllib.parse import quote

import certifi
import httpx

from provisioning.audit import AuditScope, audited_call
from provisioning.errors import PermanentError, RetryableError
from provisioning.models import Cloud, Connection
from provisioning.saml import MAX_METADATA_BYTES, without_byte_order_mark
from provisioning.sandbox_endpoints import sandbox_endpoints

LOGIN_AUTHORITY = "https://login.microsoftonline.com"
# A tenant is a GUID or a domain name (Entra's tenant ID formats).
TENANT = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
# Seconds for the metadata download (azure-identity's own connection timeout is 300 s; a metadata
# document is small).
METADATA_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def metadata_url(connection: Connection, app_id: str) -> str:
    """The tenant's federation metadata URL for this app (sandbox authority in sandbox mode)."""
    tenant = str(connection.config.get("tenant_id", "")).strip()
    if not TENANT.match(tenant):
        raise PermanentError(
            "The connection's tenant ID is not a GUID or a domain.",
            code="entra_bad_tenant",
            hint="Edit the connection: the Directory (tenant) ID is on the app registration's "
            "Overview page.",
        )
    uuid.UUID(app_id)  # an appId is a GUID; anything else is a bug upstream
    sandbox = sandbox_endpoints(connection)
    authority = sandbox["entra_authority"] if sandbox else LOGIN_AUTHORITY
    return (
        f"{authority}/{quote(tenant, safe='')}/federationmetadata/2007-06/"
        f"federationmetadata.xml?appid={app_id}"
    )


def download_federation_metadata(connection: Connection, app_id: str, *, audit: AuditScope) -> str:
    """The app's federation metadata XML (its current signing certificate in it)."""
    url = metadata_url(connection, app_id)
    sandbox = sandbox_endpoints(connection)
    tls = ssl.create_default_context(cafile=sandbox["ca_bundle"] if sandbox else certifi.where())

    def fetch() -> str:
        try:
            with (
                httpx.Client(verify=tls, timeout=METADATA_TIMEOUT, follow_redirects=False) as http,
                http.stream("GET", url, headers={"Accept": "application/xml"}) as response,
            ):
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_METADATA_BYTES:
                        raise PermanentError(
                            "Entra ID's federation metadata is larger than the wizard accepts.",
                            code="entra_metadata_too_large",
                        )
                status = response.status_code
        except httpx.HTTPError as exc:
            raise RetryableError(
                f"Entra ID's federation metadata could not be downloaded ({type(exc).__name__}).",
                code="entra_metadata_unreachable",
                hint="The wizard retries. If it keeps failing, check the worker's network access.",
            ) from exc
        if status >= 500 or status == 404:
            # A new app's metadata can lag behind its creation, like every Graph object.
            raise RetryableError(
                f"Entra ID did not serve the app's federation metadata yet (HTTP {status}).",
                code="entra_metadata_not_ready",
                hint="The wizard retries.",
            )
        if status != 200:
            raise PermanentError(
                f"Entra ID refused the federation metadata download (HTTP {status}).",
                code="entra_metadata_refused",
                hint="Check that the app exists in the connection's tenant.",
            )
        # Entra starts this document with a byte-order mark that IAM can't parse (saml.py).
        return without_byte_order_mark(body).decode("utf-8")

    return audited_call(
        audit,
        cloud=Cloud.ENTRA.value,
        service="login",
        operation="GET /federationmetadata/2007-06/federationmetadata.xml",
        request={"app_id": app_id},
        call=fetch,
        summarize=lambda text: {"bytes": len(text)},
    )
