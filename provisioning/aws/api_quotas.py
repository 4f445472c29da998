"""Says how fast each rate-limited AWS API may be called for an account and region, and which shared
bucket its calls take turns in: the rate from Service Quotas where the account has one, else AWS's
documented default.

AWS throttles per account and region, not per instance or IAM user, so the bucket key is
`aws:<account>:<region>:<service>:<Operation>`. The lookups (STS GetCallerIdentity for the account,
Service Quotas ListServiceQuotas for the rates) are ordinary audited calls made with the caller's
connection, region and audit scope, but are not rate limited themselves: a lookup waiting for a
turn in the bucket it is sizing could never start.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings

from provisioning.errors import PermanentError, RetryableError
from provisioning.models import Connection
from provisioning.ratelimit import Rate

logger = logging.getLogger(__name__)

DOCUMENTED = "documented"
SERVICE_QUOTAS = "service_quotas"
# How Service Quotas names an API's rate quota, e.g. "Rate of CreateUser API requests". The codes
# of these quotas are not published, so the wizard matches by name.
RATE_QUOTA_NAME = re.compile(r"^rate of (?P<operation>\w+) api requests$", re.IGNORECASE)

# One audited call that no bucket limits, with errors already the project's:
# (service, client method, parameters) -> response. aws_client() supplies it.
Lookup = Callable[[str, str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ServiceRates:
    """A service's documented API rates: the first matching operation pattern's, else the rate of
    "all other operations"; and the service's code in Service Quotas ("" when its rates are fixed
    and Service Quotas has nothing to say)."""

    quota_service_code: str
    operations: tuple[tuple[str, Rate], ...]
    other_operations: Rate

    def documented(self, operation: str) -> Rate:
        for pattern, rate in self.operations:
            if fnmatchcase(operation, pattern):
                return rate
        return self.other_operations


# Amazon Connect admin guide, "Amazon Connect API throttling quotas" (per account and region;
# https://docs.aws.amazon.com/connect/latest/adminguide/amazon-connect-service-limits.html).
# Requests per second, burst.
_CONNECT_USER_WRITES = Rate(2, 5, DOCUMENTED)
_CONNECT_READS = Rate(10, 15, DOCUMENTED)
# Services whose calls take turns in a shared bucket; the others rely on botocore's retries only.
RATE_LIMITED_SERVICES: dict[str, ServiceRates] = {
    "connect": ServiceRates(
        quota_service_code="connect",
        operations=(
            ("CreateUser", _CONNECT_USER_WRITES),
            ("SearchUsers", _CONNECT_USER_WRITES),
            ("UpdateUser*", _CONNECT_USER_WRITES),
            ("ListSecurityProfiles", _CONNECT_USER_WRITES),
            ("DeleteUser", _CONNECT_USER_WRITES),
            ("ListUsers", _CONNECT_READS),
            ("DescribeUser", _CONNECT_READS),
            ("ListRoutingProfiles", _CONNECT_READS),
            ("CreateInstance", Rate(0.1, 1, DOCUMENTED)),
        ),
        other_operations=Rate(2, 5, DOCUMENTED),
    ),
    # CloudTrail API reference, LookupEvents: "The rate of lookup requests is limited to two per
    # second, per account, per Region": a fixed limit, not a quota to raise, so Service Quotas is
    # not asked. No burst is published, so none beyond the rate. The wizard calls no other
    # CloudTrail operation; they get the same.
    "cloudtrail": ServiceRates(
        quota_service_code="",
        operations=(("LookupEvents", Rate(2, 2, DOCUMENTED)),),
        other_operations=Rate(2, 2, DOCUMENTED),
    ),
}


@dataclass(frozen=True)
class _QuotaRates:
    """An account's rate quotas in one region and service: lower-case operation -> per second."""

    per_second: dict[str, float]
    read_at: float


_accounts: dict[tuple[int, datetime.datetime], str] = {}
_quota_rates: dict[tuple[str, str, str], _QuotaRates] = {}
# One lookup at a time per process: threads of a bulk job that start together wait for the first
# one's answer instead of all asking Service Quotas at once.
_lookup_lock = threading.Lock()
# Keyed by the AwsSdkProxy aws_client() returns.
_limits_by_client: weakref.WeakKeyDictionary[Any, ApiLimits] = weakref.WeakKeyDictionary()


def rate_limited(service: str) -> bool:
    return service in RATE_LIMITED_SERVICES


def api_rate(client: Any, operation: str) -> Rate:
    """The rate `operation` runs at through `client` (one aws_client() made for a rate-limited
    service), e.g. to show "quota 2/s" and estimate the time left."""
    limits = _limits_by_client.get(client)
    if limits is None:
        raise ValueError(f"{client.meta.service_model.service_name} calls are not rate limited")
    return limits.rate(operation)


def forget_api_quotas() -> None:
    """Forget what this process looked up, so the next call reads its account's rates again
    (after a rate increase is approved; tests that change what the sandbox reports)."""
    with _lookup_lock:
        _quota_rates.clear()
        _accounts.clear()


class ApiLimits:
    """The rates and bucket keys of one client's operations, for its connection's account and
    region."""

    def __init__(
        self,
        connection: Connection,
        *,
        service: str,
        region: str,
        sandbox: dict[str, Any] | None,
        lookup: Lookup,
    ) -> None:
        self.connection = connection
        self.service = service
        self.service_rates = RATE_LIMITED_SERVICES[service]
        self.region = region
        self.sandbox = sandbox
        self.lookup = lookup

    def attach(self, client: Any) -> None:
        """Make these the limits `api_rate` reports for `client`."""
        _limits_by_client[client] = self

    def bucket_key(self, operation: str) -> str:
        return f"aws:{self.account()}:{self.region}:{self.service}:{operation}"

    def rate(self, operation: str) -> Rate:
        documented = self.service_rates.documented(operation)
        if not self.service_rates.quota_service_code:
            return documented
        per_second = self._quota_rates().get(operation.lower())
        if per_second is None:
            return documented
        # Service Quotas gives the steady rate only; the burst stays the documented one.
        return Rate(per_second, documented.burst, SERVICE_QUOTAS)

    def account(self) -> str:
        """The connection's AWS account: the sandbox's, or STS's answer, once per process and
        connection version (an edited connection may point at another account)."""
        if self.sandbox is not None and self.sandbox.get("aws_account_id"):
            return str(self.sandbox["aws_account_id"])
        if self.connection.pk is None:
            # Not saved yet, so nothing to remember it by.
            return self._caller_account()
        key = (self.connection.pk, self.connection.updated_at)
        with _lookup_lock:
            if key not in _accounts:
                _accounts[key] = self._caller_account()
            return _accounts[key]

    def _caller_account(self) -> str:
        return str(self.lookup("sts", "get_caller_identity", {})["Account"])

    def _quota_rates(self) -> dict[str, float]:
        key = (self.account(), self.region, self.service_rates.quota_service_code)
        with _lookup_lock:
            cached = _quota_rates.get(key)
            # The age against the setting now, so a shorter cache time applies at once.
            if (
                cached is None
                or time.monotonic() - cached.read_at >= settings.WIZARD_API_QUOTA_CACHE_S
            ):
                cached = _QuotaRates(per_second=self._read_quota_rates(), read_at=time.monotonic())
                _quota_rates[key] = cached
            return cached.per_second

    def _read_quota_rates(self) -> dict[str, float]:
        """The account's "Rate of <Operation> API requests" quotas; none when Service Quotas
        can't say, so every operation runs at its documented rate. A refusal (no permission, the
        service not offered in the region) is expected and silent; a throttled or failing lookup
        is logged, but never fails the caller's call, and the documented rates are kept until the
        cache expires (AWS's defaults, which quota increases only raise)."""
        per_second: dict[str, float] = {}
        params: dict[str, Any] = {"ServiceCode": self.service_rates.quota_service_code}
        try:
            while True:
                page = self.lookup("service-quotas", "list_service_quotas", params)
                for quota in page.get("Quotas", []):
                    match = RATE_QUOTA_NAME.match(quota.get("QuotaName", ""))
                    if match and float(quota.get("Value", 0)) > 0:
                        per_second[match["operation"].lower()] = float(quota["Value"])
                if not page.get("NextToken"):
                    return per_second
                params["NextToken"] = page["NextToken"]
        except PermanentError:
            return {}
        except RetryableError as error:
            logger.info(
                "Service Quotas did not give the API rates of %s in %s (%s); using AWS's "
                "documented rates.",
                self.service,
                self.region,
                error.message,
            )
            return {}
