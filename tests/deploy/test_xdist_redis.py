"""`make test` runs the suite in pytest-xdist processes; each must have a Redis database of its own
(its Celery queues and rate-limit buckets), as it has a test database of its own."""

from __future__ import annotations

from tests.worker_process import xdist_redis_url


def test_each_xdist_worker_counts_down_from_the_given_redis_database() -> None:
    assert xdist_redis_url("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/15"
    assert xdist_redis_url("redis://127.0.0.1:6379/15", "gw1") == "redis://127.0.0.1:6379/14"


def test_it_wraps_below_database_zero_and_reads_a_missing_number_as_zero() -> None:
    assert xdist_redis_url("redis://127.0.0.1:6379/0", "gw1") == "redis://127.0.0.1:6379/15"
    assert xdist_redis_url("redis://:pw@redis:6379", "gw2") == "redis://:pw@redis:6379/14"
