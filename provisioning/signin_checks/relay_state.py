"""Reads a Connect relay state URL and works out the Connect page it federates into."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from django.utils.translation import gettext_noop

from provisioning.messages import Message
from provisioning.signin_checks.refusals import (
    RELAY_STATE_MISSING,
    RELAY_STATE_NOT_CONNECT,
    Cause,
    SignInRefused,
)

# https://<region>.console.aws.amazon.com/connect/federate/<instanceId>[?destination=...]
# (Amazon Connect Administrator Guide, "Configure SAML with IAM for Amazon Connect").
_CONSOLE_HOST = re.compile(r"(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.console\.aws\.amazon\.com")
_FEDERATE_PATH = re.compile(r"/connect/federate/(?P<instance_id>[0-9a-f-]{36})/?")
# Without a usable relay state the sign-in itself succeeds: AWS opens the console, with 200.
SIGNED_IN_TO_CONSOLE = HTTPStatus.OK
# Where Connect lands without ?destination=: the admin website.
DEFAULT_DESTINATION = "/connect/home"


@dataclass(frozen=True)
class ConnectRelayState:
    region: str
    instance_id: str
    destination: str  # a path on the instance's site, or an https URL (a custom CCP)

    def connect_url(self, instance_alias: str) -> str:
        """The page the browser ends on: the instance's own site, or a custom CCP's URL."""
        if self.destination.startswith("https://"):
            return self.destination
        return f"https://{instance_alias}.my.connect.aws{self.destination}"


def parse_relay_state(relay_state: str) -> ConnectRelayState:
    """Refuses what would leave the user in the AWS console instead of Amazon Connect."""
    if not relay_state.strip():
        raise SignInRefused(
            cause=Cause.RELAY_STATE_MISSING,
            check="relay_state",
            detail=Message(
                gettext_noop(
                    "the IdP posted no RelayState, so AWS opens the AWS console; set the IdP "
                    "app's relay state to %(url)s"
                ),
                {"url": "https://<region>.console.aws.amazon.com/connect/federate/<instance id>"},
            ),
            error=RELAY_STATE_MISSING,
            status=SIGNED_IN_TO_CONSOLE,
        )
    url = urlsplit(relay_state.strip())
    host = _CONSOLE_HOST.fullmatch(url.hostname or "")
    path = _FEDERATE_PATH.fullmatch(url.path)
    if url.scheme != "https" or host is None or path is None:
        raise SignInRefused(
            cause=Cause.RELAY_STATE_INVALID,
            check="relay_state",
            detail=Message(
                gettext_noop("relay state %(relay_state)s is not %(url)s"),
                {
                    "relay_state": repr(relay_state),
                    "url": "https://<region>.console.aws.amazon.com/connect/federate/"
                    "<instance id>[?destination=...]",
                },
            ),
            error=RELAY_STATE_NOT_CONNECT,
            status=SIGNED_IN_TO_CONSOLE,
        )
    destinations = parse_qs(url.query).get("destination", [])
    destination = destinations[0] if destinations else DEFAULT_DESTINATION
    if not (destination.startswith("/") or destination.startswith("https://")):
        raise SignInRefused(
            cause=Cause.RELAY_STATE_INVALID,
            check="relay_state",
            detail=Message(
                gettext_noop(
                    "destination %(destination)s is neither a path (/ccp-v2) nor an https URL"
                ),
                {"destination": repr(destination)},
            ),
            error=RELAY_STATE_NOT_CONNECT,
            status=SIGNED_IN_TO_CONSOLE,
        )
    return ConnectRelayState(
        region=host.group("region"),
        instance_id=path.group("instance_id"),
        destination=destination,
    )
