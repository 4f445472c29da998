"""Issue 7's benchmark: N = 2000 Connect users created from an IdP group by the wizard, with 4
worker processes, against the sandbox with CreateUser limited to R = 20 requests/s, burst 5 (the
real 2/s scaled by 10); once undisturbed, once with a worker SIGKILLed during the run; and beside
them the baseline an admin would write (bench/bulk_users_baseline.py).

The wizard runs as in production: PostgreSQL and Redis when they answer on this machine (a
throwaway database, Redis database 14), else SQLite and the embedded broker; the sandbox in this
process; 4 `celery worker --concurrency 1` processes; the run started as the "Add Connect users
from groups" button starts it, applied without review. Records, for each: n (users created),
quota_rps (the rate the wizard read from Service Quotas), achieved_rps (n / wall_s), utilisation
(achieved / quota), failed, duplicates (successful CreateUser calls beyond one per username, and
users in Connect beyond n), wall_s (from the moment the work was dispatched to the last user
created), run_s (the whole run: preflight, reading the group, the plan, the work, the check),
throttled (CreateUser calls the sandbox refused).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import bulk_users_baseline
from sandbox.directory import CONTACT_CENTRE_GROUP
from sandbox.knobs import Knobs
from sandbox.server import Sandbox

REPO = Path(__file__).resolve().parents[1]
USERS = int(os.environ.get("BENCH_USERS", "2000"))
WORKERS = 4
RATE_SCALE = 10  # CreateUser's real 2/s burst 5 becomes 20/s burst 5
QUOTA_RPS = 2.0 * RATE_SCALE
# The seeded awkward people (sandbox/directory.py): three of the six can't have a Connect user
# (an apostrophe in the UPN, a UPN over 64 characters, no surname), so 3 more agents than N-3
# make exactly N users.
AWKWARD_ACCEPTED = 3
KILL_AT_SHARE = 0.3
RUN_TIMEOUT_S = 900
WORKER_READY_TIMEOUT_S = 120
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def _postgres_database() -> str | None:
    """A new empty database on the local PostgreSQL, or None when none answers."""
    try:
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # noqa: BLE001 - no PostgreSQL here: the embedded defaults instead
        return None
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
    except Exception:  # noqa: BLE001 - no Redis here: the embedded broker instead
        return None
    return REDIS_URL


def run() -> dict[str, dict[str, Any]]:
    records = {"bulk_users_baseline": bulk_users_baseline.run()}
    with tempfile.TemporaryDirectory() as state:
        state_dir = Path(state)
        database_url = _postgres_database()
        redis_url = _redis()
        env = {
            **os.environ,
            "WIZARD_TESTING": "1",
            "WIZARD_MODE": "sandbox",
            "WIZARD_VAR_DIR": str(state_dir / "var"),
            "WIZARD_SANDBOX_FILE": str(state_dir / "sandbox.json"),
            "DATABASE_URL": database_url or f"sqlite:///{state_dir / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "wizard.settings",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        os.environ.update(env)
        if not redis_url:
            os.environ.pop("REDIS_URL", None)
        knobs = Knobs(
            rate_scale=RATE_SCALE,
            instance_creation_delay_s=0,
            graph_visibility_delay_s=0,
            directory_agents=USERS - AWKWARD_ACCEPTED,
        )
        sandbox = Sandbox(state_dir=state_dir / "sandbox", knobs=knobs)
        sandbox.start()
        sandbox.write_endpoints(state_dir / "sandbox.json")
        try:
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            backend = {
                "database": "postgresql" if database_url else "sqlite",
                "broker": "redis" if redis_url else "filesystem",
            }
            for name, kill in (("bulk_users", False), ("bulk_users_with_kill", True)):
                print(f"{name}: running…", file=sys.stderr, flush=True)
                records[name] = {**_measure(sandbox, state_dir, env, kill=kill), **backend}
        finally:
            sandbox.stop()
            if database_url:
                from django.db import connections

                connections.close_all()
                _drop_postgres_database(database_url)
    return records


def _start_workers(state_dir: Path, env: dict[str, str], tag: str) -> list[subprocess.Popen[bytes]]:
    workers = []
    for number in range(WORKERS):
        log = open(state_dir / f"worker-{tag}-{number}.log", "wb")  # noqa: SIM115 - closed with the process
        workers.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "celery"),
                    "-A",
                    "wizard",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"bench-{tag}-{number}@%h",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    from provisioning.models import WorkerHeartbeat

    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while WorkerHeartbeat.objects.filter(hostname__startswith=f"bench-{tag}-").count() < WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start")
        time.sleep(0.5)
    return workers


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _measure(
    sandbox: Sandbox, state_dir: Path, env: dict[str, str], *, kill: bool
) -> dict[str, Any]:
    from provisioning.connections.sandbox_registration import register_sandbox_connections
    from provisioning.models import Cloud, Connection, RunStatus, UserChange, UserChangeSet
    from provisioning.runs import admin_moves

    register_sandbox_connections(sandbox_file=state_dir / "sandbox.json")
    instance_id = bulk_users_baseline.instance_with_room(sandbox)
    sandbox.knobs.reset_buckets()
    sandbox.knobs.reset_throttled()
    tag = uuid.uuid4().hex[:6]
    workers = _start_workers(state_dir, env, tag)
    killed = ""
    try:
        started = time.monotonic()
        run = admin_moves.run_create(
            user=None,
            flow_key="entra_users",
            region=sandbox.endpoints["aws_region"],
            instance_id=instance_id,
            aws_connection_id=Connection.objects.get(cloud=Cloud.AWS, is_sandbox=True).pk,
            idp_connection_id=Connection.objects.get(cloud=Cloud.ENTRA, is_sandbox=True).pk,
            step_inputs={
                "group_users": {
                    "groups": [
                        {
                            "group": CONTACT_CENTRE_GROUP,
                            "security_profiles": ["Agent"],
                            "routing_profile": "Basic Routing Profile",
                        }
                    ],
                    "username_source": "userprincipalname",
                }
            },
        )
        created = UserChange.objects.filter(change_set__step_run__run=run, outcome="created")
        deadline = started + RUN_TIMEOUT_S
        while True:
            run.refresh_from_db()
            if run.is_at_rest or time.monotonic() > deadline:
                break
            if kill and not killed and created.count() >= USERS * KILL_AT_SHARE:
                victim = workers[1]
                os.killpg(victim.pid, signal.SIGKILL)
                killed = f"worker 1 of {WORKERS} (pid {victim.pid}) at {created.count()} users"
                print(f"  SIGKILLed {killed}", file=sys.stderr, flush=True)
            time.sleep(0.25)
        run_s = time.monotonic() - started
    finally:
        _stop_workers(workers)
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the run ended {run.status}: {json.dumps(run.error)}")
    change_set = UserChangeSet.objects.get(step_run__run=run, purpose="apply")
    rows = UserChange.objects.filter(change_set=change_set, action="create")
    n = rows.filter(outcome="created").count()
    last = rows.order_by("-finished_at").values_list("finished_at", flat=True).first()
    wall_s = (last - change_set.dispatched_at).total_seconds()
    achieved = n / wall_s
    quota = float(change_set.rate["per_second"])
    return {
        "n": n,
        "quota_rps": quota,
        "quota_source": change_set.rate.get("source", ""),
        "achieved_rps": round(achieved, 2),
        "utilisation": round(achieved / quota, 3),
        "failed": rows.filter(status="failed").count(),
        "duplicates": _duplicates(run, instance_id, n),
        "wall_s": round(wall_s, 1),
        "run_s": round(run_s, 1),
        "throttled": sandbox.knobs.throttled("connect:CreateUser"),
        "workers": WORKERS,
        **({"killed": killed} if kill else {}),
    }


def _duplicates(run: Any, instance_id: str, n: int) -> int:
    """Successful CreateUser calls beyond one per username, plus users in Connect beyond n."""
    from provisioning.models import AuditEvent, AuditKind

    finished = AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_FINISHED, operation="CreateUser", outcome="ok"
    ).values_list("call_id", flat=True)
    usernames = AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_STARTED, operation="CreateUser", call_id__in=list(finished)
    ).values_list("request__Username", flat=True)
    calls = list(usernames)
    return (len(calls) - len(set(calls))) + max(0, _connect_users(instance_id) - n)


def _connect_users(instance_id: str) -> int:
    from provisioning.audit import AuditScope
    from provisioning.aws.client import aws_client
    from provisioning.models import Connection

    connection = Connection.objects.get(cloud="aws", is_sandbox=True)
    connect = aws_client(connection, "connect", region="", audit=AuditScope(actor_label="bench"))
    count = 0
    for page in connect.get_paginator("list_users").paginate(
        InstanceId=instance_id, PaginationConfig={"PageSize": 1000}
    ):
        count += len(page["UserSummaryList"])
    return count


if __name__ == "__main__":
    print(json.dumps(run()))
