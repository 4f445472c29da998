"""Knobs for tests and benchmarks: per-API rate limits, injected errors and latency, delays."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Real default quotas, requests per second and burst. Sources: Amazon Connect API throttling
# quotas (CreateUser 2/s burst 5, ListUsers 10/s ...), Microsoft Graph throttling guidance
# (~20 writes/s per app and tenant), Okta rate limits (/api/v1/apps 20-100/min by edition; the
# Free edition's 20/min is the default here).
DEFAULT_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "connect:CreateInstance": (0.1, 1),
    "connect:CreateUser": (2, 5),
    "connect:SearchUsers": (2, 5),
    "connect:UpdateUserIdentityInfo": (2, 5),
    "connect:UpdateUserSecurityProfiles": (2, 5),
    "connect:UpdateUserRoutingProfile": (2, 5),
    "connect:UpdateUserPhoneConfig": (2, 5),
    "connect:ListSecurityProfiles": (2, 5),
    "connect:ListUsers": (10, 15),
    "connect:DescribeUser": (10, 15),
    "connect:ListRoutingProfiles": (10, 15),
    "graph:write": (20, 20),
    "okta:apps": (20 / 60, 20),
    # CloudTrail API reference, LookupEvents: "The rate of lookup requests is limited to two per
    # second, per account, per Region." No burst is published: none beyond the rate.
    "cloudtrail:LookupEvents": (2, 2),
}


class TokenBucket:
    """Thread-safe token bucket: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def try_take(self) -> float:
        """Take a token; return 0 on success, or the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def tokens_left(self) -> float:
        """Tokens available now, without taking one (for X-Rate-Limit-Remaining-style headers)."""
        with self._lock:
            elapsed = time.monotonic() - self._updated
            return min(self.burst, self._tokens + elapsed * self.rate)


@dataclass
class Knobs:
    """How the sandbox behaves. `rate_scale` multiplies every rate (10 = ten times the quota)."""

    rate_limits: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    rate_scale: float = 1.0
    rate_limits_enabled: bool = True
    # API name -> probability (0..1) that a call fails with that cloud's retryable error.
    error_rates: dict[str, float] = field(default_factory=dict)
    # API name -> seconds added to every call.
    latency_s: dict[str, float] = field(default_factory=dict)
    # Seconds a new Connect instance stays CREATION_IN_PROGRESS.
    instance_creation_delay_s: float = 5.0
    # Seconds a claimed phone number stays IN_PROGRESS before it is CLAIMED: ClaimPhoneNumber is
    # asynchronous (botocore's Connect model, ClaimPhoneNumber and ClaimedPhoneNumberSummary.
    # PhoneNumberStatus: call DescribePhoneNumber to verify the status of a previous claim).
    phone_number_claim_delay_s: float = 3.0
    # Seconds a new Graph object (instantiate's application and service principal, a claims-mapping
    # policy) answers 404 Request_ResourceNotFound to reads, writes and references, as Graph's
    # replicas catch up (hashicorp/terraform-provider-azuread PR 656 retries exactly these 404s;
    # issue 1811 shows the error). On by default; a test may shorten it, never switch it off.
    graph_visibility_delay_s: float = 2.0
    # Seconds a CloudTrail event stays out of LookupEvents' answers after its call. AWS: "CloudTrail
    # typically delivers logs within an average of about 5 minutes of an API call. This time is
    # not guaranteed." (CloudTrail user guide, "Getting and viewing your CloudTrail log files").
    # The sandbox's default is shorter so a demonstration does not wait five minutes; the wizard's
    # page states AWS's figure whatever this is.
    cloudtrail_delivery_delay_s: float = 3.0
    # How many agents each IdP's directory is seeded with (admins and awkward cases come on top).
    directory_agents: int = 40
    seed: int = 1
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, repr=False)
    # API name -> calls answered "Rate exceeded" (the AWS endpoint counts its own), so tests and
    # benchmarks can check that the wizard never went past a quota.
    _throttled: Counter[str] = field(default_factory=Counter, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Knobs:
        """SANDBOX_RATE_SCALE, SANDBOX_RATE_LIMITS (JSON {"api": [rate, burst]}),
        SANDBOX_ERROR_RATES and SANDBOX_LATENCY (JSON {"api": value}), SANDBOX_INSTANCE_DELAY,
        SANDBOX_GRAPH_DELAY, SANDBOX_CLAIM_DELAY, SANDBOX_CLOUDTRAIL_DELAY,
        SANDBOX_DIRECTORY_AGENTS, SANDBOX_NO_RATE_LIMITS=1."""
        env = os.environ if environ is None else environ
        knobs = cls()
        if "SANDBOX_RATE_SCALE" in env:
            knobs.rate_scale = float(env["SANDBOX_RATE_SCALE"])
        if "SANDBOX_RATE_LIMITS" in env:
            for api, (rate, burst) in json.loads(env["SANDBOX_RATE_LIMITS"]).items():
                knobs.rate_limits[api] = (float(rate), float(burst))
        if env.get("SANDBOX_NO_RATE_LIMITS") in {"1", "true", "yes"}:
            knobs.rate_limits_enabled = False
        if "SANDBOX_ERROR_RATES" in env:
            knobs.error_rates.update(json.loads(env["SANDBOX_ERROR_RATES"]))
        if "SANDBOX_LATENCY" in env:
            knobs.latency_s.update(json.loads(env["SANDBOX_LATENCY"]))
        if "SANDBOX_INSTANCE_DELAY" in env:
            knobs.instance_creation_delay_s = float(env["SANDBOX_INSTANCE_DELAY"])
        if "SANDBOX_CLAIM_DELAY" in env:
            knobs.phone_number_claim_delay_s = float(env["SANDBOX_CLAIM_DELAY"])
        if "SANDBOX_GRAPH_DELAY" in env:
            knobs.graph_visibility_delay_s = float(env["SANDBOX_GRAPH_DELAY"])
        if "SANDBOX_CLOUDTRAIL_DELAY" in env:
            knobs.cloudtrail_delivery_delay_s = float(env["SANDBOX_CLOUDTRAIL_DELAY"])
        if "SANDBOX_DIRECTORY_AGENTS" in env:
            knobs.directory_agents = int(env["SANDBOX_DIRECTORY_AGENTS"])
        for name, value in overrides.items():
            setattr(knobs, name, value)
        return knobs

    def throttle_wait(self, api: str) -> float:
        """0 if a call to `api` may go ahead now; otherwise the seconds to tell the client to wait
        (the call must then be refused with the cloud's own throttling error)."""
        if not self.rate_limits_enabled or api not in self.rate_limits:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(api)
            if bucket is None:
                rate, burst = self.rate_limits[api]
                bucket = TokenBucket(rate * self.rate_scale, max(1.0, burst))
                self._buckets[api] = bucket
        return bucket.try_take()

    def bucket(self, api: str) -> TokenBucket | None:
        """The bucket behind `api`'s limit once it has been called, for servers that report the
        remaining quota in headers."""
        with self._lock:
            return self._buckets.get(api)

    def should_fail(self, api: str) -> bool:
        rate = self.error_rates.get(api, 0.0)
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def delay(self, api: str) -> None:
        seconds = self.latency_s.get(api, 0.0)
        if seconds > 0:
            time.sleep(seconds)

    def reset_buckets(self) -> None:
        with self._lock:
            self._buckets.clear()

    def count_throttled(self, api: str) -> None:
        with self._lock:
            self._throttled[api] += 1

    def throttled(self, api: str) -> int:
        """How many calls to `api` were answered "Rate exceeded" since the last reset."""
        with self._lock:
            return self._throttled[api]

    def reset_throttled(self) -> None:
        with self._lock:
            self._throttled.clear()
