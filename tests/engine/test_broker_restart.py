"""A Redis restart in the middle of a users step: Redis keeps nothing on disk here, so every
queued task and the shared buckets vanish; the run still finishes with every user created once
(the workers' watchdog starts a new chain, the step asks for helpers again, the rate limiter waits
for Redis to come back)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from provisioning.models import RunStatus, SetupRun, UserChange
from provisioning.runs import admin_moves
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.conftest import services_required
from tests.engine.runs import succeeded_calls, wait_for
from tests.steps import aws_step_runs
from tests.worker_process import point_this_process_at, spawn_worker, stop_worker, worker_env

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

PEOPLE = 80
# Restart Redis once this many users exist: well into the work, far from its end.
RESTART_AFTER = 20
REDIS_START_TIMEOUT_S = 10
RUN_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, on a port of its own, keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server") or ""
        self.port = _free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    if not server.binary:
        if services_required():
            pytest.fail("redis-server is not installed; the broker-restart test needs it")
        pytest.skip("redis-server is not installed")
    server.start()
    yield server
    server.kill()


def test_a_redis_restart_in_the_middle_loses_nothing_and_creates_no_duplicate(
    private_redis: PrivateRedis,
    aws_connection: Any,
    connect: Any,
    instance: dict[str, Any],
    sandbox: Sandbox,
    sandbox_knobs: Knobs,
    tmp_path: Path,
    settings: Any,
) -> None:
    from django.conf import settings as live_settings

    # Each call takes a moment, and every task does a second of work, so tasks are queued and
    # in flight whenever Redis goes.
    sandbox_knobs.latency_s["connect:CreateUser"] = 0.1
    env = worker_env(
        sandbox,
        REDIS_URL=private_redis.url,
        WIZARD_USER_CHANGES_INLINE_S="1",
        WIZARD_USER_CHANGES_TASK_S="1",
        WIZARD_USER_CHANGES_POLL_S="0.5",
        WIZARD_USER_CHANGES_STALL_S="3",
        WIZARD_RUN_STALL_GRACE_S="4",
    )
    env.pop("WIZARD_BROKER_DIR", None)
    saved = (live_settings.CELERY_BROKER_TRANSPORT_OPTIONS, live_settings.CELERY_BROKER_URL)
    point_this_process_at({"visibility_timeout": 3600}, private_redis.url)
    worker = spawn_worker(tmp_path, env, name="broker-restart", concurrency=2)
    try:
        people = [
            {
                "username": f"r{uuid.uuid4().hex[:6]}.{n:03d}@example.com",
                "first_name": "R",
                "last_name": str(n),
            }
            for n in range(PEOPLE)
        ]
        run = admin_moves.run_create(
            user=None,
            flow_key="test_only_connect_users",
            region="ap-northeast-1",
            instance_id=instance["Id"],
            aws_connection_id=aws_connection.pk,
            inputs={"people": people},
        )
        made = UserChange.objects.filter(change_set__step_run__run=run, outcome="created")
        wait_for(lambda: made.count() >= RESTART_AFTER, RUN_TIMEOUT_S, "the first users")

        private_redis.kill()
        time.sleep(2)
        private_redis.start()

        def finished() -> bool:
            return SetupRun.objects.get(pk=run.pk).is_at_rest

        try:
            wait_for(finished, RUN_TIMEOUT_S, "the run to finish after the restart")
        except AssertionError:
            raise AssertionError(worker.log_text()[-6000:]) from None
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_text()[-4000:])
        assert made.count() == PEOPLE
        listed = connect.list_users(InstanceId=instance["Id"], MaxResults=1000)["UserSummaryList"]
        assert sorted(user["Username"] for user in listed) == sorted(p["username"] for p in people)
        assert len(succeeded_calls(run, "CreateUser")) == PEOPLE
    finally:
        stop_worker(worker.process)
        point_this_process_at(saved[0], saved[1])
