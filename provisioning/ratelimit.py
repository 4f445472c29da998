"""Shared token buckets: hands each call to a rate-limited API its turn, across every worker process
on every host, so bulk work runs at the API's quota and never past it.

A bucket is a GCRA ("generic cell rate algorithm") schedule: it stores one number, the theoretical
arrival time (TAT) of the next call if calls came exactly one interval apart. A caller *reserves* a
slot: max(now, TAT - (burst - 1) * interval), and the TAT moves on by one interval. So any window
of length w holds at most burst + rate * w slots, and callers that queue up get consecutive slots
with no gap. With REDIS_URL set the bucket lives in Redis (one Lua script, atomic, on Redis's
clock, so every host shares one clock); otherwise in a file under VAR_DIR/ratelimit, locked with
flock (the embedded mode runs on one host, whose worker processes share that file).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import redis
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from provisioning.errors import PermanentError, RetryableError
from provisioning.messages import Message

REDIS_KEY_PREFIX = "wizard:rate:"
# A bucket's state matters only until its TAT has passed (after that it equals an empty bucket),
# so its Redis key expires then, plus this margin for clock rounding: idle keys vanish.
IDLE_KEY_MARGIN_MS = 1000
# Redis answers in milliseconds on a working network; one that takes longer than this is treated
# as unavailable, and the reservation is retried within WIZARD_RATE_LIMIT_UNAVAILABLE_S.
REDIS_SOCKET_TIMEOUT_S = 2.0
# Pause between two attempts while Redis is unavailable: short, so a restarted Redis is used again
# within a second of coming back.
REDIS_RETRY_PAUSE_S = 0.5
FILE_FOLDER_NAME = "ratelimit"

# Atomic on the server: read the TAT, give the slot, store the new TAT. Numbers go back as text
# because Redis turns a Lua number into an integer reply.
RESERVE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored), now) end
local slot = math.max(now, tat - (tonumber(ARGV[2]) - 1) * interval)
if slot - now > tonumber(ARGV[3]) then
  return {string.format('%.6f', slot), string.format('%.6f', now), 0}
end
local next_tat = tat + interval
local ttl_ms = math.ceil((next_tat - now) * 1000) + tonumber(ARGV[4])
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX', tostring(ttl_ms))
return {string.format('%.6f', slot), string.format('%.6f', now), 1}
"""


@dataclass(frozen=True)
class Rate:
    """An API's quota: steady calls per second and the burst it tolerates. `source` tells admins
    where it came from: "service_quotas" (the account's applied value) or "documented"."""

    per_second: float
    burst: int
    source: str

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"not a usable rate: {self}")


@dataclass(frozen=True)
class Reservation:
    """A slot in a bucket, on the bucket's clock (Redis's, or this host's); not taken when it was
    further away than the caller would wait."""

    slot_at: float
    now: float
    taken: bool

    @property
    def wait_s(self) -> float:
        return max(0.0, self.slot_at - self.now)


class SharedBuckets(Protocol):
    def reserve(
        self, key: str, *, interval_s: float, burst: int, max_wait_s: float
    ) -> Reservation: ...


def client_burst(rate: Rate) -> int:
    """The burst our buckets allow for `rate`.

    We spend the API's rate fully but leave its burst to the cloud: our slots are exact on our
    clock, but requests reach AWS with network and scheduling jitter, so two slots an interval
    apart can arrive closer together. AWS's own bucket absorbs that jitter with the burst we left
    unused, so it never turns into a throttled request.
    """
    return max(1, rate.burst - settings.WIZARD_RATE_LIMIT_BURST_RESERVE)


def reserve(key: str, rate: Rate) -> float:
    """Take the caller's slot in the bucket `key` and return the seconds to wait for it (0.0: go
    now). A slot further away than WIZARD_RATE_LIMIT_MAX_WAIT_S is not taken: RetryableError,
    with `retry_after_s` set to that wait."""
    reservation = shared_buckets().reserve(
        key,
        interval_s=1 / rate.per_second,
        burst=client_burst(rate),
        max_wait_s=settings.WIZARD_RATE_LIMIT_MAX_WAIT_S,
    )
    if not reservation.taken:
        wait = reservation.wait_s
        origin = _("from Service Quotas") if rate.source == "service_quotas" else _("AWS's default")
        raise RetryableError(
            Message(
                gettext_noop(
                    "Other work has booked the quota of %(key)s (%(rate)s calls per second, "
                    "%(origin)s) for the next %(seconds)d seconds."
                ),
                {"key": key, "rate": f"{rate.per_second:g}", "origin": origin, "seconds": wait},
            ),
            code="rate_limit_busy",
            hint=Message(
                gettext_noop(
                    "The wizard tries again when its turn comes; nothing to do. To go faster, ask "
                    "AWS for a higher rate in Service Quotas."
                )
            ),
            retry_after_s=wait,
        )
    return reservation.wait_s


def wait_for_turn(key: str, rate: Rate) -> float:
    """Reserve a slot in the bucket `key`, sleep until it, and return the seconds waited."""
    wait = reserve(key, rate)
    if wait > 0:
        time.sleep(wait)
    return wait


_current: tuple[tuple[int, str, str], SharedBuckets] | None = None


def shared_buckets() -> SharedBuckets:
    """This process's buckets: Redis when REDIS_URL is set, else files under VAR_DIR.

    Made again in a forked child (a Redis connection must not be shared across a fork) and when
    the settings it was made from change. Two threads racing here make two equal objects: harmless.
    """
    global _current
    made_from = (os.getpid(), settings.REDIS_URL, str(settings.VAR_DIR))
    if _current is None or _current[0] != made_from:
        buckets: SharedBuckets
        if settings.REDIS_URL:
            buckets = RedisBuckets(settings.REDIS_URL)
        else:
            buckets = FileBuckets(Path(settings.VAR_DIR) / FILE_FOLDER_NAME)
        _current = (made_from, buckets)
    return _current[1]


class RedisBuckets:
    """Buckets in Redis, shared by every host that uses the same Redis."""

    def __init__(self, url: str) -> None:
        # No retries inside redis-py: the loop in `reserve` retries for exactly as long as
        # WIZARD_RATE_LIMIT_UNAVAILABLE_S allows.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(RESERVE_SCRIPT)

    def reserve(self, key: str, *, interval_s: float, burst: int, max_wait_s: float) -> Reservation:
        deadline = time.monotonic() + settings.WIZARD_RATE_LIMIT_UNAVAILABLE_S
        while True:
            try:
                slot_at, now, taken = self._script(
                    keys=[REDIS_KEY_PREFIX + key],
                    args=[interval_s, burst, max_wait_s, IDLE_KEY_MARGIN_MS],
                )
                return Reservation(slot_at=float(slot_at), now=float(now), taken=taken == 1)
            except RedisError as error:
                # Down, restarting, loading its dataset, or a reply lost on the way back. A
                # retry after a lost reply books a second slot: a wasted turn, never an extra
                # request, so the quota still holds.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RetryableError(
                        Message(
                            gettext_noop(
                                "The shared rate limiter (Redis) is unreachable, so the wizard "
                                "does "
                                "not call AWS: it would risk going past the API's quota. "
                                "(%(error)s)"
                            ),
                            {"error": error},
                        ),
                        code="rate_limiter_unreachable",
                        hint=Message(
                            gettext_noop(
                                "Check that Redis (REDIS_URL) is running and reachable from every "
                                "worker; the wizard retries by itself."
                            )
                        ),
                    ) from error
                time.sleep(min(REDIS_RETRY_PAUSE_S, left))


class FileBuckets:
    """Buckets in files under `folder`, one per key, each read and written under flock: shared by
    this host's worker processes (the embedded mode's only host)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def reserve(self, key: str, *, interval_s: float, burst: int, max_wait_s: float) -> Reservation:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / quote(key, safe=""), os.O_RDWR | os.O_CREAT, 0o600)
            with os.fdopen(fd, "r+") as file:
                # Released when the file closes, also if this process dies holding it.
                fcntl.flock(file, fcntl.LOCK_EX)
                now = time.time()
                try:
                    tat = max(float(file.read()), now)
                except ValueError:
                    # A new file (empty): an empty bucket.
                    tat = now
                slot = max(now, tat - (burst - 1) * interval_s)
                if slot - now > max_wait_s:
                    return Reservation(slot_at=slot, now=now, taken=False)
                file.seek(0)
                file.truncate()
                file.write(repr(tat + interval_s))
                return Reservation(slot_at=slot, now=now, taken=True)
        except OSError as error:
            raise PermanentError(
                Message(
                    gettext_noop(
                        "The wizard cannot use its rate-limit folder %(folder)s: %(error)s"
                    ),
                    {"folder": self.folder, "error": error},
                ),
                code="rate_limit_folder",
                hint=Message(
                    gettext_noop(
                        "Give the worker's user write access to that folder (under "
                        "WIZARD_VAR_DIR), "
                        "or set REDIS_URL to share the limits through Redis."
                    )
                ),
            ) from error
