"""Checks an Okta org URL: an Okta org domain in live mode, the sandbox's URL in sandbox mode."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from provisioning.errors import PermanentError

# Okta's own org domains, as the Okta SDK's config validator lists them (okta/config/
# config_validator.py): commercial, preview, EMEA, US government and military cells.
OKTA_DOMAINS = ("okta.com", "oktapreview.com", "okta-emea.com", "okta-gov.com", "okta.mil")
_ORG_HOST = re.compile(
    r"^(?P<org>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.(?P<domain>"
    + "|".join(re.escape(domain) for domain in OKTA_DOMAINS)
    + r")$"
)


def validate_okta_org_url(url: str, *, sandbox_org_url: str | None = None) -> str:
    """The org URL as https://<host>, or PermanentError saying what to type instead.

    Live mode accepts only https://<org>.<Okta domain>: no user name or password, no port, no
    path, query or fragment, no IP address, no custom domain. In sandbox mode (sandbox_org_url
    given) only the sandbox's own URL is accepted.
    """
    value = url.strip()
    if sandbox_org_url is not None:
        if value.rstrip("/") != sandbox_org_url.rstrip("/"):
            raise _bad_url(f"In sandbox mode the Okta org URL is {sandbox_org_url}.")
        return sandbox_org_url.rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _bad_url("This is not a valid URL.") from None
    if parts.scheme != "https":
        raise _bad_url("The org URL must start with https://.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _bad_url("The org URL must not contain a user name or password.")
    if port is not None:
        raise _bad_url("The org URL must not contain a port.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad_url("Type only the org's address, without a path, “?” or “#”.")
    host = (parts.hostname or "").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise _bad_url("The org URL must be an Okta domain, not an IP address.")
    if parts.netloc.lower() != host:
        raise _bad_url("The org URL's host is not valid.")
    match = _ORG_HOST.match(host)
    if match is None:
        raise _bad_url(
            "The host is not an Okta org domain ("
            + ", ".join(f"*.{d}" for d in OKTA_DOMAINS)
            + "). Custom domains are not accepted in this version: use the org's Okta address."
        )
    if match.group("org").endswith("-admin"):
        raise _bad_url(
            f"Use the org URL without “-admin”: https://{match.group('org')[:-6]}."
            f"{match.group('domain')}."
        )
    return f"https://{host}"


def _bad_url(message: str) -> PermanentError:
    return PermanentError(
        message,
        code="okta_bad_org_url",
        hint="Copy the org URL from the Okta Admin Console (top right, under your name), e.g. "
        "https://example.okta.com.",
    )
