"""The sandbox's CloudTrail event history: the sign-in endpoint records the AssumeRoleWithSAML and
Connect GetFederationToken events a sign-in makes, and LookupEvents answers for them, shaped by
botocore's cloudtrail model (2013-11-01).

Sources: the LookupEvents API reference and botocore's model (one lookup attribute, MaxResults
1-50 with 50 the default, NextToken tied to the same parameters, "two per second, per account,
per Region"); the IAM user guide, "Logging IAM and AWS STS API calls with AWS CloudTrail",
"Example SAML AWS STS API event in CloudTrail log file" (the record's fields, userIdentity type
SAMLUser, resources AWS::IAM::Role and AWS::IAM::SAMLProvider); the CloudTrail user guide,
"CloudTrail record contents" (errorCode, errorMessage on a failed call).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.aws.wire import ApiError

# LookupEvents' MaxResults bounds and default (botocore: MaxResults min 1, max 50; "The default
# number of results returned is 50").
MAX_RESULTS = 50
LOOKUP_KEYS = {
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
}
STS_SOURCE = "sts.amazonaws.com"
CONNECT_SOURCE = "connect.amazonaws.com"


@dataclass(frozen=True)
class TrailEvent:
    """One management event as CloudTrail keeps it, and when LookupEvents may first show it."""

    event_id: str
    event_name: str
    event_source: str
    event_time: dt.datetime
    username: str
    access_key_id: str
    read_only: bool
    resources: tuple[tuple[str, str], ...]  # (type, name)
    record: dict[str, Any]
    visible_at: dt.datetime

    def attribute(self, key: str) -> list[str]:
        """The values a LookupAttribute `key` matches this event on."""
        if key == "ResourceType":
            return [kind for kind, _ in self.resources]
        if key == "ResourceName":
            return [name for _, name in self.resources]
        return [
            {
                "EventId": self.event_id,
                "EventName": self.event_name,
                "ReadOnly": "true" if self.read_only else "false",
                "Username": self.username,
                "EventSource": self.event_source,
                "AccessKeyId": self.access_key_id,
            }[key]
        ]

    def as_lookup_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
            "EventTime": self.event_time.timestamp(),
            "EventSource": self.event_source,
            "Username": self.username,
            "Resources": [
                {"ResourceType": kind, "ResourceName": name} for kind, name in self.resources
            ],
            "CloudTrailEvent": json.dumps(self.record),
        }
        if self.access_key_id:
            event["AccessKeyId"] = self.access_key_id
        return event


def name_qualifier(issuer: str, account_id: str, provider_arn: str) -> str:
    """STS's NameQualifier (botocore's sts model, AssumeRoleWithSAMLResponse.NameQualifier:
    BASE64 ( SHA1 ( issuer + account id + "/" + provider's friendly name ) ))."""
    name = provider_arn.rsplit("/", 1)[-1]
    digest = hashlib.sha1(f"{issuer}{account_id}/{name}".encode(), usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode()


@dataclass
class SignInAttempt:
    """What the sign-in endpoint knows of one attempt, for the events it leads to."""

    region: str
    account_id: str
    role_arn: str
    provider_arn: str
    subject: str
    issuer: str
    role_session_name: str
    source_ip: str = "127.0.0.1"
    user_agent: str = "Mozilla/5.0 (sandbox sign-in)"


@dataclass
class CloudTrail:
    """The account's event history, every region's, in memory. `delivery_delay_s` says how long
    after a call its event stays out of LookupEvents' answers."""

    delivery_delay_s: Callable[[], float]
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    _events: dict[str, list[TrailEvent]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _add(
        self,
        region: str,
        *,
        event_name: str,
        event_source: str,
        username: str,
        resources: tuple[tuple[str, str], ...],
        record: dict[str, Any],
        access_key_id: str = "",
    ) -> TrailEvent:
        now = self.clock()
        event_id = str(uuid.uuid4())
        record = {
            "eventVersion": "1.08",
            **record,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": region,
            "requestID": str(uuid.uuid4()),
            "eventID": event_id,
            "readOnly": True,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "eventCategory": "Management",
        }
        if resources:
            record["resources"] = [
                {"accountId": record.get("recipientAccountId", ""), "type": kind, "ARN": name}
                for kind, name in resources
            ]
        event = TrailEvent(
            event_id=event_id,
            event_name=event_name,
            event_source=event_source,
            event_time=now,
            username=username,
            access_key_id=access_key_id,
            read_only=True,
            resources=resources,
            record=record,
            visible_at=now + dt.timedelta(seconds=max(0.0, self.delivery_delay_s())),
        )
        with self._lock:
            self._events.setdefault(region, []).append(event)
        return event

    def assume_role_with_saml(
        self,
        attempt: SignInAttempt,
        *,
        error: tuple[str, str] | None = None,
        assumed_role_arn: str = "",
        access_key_id: str = "",
    ) -> TrailEvent:
        """The STS event of a console SAML sign-in; `error` (errorCode, errorMessage) if STS
        refused it."""
        qualifier = name_qualifier(attempt.issuer, attempt.account_id, attempt.provider_arn)
        record: dict[str, Any] = {
            "userIdentity": {
                "type": "SAMLUser",
                "principalId": f"{qualifier}:{attempt.subject}",
                "userName": attempt.subject,
                "identityProvider": qualifier,
            },
            "sourceIPAddress": attempt.source_ip,
            "userAgent": attempt.user_agent,
            "requestParameters": {
                "roleArn": attempt.role_arn,
                "principalArn": attempt.provider_arn,
                **({"roleSessionName": attempt.role_session_name} if not error else {}),
            },
            "responseElements": None,
            "recipientAccountId": attempt.account_id,
        }
        if error:
            record["errorCode"], record["errorMessage"] = error
        else:
            record["responseElements"] = {
                "credentials": {"accessKeyId": access_key_id, "sessionToken": "<sandbox>"},
                "assumedRoleUser": {
                    "assumedRoleId": f"AROASANDBOX:{attempt.role_session_name}",
                    "arn": assumed_role_arn,
                },
                "subject": attempt.subject,
                "issuer": attempt.issuer,
                "nameQualifier": qualifier,
            }
        return self._add(
            attempt.region,
            event_name="AssumeRoleWithSAML",
            event_source=STS_SOURCE,
            username=attempt.subject,
            resources=(
                ("AWS::IAM::Role", attempt.role_arn),
                ("AWS::IAM::SAMLProvider", attempt.provider_arn),
            ),
            record=record,
        )

    def get_federation_token(
        self,
        attempt: SignInAttempt,
        *,
        instance_id: str,
        region: str,
        assumed_role_arn: str,
        access_key_id: str = "",
        error: tuple[str, str] | None = None,
    ) -> TrailEvent:
        """Connect's event for the console's federation call, made with the assumed role's
        credentials (userIdentity type AssumedRole, as for any call by a role session: CloudTrail
        user guide, "CloudTrail userIdentity element"). Connect's CloudTrail page publishes no
        resources for it, so the sandbox records none."""
        role_name = attempt.role_arn.rsplit("/", 1)[-1]
        record: dict[str, Any] = {
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROASANDBOX:{attempt.role_session_name}",
                "arn": assumed_role_arn,
                "accountId": attempt.account_id,
                "accessKeyId": access_key_id,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": "AROASANDBOX",
                        "arn": attempt.role_arn,
                        "accountId": attempt.account_id,
                        "userName": role_name,
                    }
                },
            },
            "sourceIPAddress": attempt.source_ip,
            "userAgent": attempt.user_agent,
            "requestParameters": {"InstanceId": instance_id},
            "responseElements": None,
            "recipientAccountId": attempt.account_id,
        }
        if error:
            record["errorCode"], record["errorMessage"] = error
        return self._add(
            region,
            event_name="GetFederationToken",
            event_source=CONNECT_SOURCE,
            username=attempt.role_session_name,
            resources=(),
            record=record,
            access_key_id=access_key_id,
        )

    def lookup_events(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        """LookupEvents, answered as CloudTrail does, newest first."""
        attributes = params.get("LookupAttributes") or []
        if len(attributes) > 1:
            # "Currently the list can contain only one item" (botocore, LookupAttributes).
            raise ApiError(
                "InvalidLookupAttributesException",
                "You cannot specify more than one lookup attribute.",
            )
        for attribute in attributes:
            if attribute.get("AttributeKey") not in LOOKUP_KEYS:
                raise ApiError(
                    "InvalidLookupAttributesException",
                    f"{attribute.get('AttributeKey')} is not a valid lookup attribute key.",
                )
        limit = int(params.get("MaxResults") or MAX_RESULTS)
        if not 1 <= limit <= MAX_RESULTS:
            raise ApiError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
        start = _instant(params.get("StartTime"))
        end = _instant(params.get("EndTime"))
        if start and end and start > end:
            raise ApiError("InvalidTimeRangeException", "StartTime is after EndTime.")
        fingerprint = hashlib.sha256(
            json.dumps([attributes, params.get("StartTime"), params.get("EndTime")]).encode()
        ).hexdigest()[:16]
        offset = _offset(params.get("NextToken"), fingerprint)
        now = self.clock()
        with self._lock:
            events = list(self._events.get(region, []))
        matching = [
            event
            for event in reversed(events)
            if event.visible_at <= now
            and (start is None or event.event_time >= start)
            and (end is None or event.event_time <= end)
            and all(
                str(attribute.get("AttributeValue", ""))
                in event.attribute(attribute["AttributeKey"])
                for attribute in attributes
            )
        ]
        page = matching[offset : offset + limit]
        result: dict[str, Any] = {"Events": [event.as_lookup_event() for event in page]}
        if offset + limit < len(matching):
            token = json.dumps({"o": offset + limit, "f": fingerprint}).encode()
            result["NextToken"] = base64.urlsafe_b64encode(token).decode()
        return result


def _instant(value: Any) -> dt.datetime | None:
    """botocore sends a json-protocol timestamp as epoch seconds."""
    if value in (None, ""):
        return None
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (TypeError, ValueError) as error:
        raise ApiError("InvalidTimeRangeException", f"{value!r} is not a time.") from error


def _offset(token: str | None, fingerprint: str) -> int:
    """A NextToken "must be passed in with the same parameters that were specified in the
    original call" (botocore, LookupEvents.NextToken)."""
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["f"] != fingerprint:
            raise ValueError("other parameters")
        return int(decoded["o"])
    except (ValueError, KeyError, TypeError) as error:
        raise ApiError(
            "InvalidNextTokenException", "The token is not valid for these parameters."
        ) from error
