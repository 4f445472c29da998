"""Service Quotas for Amazon Connect: quota values (the knobs' API rates among them) and increase
requests that get approved."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from sandbox.aws.wire import ApiError
from sandbox.knobs import Knobs

SERVICE_CODE = "connect"
SERVICE_NAME = "Amazon Connect"
# Real Service Quotas codes of Amazon Connect (console links in the Connect admin guide's
# "Amazon Connect service quotas" page) and their published AWS defaults.
PHONE_NUMBERS_PER_INSTANCE = "L-8F812903"
CONCURRENT_ACTIVE_CALLS_PER_INSTANCE = "L-12AB7C57"
USERS_PER_INSTANCE = "L-9A46857E"
# The defaults a new account starts with, from "Connect Customer service quotas"
# (https://docs.aws.amazon.com/connect/latest/adminguide/amazon-connect-service-limits.html):
# phone numbers per instance 5 (the guide's older editions, awsdocs/amazon-connect-administrator-
# guide, said 10), concurrent active calls per instance 10, users per instance 500.
DEFAULT_PHONE_NUMBERS_PER_INSTANCE = 5
DEFAULT_CONCURRENT_ACTIVE_CALLS_PER_INSTANCE = 10
DEFAULT_USERS_PER_INSTANCE = 500


@dataclass(frozen=True)
class QuotaDefinition:
    code: str
    name: str
    # What a new account starts with (GetAWSDefaultServiceQuota, and GetServiceQuota until an
    # increase is approved).
    aws_default: float


CONNECT_QUOTAS: dict[str, QuotaDefinition] = {
    quota.code: quota
    for quota in (
        QuotaDefinition(
            PHONE_NUMBERS_PER_INSTANCE,
            "Phone numbers per instance",
            DEFAULT_PHONE_NUMBERS_PER_INSTANCE,
        ),
        QuotaDefinition(
            CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
            "Concurrent active calls per instance",
            DEFAULT_CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
        ),
        QuotaDefinition(USERS_PER_INSTANCE, "Users per instance", DEFAULT_USERS_PER_INSTANCE),
    )
}

# Connect's API rates appear in Service Quotas as "Rate of <Operation> API requests", per second.
RATE_QUOTA_NAME = "Rate of {operation} API requests"
RATE_QUOTA_PERIOD = {"PeriodValue": 1, "PeriodUnit": "SECOND"}
# With its rate limits off the sandbox throttles nothing; it reports this rate for every API so
# the wizard does not hold back for a limit nobody enforces.
UNTHROTTLED_RATE = 10000.0


@functools.cache
def _connect_operations() -> tuple[str, ...]:
    """Every operation of botocore's Connect model, sorted."""
    return tuple(
        sorted(botocore.session.get_session().get_service_model("connect").operation_names)
    )


def rate_quota_code(operation: str) -> str:
    """A made-up code, stable per operation, in the shape of the real ones: AWS doesn't publish
    the codes of these quotas (the wizard finds them by name)."""
    return "L-" + hashlib.sha256(f"connect rate {operation}".encode()).hexdigest()[:8].upper()


OPEN_STATUSES = frozenset({"PENDING", "CASE_OPENED"})
FINAL_STATUSES = frozenset({"APPROVED", "DENIED", "CASE_CLOSED", "NOT_APPROVED", "INVALID_REQUEST"})
# Service Quotas' page sizes: ListRequestedServiceQuotaChangeHistory* and ListServiceQuotas
# default to 100 results (MaxResults 1-100).
DEFAULT_PAGE_SIZE = 100


@dataclass
class QuotaReview:
    """How long a request waits in each status before it moves on by itself. Real requests take
    hours to weeks; these are short so a demo shows the whole path. SANDBOX_QUOTA_CASE_OPENED_S
    and SANDBOX_QUOTA_APPROVED_S override them (seconds after the request)."""

    case_opened_after_s: float = 3.0
    approved_after_s: float = 10.0

    @classmethod
    def from_env(cls) -> QuotaReview:
        review = cls()
        if "SANDBOX_QUOTA_CASE_OPENED_S" in os.environ:
            review.case_opened_after_s = float(os.environ["SANDBOX_QUOTA_CASE_OPENED_S"])
        if "SANDBOX_QUOTA_APPROVED_S" in os.environ:
            review.approved_after_s = float(os.environ["SANDBOX_QUOTA_APPROVED_S"])
        return review


@dataclass
class QuotaRequest:
    id: str
    case_id: str
    quota: QuotaDefinition
    desired_value: float
    context_id: str | None
    status: str
    created: float
    last_updated: float

    def to_wire(self, region: str, account_id: str) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "Id": self.id,
            "ServiceCode": SERVICE_CODE,
            "ServiceName": SERVICE_NAME,
            "QuotaCode": self.quota.code,
            "QuotaName": self.quota.name,
            "DesiredValue": self.desired_value,
            "Status": self.status,
            "Created": self.created,
            "LastUpdated": self.last_updated,
            "Requester": f"arn:aws:iam::{account_id}:root",
            "QuotaArn": _quota_arn(region, account_id, self.quota.code),
            "GlobalQuota": False,
            "Unit": "None",
            "QuotaRequestedAtLevel": "RESOURCE" if self.context_id else "ACCOUNT",
        }
        if self.status != "PENDING":
            summary["CaseId"] = self.case_id
        if self.context_id:
            summary["QuotaContext"] = {
                "ContextScope": "RESOURCE",
                "ContextScopeType": "AWS::Connect::Instance",
                "ContextId": self.context_id,
            }
        return summary


def _quota_arn(region: str, account_id: str, code: str) -> str:
    return f"arn:aws:servicequotas:{region}:{account_id}:{SERVICE_CODE}/{code}"


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    size = int(params.get("MaxResults") or DEFAULT_PAGE_SIZE)
    if not 1 <= size <= DEFAULT_PAGE_SIZE:
        raise ApiError("IllegalArgumentException", "MaxResults must be between 1 and 100")
    start = 0
    if params.get("NextToken"):
        try:
            start = int(base64.urlsafe_b64decode(params["NextToken"]).decode())
        except ValueError as error:
            raise ApiError("InvalidPaginationTokenException", "Invalid pagination token") from error
    end = start + size
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], token


@dataclass
class ServiceQuotas:
    """The account's Connect quota values and its increase requests (one account, any region)."""

    account_id: str
    # Its rate_limits ("connect:<Operation>") are the rate quotas this account reports.
    knobs: Knobs
    review: QuotaReview = field(default_factory=QuotaReview.from_env)
    clock: Callable[[], float] = time.time
    _values: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _requests: dict[str, QuotaRequest] = field(default_factory=dict)
    _request_regions: dict[str, str] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # Reads that moto answers itself for the services it knows (VPC): passed through unless the
    # service code is Connect's.
    PASS_THROUGH_FOR_OTHER_SERVICES = frozenset(
        {
            "GetServiceQuota",
            "GetAWSDefaultServiceQuota",
            "ListServiceQuotas",
            "ListAWSDefaultServiceQuotas",
        }
    )

    def _handlers(self) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
        return {
            "RequestServiceQuotaIncrease": self.request_service_quota_increase,
            "GetRequestedServiceQuotaChange": self.get_requested_service_quota_change,
            "ListRequestedServiceQuotaChangeHistoryByQuota": self.list_history_by_quota,
            "ListRequestedServiceQuotaChangeHistory": self.list_history,
            "GetServiceQuota": self.get_service_quota,
            "GetAWSDefaultServiceQuota": self.get_aws_default_service_quota,
            "ListServiceQuotas": self.list_service_quotas,
            "ListAWSDefaultServiceQuotas": self.list_aws_default_service_quotas,
        }

    def handles(self, operation: str, params: dict[str, Any]) -> bool:
        if operation not in self._handlers():
            return False
        if operation in self.PASS_THROUGH_FOR_OTHER_SERVICES:
            return params.get("ServiceCode") == SERVICE_CODE
        return True

    def call(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        handler = self._handlers()[operation]
        with self._lock:
            self._settle()
            return handler(params, region)

    # Reading quota values (also used by the Connect layer to enforce them).

    def value(self, region: str, code: str, context_id: str | None = None) -> float:
        """The applied value: the resource's own if one was approved for it, else the account's."""
        with self._lock:
            self._settle()
            if context_id and (region, code, context_id) in self._values:
                return self._values[(region, code, context_id)]
            return self._values.get((region, code, ""), CONNECT_QUOTAS[code].aws_default)

    # The test hook: move a request on now instead of waiting for its review.

    def set_status(self, request_id: str, status: str) -> None:
        with self._lock:
            request = self._requests[request_id]
            self._move(request, status)

    def _settle(self) -> None:
        now = self.clock()
        for request in self._requests.values():
            if request.status not in OPEN_STATUSES:
                continue
            age = now - request.created
            if age >= self.review.approved_after_s:
                self._move(request, "APPROVED")
            elif age >= self.review.case_opened_after_s and request.status == "PENDING":
                self._move(request, "CASE_OPENED")

    def _move(self, request: QuotaRequest, status: str) -> None:
        if status not in OPEN_STATUSES | FINAL_STATUSES:
            raise ValueError(f"unknown request status {status}")
        request.status = status
        request.last_updated = self.clock()
        if status == "APPROVED":
            region = self._request_regions[request.id]
            self._values[(region, request.quota.code, request.context_id or "")] = (
                request.desired_value
            )

    def _quota(self, params: dict[str, Any]) -> QuotaDefinition:
        if params.get("ServiceCode") != SERVICE_CODE:
            raise ApiError(
                "NoSuchResourceException",
                f"The sandbox serves quota requests for service code '{SERVICE_CODE}' only.",
            )
        quota = CONNECT_QUOTAS.get(str(params.get("QuotaCode")))
        if quota is None:
            raise ApiError(
                "NoSuchResourceException",
                f"The quota code {params.get('QuotaCode')} does not exist for {SERVICE_CODE}.",
            )
        return quota

    def _rate_quotas(self) -> dict[str, tuple[QuotaDefinition, float]]:
        """Code -> (quota, value now) of a rate quota for every Connect operation: the limit the
        sandbox enforces (a connect:<Operation> knob's rate times rate_scale), or, for what it
        doesn't throttle, UNTHROTTLED_RATE."""
        enforced = {
            api.partition(":")[2]: rate * self.knobs.rate_scale
            for api, (rate, _burst) in self.knobs.rate_limits.items()
            if api.partition(":")[0] == SERVICE_CODE and self.knobs.rate_limits_enabled
        }
        quotas: dict[str, tuple[QuotaDefinition, float]] = {}
        for operation in _connect_operations():
            value = enforced.get(operation, UNTHROTTLED_RATE)
            quota = QuotaDefinition(
                rate_quota_code(operation),
                RATE_QUOTA_NAME.format(operation=operation),
                value,
            )
            quotas[quota.code] = (quota, value)
        return quotas

    def _rate_quota_wire(self, quota: QuotaDefinition, region: str, value: float) -> dict[str, Any]:
        return {**self._quota_wire(quota, region, value), "Period": RATE_QUOTA_PERIOD}

    def _quota_wire(
        self, quota: QuotaDefinition, region: str, value: float, context_id: str | None = None
    ) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "ServiceCode": SERVICE_CODE,
            "ServiceName": SERVICE_NAME,
            "QuotaArn": _quota_arn(region, self.account_id, quota.code),
            "QuotaCode": quota.code,
            "QuotaName": quota.name,
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
            "QuotaAppliedAtLevel": "ACCOUNT",
        }
        if context_id:
            wire["QuotaAppliedAtLevel"] = "RESOURCE"
            wire["QuotaContext"] = {
                "ContextScope": "RESOURCE",
                "ContextScopeType": "AWS::Connect::Instance",
                "ContextId": context_id,
            }
        return wire

    def request_service_quota_increase(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        quota = self._quota(params)
        context_id = params.get("ContextId") or None
        desired = float(params.get("DesiredValue", 0))
        current = self.value(region, quota.code, context_id)
        if desired <= current:
            raise ApiError(
                "IllegalArgumentException",
                f"The desired value {desired:g} must be greater than the current value "
                f"{current:g} of {quota.name}.",
            )
        for request in self._requests.values():
            if (
                request.quota.code == quota.code
                and request.context_id == context_id
                and self._request_regions[request.id] == region
                and request.status in OPEN_STATUSES
            ):
                raise ApiError(
                    "ResourceAlreadyExistsException",
                    f"A request for {quota.name} is already open ({request.id}); wait for it "
                    "to be resolved.",
                )
        now = self.clock()
        request = QuotaRequest(
            id=uuid.uuid4().hex,
            case_id=str(uuid.uuid4().int)[:10],
            quota=quota,
            desired_value=desired,
            context_id=context_id,
            status="PENDING",
            created=now,
            last_updated=now,
        )
        self._requests[request.id] = request
        self._request_regions[request.id] = region
        return {"RequestedQuota": request.to_wire(region, self.account_id)}

    def get_requested_service_quota_change(
        self, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        request = self._requests.get(str(params.get("RequestId")))
        if request is None or self._request_regions[request.id] != region:
            raise ApiError(
                "NoSuchResourceException", f"The request {params.get('RequestId')} does not exist."
            )
        return {"RequestedQuota": request.to_wire(region, self.account_id)}

    def _history(
        self, params: dict[str, Any], region: str, quota_code: str | None
    ) -> dict[str, Any]:
        requests = [
            request
            for request in self._requests.values()
            if self._request_regions[request.id] == region
            and (params.get("ServiceCode") in (None, SERVICE_CODE))
            and (quota_code is None or request.quota.code == quota_code)
            and (params.get("Status") in (None, request.status))
        ]
        requests.sort(key=lambda request: request.created, reverse=True)
        page, token = _page(requests, params)
        result: dict[str, Any] = {
            "RequestedQuotas": [request.to_wire(region, self.account_id) for request in page]
        }
        if token:
            result["NextToken"] = token
        return result

    def list_history(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        return self._history(params, region, None)

    def list_history_by_quota(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        return self._history(params, region, self._quota(params).code)

    def get_service_quota(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        rate_quota = self._rate_quotas().get(str(params.get("QuotaCode")))
        if rate_quota is not None and params.get("ServiceCode") == SERVICE_CODE:
            quota, value = rate_quota
            return {"Quota": self._rate_quota_wire(quota, region, value)}
        quota = self._quota(params)
        context_id = params.get("ContextId") or None
        value = self.value(region, quota.code, context_id)
        return {"Quota": self._quota_wire(quota, region, value, context_id)}

    def get_aws_default_service_quota(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        quota = self._quota(params)
        return {"Quota": self._quota_wire(quota, region, quota.aws_default)}

    def list_service_quotas(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        quotas = [
            self._quota_wire(quota, region, self.value(region, quota.code))
            for quota in CONNECT_QUOTAS.values()
            if params.get("QuotaCode") in (None, quota.code)
        ]
        quotas += [
            self._rate_quota_wire(quota, region, value)
            for quota, value in self._rate_quotas().values()
            if params.get("QuotaCode") in (None, quota.code)
        ]
        page, token = _page(quotas, params)
        return {"Quotas": page, **({"NextToken": token} if token else {})}

    def list_aws_default_service_quotas(
        self, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        quotas = [
            self._quota_wire(quota, region, quota.aws_default) for quota in CONNECT_QUOTAS.values()
        ]
        page, token = _page(quotas, params)
        return {"Quotas": page, **({"NextToken": token} if token else {})}
