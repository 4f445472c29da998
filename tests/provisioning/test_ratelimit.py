"""The shared token buckets, in Redis and in files: the burst, then one slot per interval; no slot
taken beyond the longest wait; one schedule for many processes; no calls while Redis is away."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from provisioning.errors import RetryableError
from provisioning.ratelimit import Rate, Reservation, reserve, shared_buckets
from tests.conftest import services_required

PROCESSES = 4
RESERVATIONS_PER_PROCESS = 10
# Far slower than four processes can ask, even on a loaded machine: every reservation comes in
# before its slot, so the schedule shows the limiter's arithmetic, not the machine's speed.
SLOW_INTERVAL_S = 1.0
MAX_WAIT_S = 60.0
# Slot times travel through Redis as text with six decimals.
SLOT_PRECISION_S = 1e-5


@pytest.fixture(params=["redis", "file"])
def backend(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> str:
    """Settings under which shared_buckets() is the Redis one or the file one."""
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            if services_required():
                pytest.fail("REDIS_URL is not set")
            pytest.skip("REDIS_URL is not set")
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
        settings.VAR_DIR = tmp_path
    return str(request.param)


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


def _reserve(key: str, *, interval_s: float, burst: int, max_wait_s: float) -> Reservation:
    return shared_buckets().reserve(key, interval_s=interval_s, burst=burst, max_wait_s=max_wait_s)


def test_it_gives_the_burst_at_once_then_one_slot_per_interval(backend: str) -> None:
    key = _key()

    slots = [_reserve(key, interval_s=0.5, burst=3, max_wait_s=MAX_WAIT_S) for _ in range(6)]

    assert all(slot.taken for slot in slots)
    assert [slot.wait_s for slot in slots[:3]] == [0.0, 0.0, 0.0]
    first = slots[0].slot_at
    assert [slot.slot_at - first for slot in slots[3:]] == pytest.approx(
        [0.5, 1.0, 1.5], abs=SLOT_PRECISION_S
    )


def test_it_keeps_the_apis_burst_but_the_reserve_and_spends_its_rate(
    backend: str, settings: Any
) -> None:
    settings.WIZARD_RATE_LIMIT_BURST_RESERVE = 4
    key = _key()
    connect_user_writes = Rate(2, 5, "documented")

    waits = [reserve(key, connect_user_writes) for _ in range(3)]

    # Burst 5 less the reserve of 4: one call at once, then one every half second.
    assert waits[0] == 0.0
    assert 0.0 < waits[1] <= 0.5
    assert 0.5 < waits[2] <= 1.0


def test_it_takes_no_slot_it_would_wait_too_long_for(backend: str, settings: Any) -> None:
    key = _key()
    _reserve(key, interval_s=10, burst=1, max_wait_s=15)
    second = _reserve(key, interval_s=10, burst=1, max_wait_s=15)

    refused = _reserve(key, interval_s=10, burst=1, max_wait_s=15)
    refused_again = _reserve(key, interval_s=10, burst=1, max_wait_s=15)

    assert second.taken
    assert not refused.taken
    # Had the refused one taken its slot, the next would be another 10 s later.
    assert refused_again.slot_at == pytest.approx(refused.slot_at, abs=SLOT_PRECISION_S)
    assert refused.slot_at == pytest.approx(second.slot_at + 10, abs=SLOT_PRECISION_S)

    settings.WIZARD_RATE_LIMIT_MAX_WAIT_S = 15
    with pytest.raises(RetryableError) as raised:
        reserve(key, Rate(0.1, 1, "service_quotas"))
    assert raised.value.code == "rate_limit_busy"
    assert raised.value.retry_after_s is not None
    assert 15 < raised.value.retry_after_s <= 20
    assert "0.1 calls per second, from Service Quotas" in raised.value.message


def _reserve_in_child(
    key: str, burst: int, barrier: Any, results: Any
) -> None:  # runs in a forked process
    barrier.wait()
    slots = [
        _reserve(key, interval_s=SLOW_INTERVAL_S, burst=burst, max_wait_s=MAX_WAIT_S).slot_at
        for _ in range(RESERVATIONS_PER_PROCESS)
    ]
    results.put(slots)


def test_it_gives_many_processes_one_schedule_without_excess_or_gaps(backend: str) -> None:
    key = _key()
    burst = 2
    # fork: the children inherit this test's settings (which backend, which folder).
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    children = [
        context.Process(target=_reserve_in_child, args=(key, burst, barrier, results))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    slots = sorted(slot for _ in children for slot in results.get(timeout=30))
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0

    assert len(slots) == PROCESSES * RESERVATIONS_PER_PROCESS
    # Any window from slot i to slot j holds at most burst + rate * (its length) slots.
    for i in range(len(slots)):
        for j in range(i + 1, len(slots)):
            allowed = burst + (slots[j] - slots[i]) / SLOW_INTERVAL_S + SLOT_PRECISION_S
            assert j - i + 1 <= allowed, (i, j, slots[j] - slots[i])
    # No gap: after the burst, each slot is exactly one interval after the one before.
    after_burst = [slot - slots[0] for slot in slots[burst:]]
    expected = [SLOW_INTERVAL_S * n for n in range(1, len(slots) - burst + 1)]
    assert after_burst == pytest.approx(expected, abs=SLOT_PRECISION_S)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_refuses_to_go_unthrottled_while_redis_is_unreachable(settings: Any) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.WIZARD_RATE_LIMIT_UNAVAILABLE_S = 0.6
    started = time.monotonic()

    with pytest.raises(RetryableError) as raised:
        reserve(_key(), Rate(2, 5, "documented"))

    assert 0.6 <= time.monotonic() - started < 5
    assert raised.value.code == "rate_limiter_unreachable"
    assert "shared rate limiter (Redis) is unreachable" in raised.value.message
