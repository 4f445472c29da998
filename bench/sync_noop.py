"""Issue 17's `sync_noop`: what a scheduled sync of a 20,000-member group costs when nothing
changed, against the same sync's first run, which reads everything.

Against the sandbox, in this process (SQLite and the embedded broker, runs driven here as
`setup_sso` drives them): a directory of N agents in "Contact Centre" (N = BENCH_SYNC_MEMBERS,
20,000 by default; nested groups, so the group holds N people and a few more); a users run of
the group (not measured; their Connect users are put straight into the sandbox's Connect first,
so it finds them all rather than making 20,000); a sync of the group; its first run reads in full
(every member from Graph, every Connect user), its second finds nothing changed. For each of the
two runs: IdP calls and Connect calls (the run's audited calls), every AWS call, the rows planned,
and wall_s (the run, from its creation until it is at rest). Entra ID and Okta each.

The sandbox's rates are scaled up (RATE_SCALE) so the users run's 20,000 CreateUser calls don't
take three hours; call counts don't depend on it, the first run's wall_s does (its Connect reads
are paced at the scaled quota).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.directory import CONTACT_CENTRE_GROUP
from sandbox.knobs import Knobs
from sandbox.server import Sandbox

MEMBERS = int(os.environ.get("BENCH_SYNC_MEMBERS", "20000"))
# Every rate x100: CreateUser's 2/s becomes 200/s.
RATE_SCALE = 100
RUN_TIMEOUT_S = 3600


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as state:
        state_dir = Path(state)
        os.environ.update(
            {
                "WIZARD_TESTING": "1",
                "WIZARD_MODE": "sandbox",
                "WIZARD_VAR_DIR": str(state_dir / "var"),
                "WIZARD_SANDBOX_FILE": str(state_dir / "sandbox.json"),
                "DATABASE_URL": f"sqlite:///{state_dir / 'bench.sqlite3'}",
                "DJANGO_SETTINGS_MODULE": "wizard.settings",
                # One process does all the work: no helper workers to wait for.
                "WIZARD_USER_CHANGES_INLINE_MAX": str(10 * MEMBERS),
                "WIZARD_USER_CHANGES_INLINE_S": "600",
            }
        )
        os.environ.pop("REDIS_URL", None)
        knobs = Knobs(
            rate_scale=RATE_SCALE,
            instance_creation_delay_s=0,
            graph_visibility_delay_s=0,
            directory_agents=MEMBERS,
        )
        sandbox = Sandbox(state_dir=state_dir / "sandbox", knobs=knobs)
        sandbox.start()
        sandbox.write_endpoints(state_dir / "sandbox.json")
        try:
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            from provisioning.connections.sandbox_registration import register_sandbox_connections

            register_sandbox_connections(sandbox_file=state_dir / "sandbox.json")
            records = {}
            for idp in ("entra", "okta"):
                print(f"sync_noop {idp}: running…", file=sys.stderr, flush=True)
                records[f"sync_noop_{idp}"] = _measure(sandbox, idp, CONTACT_CENTRE_GROUP)
                print(json.dumps(records[f"sync_noop_{idp}"]), file=sys.stderr, flush=True)
        finally:
            sandbox.stop()
    return records


def _measure(sandbox: Sandbox, idp: str, group: str) -> dict[str, Any]:
    from provisioning.connections.sandbox_registration import SANDBOX_OKTA_SERVICE_APP
    from provisioning.models import Cloud, Connection, RunStatus
    from provisioning.runs import admin_moves
    from provisioning.services.user_syncs import sync_create, sync_start

    instance_id = _instance_with_room(sandbox, 2 * MEMBERS)
    _seed_connect_users(sandbox, instance_id, _people(sandbox, idp, group))
    started = time.monotonic()
    users = admin_moves.run_create(
        user=None,
        flow_key=f"{idp}_users",
        region=sandbox.endpoints["aws_region"],
        instance_id=instance_id,
        aws_connection_id=Connection.objects.get(cloud=Cloud.AWS, is_sandbox=True).pk,
        # The API-token connection (Okta's sandbox also registers an OAuth service app).
        idp_connection_id=Connection.objects.filter(cloud=idp, is_sandbox=True)
        .exclude(name=SANDBOX_OKTA_SERVICE_APP)
        .get()
        .pk,
        step_inputs={
            "group_users": {
                "groups": [
                    {
                        "group": group,
                        "security_profiles": ["Agent"],
                        "routing_profile": "Basic Routing Profile",
                    }
                ],
                "username_source": "userprincipalname" if idp == "entra" else "${source.login}",
            }
        },
        review_plans=False,
    )
    users = _drive(users)
    if users.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the users run ended {users.status}: {json.dumps(users.error)}")
    users_run_s = time.monotonic() - started
    sync = sync_create(user=None, run_id=users.pk, every_hours=24, departures="report")
    first = _timed(sync_start(user=None, sync_id=sync.pk))
    second = _timed(sync_start(user=None, sync_id=sync.pk))
    record: dict[str, Any] = {
        "idp": idp,
        "group": group,
        "members": first.pop("people"),
        "users_run_s": round(users_run_s, 1),
        "rate_scale": RATE_SCALE,
        "first_sync": first,
        "noop_sync": second,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    second.pop("people")
    return record


def _timed(run: Any) -> dict[str, Any]:
    from provisioning.models import AuditEvent, AuditKind, RunStatus, UserChange

    started = time.monotonic()
    run = _drive(run)
    wall_s = time.monotonic() - started
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the sync run ended {run.status}: {json.dumps(run.error)}")
    calls = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED)
    reading = run.steps.get(key="group_users").plan.get("sync_reading") or {}
    rows = UserChange.objects.filter(change_set__step_run__run=run, change_set__purpose="apply")
    return {
        "read": f"{reading.get('mode')} ({reading.get('reason')})",
        "idp_calls": calls.exclude(cloud="aws").count(),
        "connect_calls": calls.filter(cloud="aws", service="connect").count(),
        "aws_calls": calls.filter(cloud="aws").count(),
        "rows_planned": rows.count(),
        "people": rows.exclude(action="departed").count(),
        "wall_s": round(wall_s, 2),
    }


def _drive(run: Any) -> Any:
    """Advance the run here until it is at rest (plans are applied without review)."""
    from provisioning.runs import runner

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        countdown = runner.advance(run.pk)
        run.refresh_from_db()
        if run.is_at_rest:
            return run
        time.sleep(min(countdown or 0.05, 1.0))
    raise RuntimeError(f"run {run.pk} still {run.status} after {RUN_TIMEOUT_S} s")


def _people(sandbox: Sandbox, idp: str, group: str) -> list[tuple[str, str, str]]:
    """(Connect username, first name, last name) of everyone in the IdP group, as the run
    will name them (Entra: the UPN; Okta: the login)."""
    if idp == "entra":
        tenant = sandbox.apps["entra"].tenant
        group_id = next(g["id"] for g in tenant.groups.values() if g["displayName"] == group)
        users = [tenant.users[i] for i in tenant.transitive_members(group_id) if i in tenant.users]
        return [
            (u["userPrincipalName"], u.get("givenName") or "", u.get("surname") or "")
            for u in users
        ]
    org = sandbox.apps["okta"].org
    members = next(g for g in org.groups.values() if g.name == group).member_ids
    return [(u.login, u.first_name, u.last_name) for u in (org.users[i] for i in members)]


def _seed_connect_users(
    sandbox: Sandbox, instance_id: str, people: list[tuple[str, str, str]]
) -> None:
    """Give everyone a Connect user straight in the sandbox's Connect (20,000 CreateUser calls
    through the wizard would measure the users run, which bench/bulk_users.py does): the users
    run then finds them all, and its plan is the sync's managed set."""
    from bench.bulk_users_baseline import _client
    from sandbox.aws.connect import ApiError, ConnectCall
    from sandbox.server import AWS_ACCOUNT_ID

    connect = _client(sandbox.endpoints, "connect")
    profile = next(
        summary["Id"]
        for summary in connect.list_security_profiles(InstanceId=instance_id)[
            "SecurityProfileSummaryList"
        ]
        if summary["Name"] == "Agent"
    )
    routing = next(
        summary["Id"]
        for summary in connect.list_routing_profiles(InstanceId=instance_id)[
            "RoutingProfileSummaryList"
        ]
        if summary["Name"] == "Basic Routing Profile"
    )
    service = sandbox.apps["aws"].connect
    for username, first, last in people:
        params = {
            "InstanceId": instance_id,
            "Username": username,
            "IdentityInfo": {"FirstName": first, "LastName": last},
            "PhoneConfig": {"PhoneType": "SOFT_PHONE"},
            "SecurityProfileIds": [profile],
            "RoutingProfileId": routing,
        }
        try:
            service.call(
                ConnectCall("CreateUser", sandbox.endpoints["aws_region"], AWS_ACCOUNT_ID, params)
            )
        except ApiError:
            continue  # a username Connect refuses: the run refuses that person too


def _instance_with_room(sandbox: Sandbox, users: int) -> str:
    """A new SAML instance whose Users per instance quota holds `users` (the increase approved
    at once by the sandbox's hook)."""
    from bench.bulk_users_baseline import _client
    from provisioning.user_changes.instance import USERS_PER_INSTANCE_QUOTA

    connect = _client(sandbox.endpoints, "connect")
    quotas = _client(sandbox.endpoints, "service-quotas")
    instance = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=f"bench-{uuid.uuid4().hex[:8]}",
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    request = quotas.request_service_quota_increase(
        ServiceCode="connect",
        QuotaCode=USERS_PER_INSTANCE_QUOTA,
        DesiredValue=users,
        ContextId=instance["Arn"],
    )
    sandbox.apps["aws"].service_quotas.set_status(request["RequestedQuota"]["Id"], "APPROVED")
    return str(instance["Id"])


if __name__ == "__main__":
    print(json.dumps(run()))
