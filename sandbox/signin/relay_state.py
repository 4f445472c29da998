"""The Connect relay state as AWS's console reads it: https://<region>.console.aws.amazon.com/
connect/federate/<instance id>[?destination=<path or https URL>] (Amazon Connect Administrator
Guide, "Configure SAML with IAM for Amazon Connect", relay state format and `destination`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sandbox.signin.refusals import (
    RELAY_STATE_MISSING,
    RELAY_STATE_NOT_CONNECT,
    SIGNED_IN_TO_CONSOLE,
    Cause,
    SignInRefused,
)

_CONSOLE_HOST = re.compile(r"(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.console\.aws\.amazon\.com")
_FEDERATE_PATH = re.compile(r"/connect/federate/(?P<instance_id>[0-9a-f-]{36})/?")
# Without ?destination= Connect opens the admin website.
HOME = "/connect/home"


@dataclass(frozen=True)
class RelayState:
    region: str
    instance_id: str
    destination: str

    def page(self, instance_alias: str) -> str:
        """Where the browser ends: a custom CCP's https URL, or a page of the instance's site."""
        if self.destination.startswith("https://"):
            return self.destination
        return f"https://{instance_alias}.my.connect.aws{self.destination}"


def read_relay_state(value: str) -> RelayState:
    """The Connect page the relay state federates into; refuses (with the console's 200) what
    leaves the user in the AWS console."""
    if not value.strip():
        raise SignInRefused(
            cause=Cause.RELAY_STATE_MISSING,
            check="relay_state",
            detail=(
                "the IdP posted no RelayState, so AWS opens the AWS console; set the IdP app's "
                "relay state to https://<region>.console.aws.amazon.com/connect/federate/"
                "<instance id>"
            ),
            error=RELAY_STATE_MISSING,
            status=SIGNED_IN_TO_CONSOLE,
        )
    url = urlsplit(value.strip())
    host = _CONSOLE_HOST.fullmatch(url.hostname or "")
    path = _FEDERATE_PATH.fullmatch(url.path)
    destination = (parse_qs(url.query).get("destination") or [HOME])[0]
    if (
        url.scheme != "https"
        or host is None
        or path is None
        or not destination.startswith(("/", "https://"))
    ):
        raise SignInRefused(
            cause=Cause.RELAY_STATE_INVALID,
            check="relay_state",
            detail=(
                f"relay state {value!r} is not https://<region>.console.aws.amazon.com/connect/"
                "federate/<instance id>[?destination=<path or https URL>]"
            ),
            error=RELAY_STATE_NOT_CONNECT,
            status=SIGNED_IN_TO_CONSOLE,
        )
    return RelayState(host["region"], path["instance_id"], destination)
