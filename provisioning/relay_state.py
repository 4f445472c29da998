"""Builds the relay state URL that takes a signed-in user into Amazon Connect, and the form field
the IdP steps use to ask where they should land.

The URL is `https://<region>.console.aws.amazon.com/connect/federate/<instanceId>` with an optional
`?destination=<url-encoded path or URL>` (Amazon Connect Administrator Guide, "Configure SAML
with IAM for Amazon Connect"). Without it users land in the AWS console,
not in Connect. AWS GovCloud (US) has its own console host, without the region in it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import quote, urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.messages import Message

# Where users land: a path on the instance's own site, by the admin's name for it.
ADMIN_SITE = "admin_site"
CCP = "ccp"
AGENT_WORKSPACE = "agent_workspace"
CUSTOM_CCP = "custom_ccp"
DESTINATION_PATHS = {
    ADMIN_SITE: "/connect/home",
    CCP: "/ccp-v2",
    AGENT_WORKSPACE: "/agent-app-v2",
}
DESTINATION_CHOICES = [
    (ADMIN_SITE, _("Amazon Connect admin website")),
    (CCP, _("Contact Control Panel (CCP)")),
    (AGENT_WORKSPACE, _("Agent workspace")),
    (CUSTOM_CCP, _("A custom CCP at your own https address")),
]
DEFAULT_DESTINATION = CCP
# The console host of the aws-us-gov partition ("AWS GovCloud (US) console endpoints").
GOVCLOUD_CONSOLE_HOST = "console.amazonaws-us-gov.com"
# A repair (provisioning/federation_check/repair.py) whose check found the relay state working
# sets this input: the IdP app keeps its relay state exactly as it is (made by hand, it may lead
# to another destination or encode it another way), never rewritten in the wizard's form.
KEEP_RELAY_STATE = "keep_relay_state"
GOVCLOUD_REGION = re.compile(r"^us-gov-[a-z]+-\d+$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
INSTANCE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# RFC 1035: a hostname is at most 253 characters of dot-separated labels.
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
APPROVED_ORIGINS_REMINDER = _(
    "Add {origin} to the instance's approved origins (Amazon Connect console › your instance › "
    "Approved origins), or the custom CCP can't embed Connect."
)


class RelayStateError(ValueError):
    """The destination can't be used; the message says what to type instead. `message` is kept
    as an id and parameters, for an error stored with a step to read in its reader's language."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message.render()


def console_host(region: str) -> str:
    if GOVCLOUD_REGION.match(region):
        return GOVCLOUD_CONSOLE_HOST
    return f"{region}.console.aws.amazon.com"


def check_custom_ccp_url(url: str) -> str:
    """The custom CCP's URL, checked: https, a hostname (not an IP address), no user or password.
    Raises RelayStateError with what to change."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise RelayStateError(
            Message(gettext_noop("The custom CCP's address must start with https://."))
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise RelayStateError(
            Message(
                gettext_noop("The custom CCP's address must not contain a user name or password.")
            )
        )
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        is_ip = False
    else:
        is_ip = True
    if is_ip or not HOSTNAME.match(host):
        raise RelayStateError(
            Message(
                gettext_noop(
                    "The custom CCP's address needs a host name, like https://ccp.example.com/."
                )
            )
        )
    return url


def custom_ccp_origin(url: str) -> str:
    """The origin to add to the instance's approved origins for a custom CCP URL."""
    parts = urlsplit(url)
    return f"https://{parts.netloc}"


def build_relay_state_url(
    region: str, instance_id: str, destination: str, custom_url: str = ""
) -> str:
    """The relay state for the instance: `destination` is one of DESTINATION_PATHS' keys, or
    CUSTOM_CCP with `custom_url` (or an https URL given as the destination itself)."""
    if not REGION.match(region):
        raise RelayStateError(
            Message(gettext_noop("“%(region)s” is not an AWS Region code."), {"region": region})
        )
    if not INSTANCE_ID.match(instance_id):
        raise RelayStateError(
            Message(
                gettext_noop("“%(instance)s” is not an Amazon Connect instance ID."),
                {"instance": instance_id},
            )
        )
    base = f"https://{console_host(region)}/connect/federate/{instance_id}"
    if destination in DESTINATION_PATHS:
        target = DESTINATION_PATHS[destination]
    elif destination == CUSTOM_CCP or destination.startswith("https://"):
        target = check_custom_ccp_url(custom_url or destination)
    else:
        raise RelayStateError(
            Message(
                gettext_noop("Unknown destination “%(destination)s”."), {"destination": destination}
            )
        )
    return f"{base}?destination={quote(target, safe='')}"


class RelayStateFields(forms.Form):
    """The destination question, for an IdP step's form to inherit (Entra claims, Okta app)."""

    destination = forms.ChoiceField(
        label=_("Where users land after signing in"),
        choices=DESTINATION_CHOICES,
        initial=DEFAULT_DESTINATION,
        widget=forms.RadioSelect,
    )
    custom_ccp_url = forms.CharField(
        label=_("Custom CCP address (https)"),
        required=False,
        help_text=_("Only for a custom CCP. Add its origin to the instance's approved origins."),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("destination") == CUSTOM_CCP:
            try:
                cleaned["custom_ccp_url"] = check_custom_ccp_url(
                    str(cleaned.get("custom_ccp_url") or "")
                )
            except RelayStateError as error:
                self.add_error("custom_ccp_url", ValidationError(str(error)))
        else:
            cleaned["custom_ccp_url"] = ""
        return cleaned


def relay_state_warnings(destination: str, custom_url: str) -> list[str]:
    """What the admin must still do by hand for this destination (the approved origin)."""
    if destination != CUSTOM_CCP or not custom_url:
        return []
    return [str(APPROVED_ORIGINS_REMINDER).format(origin=custom_ccp_origin(custom_url))]
