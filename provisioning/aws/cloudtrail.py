"""Finds one person's sign-in in CloudTrail's event history (LookupEvents): STS's
AssumeRoleWithSAML on the federation role, then Amazon Connect's GetFederationToken on the
instance, and says how far it got and which link of the chain refused it.

Where the events land: STS's in the region of the sign-in endpoint the IdP posts to, the global
one's in us-east-1 (IAM user guide, "Logging IAM and AWS STS API calls with AWS CloudTrail");
Connect's in the instance's region. How they look: the same guide's "Example SAML AWS STS API
event in CloudTrail log file", and the CloudTrail user guide's "CloudTrail record contents"
(errorCode and errorMessage on a refused call). Every lookup is an audited call through
aws_client, taking its turn in the shared bucket of LookupEvents (2 per second per account and
region, provisioning/aws/api_quotas.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from provisioning.aws.client import AwsSdkProxy

# "CloudTrail typically delivers logs within an average of about 5 minutes of an API call. This
# time is not guaranteed." (CloudTrail user guide, "Getting and viewing your CloudTrail log
# files"). The watch page says so.
TYPICAL_DELIVERY_MINUTES = 5
ASSUME_ROLE_EVENT = "AssumeRoleWithSAML"
FEDERATION_EVENT = "GetFederationToken"
# Where requests to STS's global endpoint are logged (IAM user guide, as above).
GLOBAL_EVENTS_REGION = "us-east-1"
# LookupEvents returns at most 50 events a page (botocore, LookupEvents.MaxResults); a watch reads
# at most this many pages of one event name per look, newest first, so a busy account costs a
# bounded number of calls per poll.
MAX_RESULTS = 50
MAX_PAGES_PER_LOOK = 4

# STS's refusals -> the link of the chain to fix (the sign-in test's links,
# provisioning/steps/sign_in_test.py). AccessDenied: the role does not trust the provider for
# this audience, or no such role; the others: the response itself (IAM user guide,
# "Troubleshoot SAML federation with IAM").
ASSUME_ROLE_LINKS = {
    "AccessDenied": "role_trust",
    "InvalidIdentityToken": "claims",
    "IDPRejectedClaim": "claims",
    "ExpiredTokenException": "claims",
    "ValidationError": "claims",
    "AuthSamlInvalidSamlResponseException": "iam_provider",
}
# STS words these InvalidIdentityToken refusals so that the IAM provider is the link to fix.
PROVIDER_MESSAGES = ("provider", "signature")
# Connect's GetFederationToken errors (botocore's connect model) -> the link to fix.
FEDERATION_LINKS = {
    "UserNotFoundException": "connect_user",
    "AccessDeniedException": "policy",
    "AccessDenied": "policy",
    "ResourceNotFoundException": "connect_instance",
    "InvalidParameterException": "connect_instance",
    "InvalidRequestException": "user_binding",
}


@dataclass(frozen=True)
class WatchedSignIn:
    """The sign-in to look for: through this role, into this instance, as this RoleSessionName
    (the Connect username), from `since` on."""

    role_arn: str
    instance_id: str
    instance_region: str
    role_session_name: str
    since: dt.datetime
    # The person's sign-in name at the IdP, which is usually the assertion's NameID: a refused
    # AssumeRoleWithSAML may carry no session name, only the subject (userIdentity.userName).
    login: str = ""

    @property
    def sts_regions(self) -> tuple[str, ...]:
        """A regional sign-in endpoint logs in its region, the global one in us-east-1; the
        wizard cannot tell which one the IdP posts to, so it looks in both."""
        return tuple(dict.fromkeys((GLOBAL_EVENTS_REGION, self.instance_region)))

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SeenEvent:
    """One event of the sign-in: which call, whether it was refused and why, and the link of the
    chain a refusal names ("" when the call went through)."""

    event_name: str
    event_id: str
    event_time: str
    region: str
    username: str
    error_code: str = ""
    error_message: str = ""
    link: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_code

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignInTrail:
    """What CloudTrail shows of the sign-in so far."""

    assume_role: SeenEvent | None
    federation: SeenEvent | None

    @property
    def finished(self) -> bool:
        """Connect answered, or STS refused (no Connect call follows a refusal)."""
        return self.federation is not None or (
            self.assume_role is not None and not self.assume_role.ok
        )

    @property
    def signed_in(self) -> bool:
        return self.federation is not None and self.federation.ok

    @property
    def refusal(self) -> SeenEvent | None:
        for event in (self.assume_role, self.federation):
            if event is not None and not event.ok:
                return event
        return None


def _pages(client: AwsSdkProxy, event_name: str, since: dt.datetime) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event_name}],
        "StartTime": since,
        "MaxResults": MAX_RESULTS,
    }
    for _ in range(MAX_PAGES_PER_LOOK):
        page = client.lookup_events(**params)
        yield from page.get("Events", [])
        if not page.get("NextToken"):
            return
        params["NextToken"] = page["NextToken"]


def _record(event: dict[str, Any]) -> dict[str, Any]:
    try:
        record = json.loads(event.get("CloudTrailEvent") or "{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _seen(event: dict[str, Any], record: dict[str, Any], region: str, link: str) -> SeenEvent:
    when = event.get("EventTime")
    return SeenEvent(
        event_name=str(event.get("EventName", "")),
        event_id=str(event.get("EventId", "")),
        event_time=when.isoformat() if isinstance(when, dt.datetime) else str(when or ""),
        region=region,
        username=str(event.get("Username", "")),
        error_code=str(record.get("errorCode") or ""),
        error_message=str(record.get("errorMessage") or ""),
        link=link,
    )


def assume_role_link(code: str, message: str) -> str:
    link = ASSUME_ROLE_LINKS.get(code, "claims")
    if code == "InvalidIdentityToken" and any(w in message.lower() for w in PROVIDER_MESSAGES):
        return "iam_provider"
    return link


def _assume_role(client: AwsSdkProxy, watched: WatchedSignIn, region: str) -> SeenEvent | None:
    """The newest AssumeRoleWithSAML on the role for this session name. A refused call may carry
    no session name (STS refused the response that holds it): it counts when its subject is the
    person's session name or sign-in name."""
    for event in _pages(client, ASSUME_ROLE_EVENT, watched.since):
        record = _record(event)
        parameters = record.get("requestParameters") or {}
        if parameters.get("roleArn") != watched.role_arn:
            continue
        session = parameters.get("roleSessionName")
        subject = (record.get("userIdentity") or {}).get("userName")
        if session is None:
            if subject not in {watched.role_session_name, watched.login or None}:
                continue
        elif session != watched.role_session_name:
            continue
        code = str(record.get("errorCode") or "")
        link = assume_role_link(code, str(record.get("errorMessage") or "")) if code else ""
        return _seen(event, record, region, link)
    return None


def _federation(client: AwsSdkProxy, watched: WatchedSignIn) -> SeenEvent | None:
    """The newest GetFederationToken on the instance by this role session."""
    caller = f"assumed-role/{watched.role_name}/{watched.role_session_name}"
    for event in _pages(client, FEDERATION_EVENT, watched.since):
        record = _record(event)
        parameters = record.get("requestParameters") or {}
        if parameters.get("InstanceId") != watched.instance_id:
            continue
        if not str((record.get("userIdentity") or {}).get("arn", "")).endswith(caller):
            continue
        code = str(record.get("errorCode") or "")
        link = FEDERATION_LINKS.get(code, "connect_instance") if code else ""
        return _seen(event, record, watched.instance_region, link)
    return None


def look_for_sign_in(
    cloudtrail: Callable[[str], AwsSdkProxy], watched: WatchedSignIn
) -> SignInTrail:
    """One look: STS's event in each region it may be logged in, and Connect's, newest first.
    `cloudtrail(region)` gives an audited, rate-limited CloudTrail client for the region."""
    federation = _federation(cloudtrail(watched.instance_region), watched)
    assume_role = None
    for region in watched.sts_regions:
        assume_role = _assume_role(cloudtrail(region), watched, region)
        if assume_role is not None:
            break
    return SignInTrail(assume_role=assume_role, federation=federation)
