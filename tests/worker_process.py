"""Pytest plugin: a real Celery worker process working on the test database, and the engine's
test steps and flows (tests/engine_doubles.py) registered in the test process and the worker.

`celery_worker` (function scope) gives a test transactional database access and the session's
worker, started on first use: `.venv/bin/celery -A wizard worker --pool prefork --concurrency 1`
with DATABASE_URL pointing at the test database, the same broker as this process (Redis when
REDIS_URL is set; otherwise a filesystem-broker folder of its own), WIZARD_TESTING=1,
WIZARD_EXTRA_STEP_MODULES=tests.engine_doubles,tests.steps.connect_instance_doubles,
tests.steps.iam_flow and the
session sandbox's endpoints file. It exposes the worker's pid, its pool children's
pids and its log.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from sandbox.server import Sandbox

REPO = Path(__file__).resolve().parent.parent
# Starting Django and Celery on a busy 2-core machine takes a few seconds; this is generous.
WORKER_READY_TIMEOUT_S = 90
WORKER_STOP_TIMEOUT_S = 15
# Shorter waits than production (2 s) so engine tests finish quickly; still a real countdown.
WORKER_WAIT_COUNTDOWN_S = "0.3"
WORKER_RETRY_BACKOFF_S = "0.2"
# Transactional tests empty the heartbeat table between tests; a fast beat refills it.
WORKER_HEARTBEAT_INTERVAL_S = "1"

# The test steps' effects folder, shared by this process and its worker. Under pytest-xdist each
# test process (gwN) makes its own: they inherit the controller's environment, and their runs
# have the same ids in their own databases.
if os.environ.get("PYTEST_XDIST_WORKER") or "WIZARD_TEST_EFFECTS_DIR" not in os.environ:
    os.environ["WIZARD_TEST_EFFECTS_DIR"] = tempfile.mkdtemp(prefix="wizard-effects-")

REDIS_DATABASES = 16

AUDIT_MIGRATION = "wizard.migrations.0002_setuprun_review_plans_auditevent_append_only"


def pytest_configure(config: pytest.Config) -> None:
    _redis_db_of_this_xdist_worker()
    importlib.import_module("tests.engine_doubles")
    _let_flush_empty_the_audit_log()


def pytest_unconfigure(config: pytest.Config) -> None:
    effects = os.environ.get("WIZARD_TEST_EFFECTS_DIR", "")
    if effects.startswith(tempfile.gettempdir()):
        shutil.rmtree(effects, ignore_errors=True)


def xdist_redis_url(url: str, worker: str) -> str:
    """The Redis URL of xdist worker `worker` ("gw0", "gw1"...): REDIS_URL's database number minus
    the worker's number, wrapping at 0 (Redis has databases 0-15 by default), so CI's 15 gives
    gw0 15 and gw1 14. Each test process then has its own broker queues and rate-limit buckets,
    as pytest-django gives it its own test database."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    index = int(worker.removeprefix("gw") or 0)
    return urlunsplit(parts._replace(path=f"/{(db - index) % REDIS_DATABASES}"))


def _redis_db_of_this_xdist_worker() -> None:
    """Point this xdist worker (and the Celery workers it starts, through the environment) at a
    Redis database of its own. Settings were read before conftest ran, so they are set here too."""
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL", "")
    if not worker or not url:
        return
    url = xdist_redis_url(url, worker)
    os.environ["REDIS_URL"] = url
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    point_this_process_at(settings.CELERY_BROKER_TRANSPORT_OPTIONS, url)


def _let_flush_empty_the_audit_log() -> None:
    """Transactional tests end with a flush; on SQLite that is DELETE FROM every table, which the
    audit log's triggers refuse. Around the flush (tests only) drop and re-create them.
    PostgreSQL's flush is TRUNCATE, which row triggers don't see."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    operations = type(connection.ops)
    migration = importlib.import_module(AUDIT_MIGRATION)
    original = operations.sql_flush
    if getattr(original, "keeps_audit_triggers", False):
        return

    def sql_flush(
        self: Any, style: Any, tables: Any, *, reset_sequences: bool = False, **kwargs: Any
    ) -> list[str]:
        statements = original(self, style, tables, reset_sequences=reset_sequences, **kwargs)
        if migration.TABLE not in tables:
            return statements
        return [*migration.SQLITE_DROP, *statements, *migration.SQLITE_CREATE]

    sql_flush.keeps_audit_triggers = True  # type: ignore[attr-defined]
    operations.sql_flush = sql_flush  # type: ignore[method-assign]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool_pids(self) -> list[int]:
        """The prefork pool's children (the processes that run tasks).

        Read from every thread's `children` file: after a child dies, billiard's supervisor
        thread forks the replacement, and /proc lists a child under the thread that forked it.
        """
        pids: set[int] = set()
        for children in Path(f"/proc/{self.pid}/task").glob("*/children"):
            try:
                pids.update(int(pid) for pid in children.read_text().split())
            except OSError:
                continue
        return sorted(pids)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"The worker exited:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"No {text!r} in the worker's log:\n{self.log_text()[-4000:]}")
            time.sleep(0.2)


def _database_url(settings_dict: dict[str, Any]) -> str:
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def point_this_process_at(broker_options: dict[str, Any], broker_url: str | None = None) -> None:
    """Send this process's tasks to another broker folder or URL (settings were read at
    startup)."""
    from django.conf import settings

    from wizard.celery import app

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = broker_options
    app.conf.broker_transport_options = broker_options
    if broker_url is not None:
        settings.CELERY_BROKER_URL = broker_url
        app.conf.broker_url = broker_url
    # Connections made with the old broker would keep publishing there: drop them, the way
    # Celery itself does after a fork. kombu keeps pools in registries keyed by the broker URL;
    # a closed pool left there would be handed out again when that URL comes back.
    from kombu import pools

    pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


def worker_env(sandbox: Sandbox, **overrides: str) -> dict[str, str]:
    """The environment of a test worker: the test database, the session's sandbox, the test
    steps, short waits; `overrides` on top."""
    from django.db import connection

    return {
        **os.environ,
        "WIZARD_TESTING": "1",
        "WIZARD_EXTRA_STEP_MODULES": ",".join(
            [
                "tests.engine_doubles",
                "tests.steps.connect_instance_doubles",
                "tests.steps.iam_flow",
                "tests.steps.aws_step_doubles",
                "tests.steps.crash_points",
            ]
        ),
        # The AWS steps' calls go to this session's sandbox.
        "WIZARD_MODE": "sandbox",
        "WIZARD_SANDBOX_FILE": str(sandbox.state_dir / "sandbox.json"),
        "DATABASE_URL": _database_url(connection.settings_dict),
        "WIZARD_WAIT_COUNTDOWN_S": WORKER_WAIT_COUNTDOWN_S,
        "WIZARD_RETRY_BACKOFF_S": WORKER_RETRY_BACKOFF_S,
        "WIZARD_WORKER_HEARTBEAT_INTERVAL_S": WORKER_HEARTBEAT_INTERVAL_S,
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def spawn_worker(
    folder: Path, env: dict[str, str], *, name: str, concurrency: int = 1
) -> WorkerProcess:
    """Start `celery worker` (prefork) with `env`, logging to folder/worker.log; ready on return."""
    log_path = folder / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "wizard",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(process=process, log_path=log_path)
    try:
        worker.wait_for_log(" ready.", WORKER_READY_TIMEOUT_S)
    except BaseException:
        stop_worker(process)
        raise
    return worker


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[WorkerProcess]:
    from django.conf import settings

    folder = tmp_path_factory.mktemp("celery-worker")
    env = worker_env(sandbox)
    saved_broker_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if not settings.REDIS_URL:
        broker = folder / "broker"
        for name in ("queue", "processed"):
            (broker / name).mkdir(parents=True)
        env["WIZARD_BROKER_DIR"] = str(broker)
        point_this_process_at(
            {
                **saved_broker_options,
                "data_folder_in": str(broker / "queue"),
                "data_folder_out": str(broker / "queue"),
                "processed_folder": str(broker / "processed"),
            }
        )
    worker = spawn_worker(folder, env, name="engine-tests")
    try:
        yield worker
    finally:
        stop_worker(worker.process)
        if not settings.REDIS_URL:
            point_this_process_at(saved_broker_options)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop the worker we started: a warm shutdown of its main process (which stops its pool),
    then SIGKILL for its whole process group if that takes too long."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def celery_worker(celery_worker_process: WorkerProcess, transactional_db: None) -> WorkerProcess:
    """The running worker, for a test with transactional database access (the worker must see
    what the test commits)."""
    if celery_worker_process.process.poll() is not None:
        pytest.fail(f"The worker died:\n{celery_worker_process.log_text()[-4000:]}")
    return celery_worker_process
