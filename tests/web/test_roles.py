"""Who may do what: every named URL, GET and POST, for a visitor, a user with no role, and each
role, answers with the status this table expects; the run writes the table to
tests/artifacts/roles.md."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management.color import no_style
from django.db import connection as db
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from provisioning import secret_box
from provisioning.flows import Flow
from provisioning.models import Connection, UserSync
from tests.web.factories import make_connection, make_run
from wizard import roles
from wizard.roles import ADMIN, OPERATOR, VIEWER, role_group

pytestmark = pytest.mark.django_db

RUN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
SYNC_ID = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
CONNECTION_ID = 41
PERSON_ID = 51
WHO = ("anonymous", "no role", VIEWER, OPERATOR, ADMIN)
METHODS = ("GET", "POST")
LOGIN = 302  # LoginRequiredMiddleware sends a visitor to the sign-in page.
REFUSED = 403  # role_required: the "no role" or "not allowed for your role" page.
# /healthz says 200 or 503 by whether a worker's heartbeat is fresh (another test's worker may be).
HEALTH = frozenset({200, 503})
Status = int | frozenset[int]


def gated(role: str, *, get: int, post: int) -> dict[str, dict[str, int]]:
    """Statuses for a view that needs `role`: a visitor is sent to sign in, a user below the role
    is refused, a user at or above it gets what the view itself answers."""
    return {
        method: {
            who: LOGIN
            if who == "anonymous"
            else (ok if roles.role_allows(who if who in roles.ROLES else None, role) else REFUSED)
            for who in WHO
        }
        for method, ok in (("GET", get), ("POST", post))
    }


def public(*, get: Status | tuple[int, int], post: Status | tuple[int, int]) -> dict[str, Any]:
    """A view without a role check: (visitor, signed-in) statuses, the same for every role."""

    def row(statuses: Status | tuple[int, int]) -> dict[str, Status]:
        anonymous, signed_in = statuses if isinstance(statuses, tuple) else (statuses, statuses)
        return {who: anonymous if who == "anonymous" else signed_in for who in WHO}

    return {"GET": row(get), "POST": row(post)}


# What each named URL answers, per method and per who. The test below fails for a URL that has
# no entry here, so a new view can't slip in without its role.
EXPECTED: dict[str, dict[str, dict[str, Status]]] = {
    "dashboard": gated(VIEWER, get=200, post=405),
    "healthz": public(get=HEALTH, post=405),
    "login": public(get=(200, 302), post=(200, 302)),
    "logout": public(get=(302, 405), post=302),
    "set_language": public(get=302, post=302),
    "set_password": public(get=200, post=200),
    "reauth": gated(VIEWER, get=200, post=200),
    "people": gated(ADMIN, get=200, post=405),
    "person_invite": gated(ADMIN, get=405, post=400),
    "person_role": gated(ADMIN, get=405, post=302),
    "person_deactivate": gated(ADMIN, get=405, post=302),
    "run_new": gated(OPERATOR, get=200, post=200),
    "run_detail": gated(VIEWER, get=200, post=405),
    # The run page's poll: a page that shows no step cards yet is told to reload (204).
    "run_status": gated(VIEWER, get=204, post=405),
    "run_resume": gated(OPERATOR, get=405, post=302),
    "run_cancel": gated(OPERATOR, get=405, post=302),
    "run_rollback": gated(OPERATOR, get=200, post=302),
    "step_retry": gated(OPERATOR, get=405, post=302),
    "step_rerun": gated(OPERATOR, get=405, post=302),
    "step_apply": gated(OPERATOR, get=405, post=302),
    "step_inputs": gated(OPERATOR, get=405, post=302),
    "step_secret": gated(ADMIN, get=405, post=200),
    "directory_picker": gated(OPERATOR, get=200, post=405),
    "step_changes_csv": gated(VIEWER, get=404, post=405),
    "users_from_groups": gated(OPERATOR, get=405, post=302),
    "sync_new": gated(OPERATOR, get=200, post=200),
    "syncs": gated(VIEWER, get=200, post=405),
    "sync_edit": gated(OPERATOR, get=200, post=200),
    "sync_run_now": gated(OPERATOR, get=405, post=302),
    "sync_delete": gated(OPERATOR, get=200, post=302),
    "inspect_sign_in": gated(VIEWER, get=200, post=200),
    # Another admin's reading (or none) is not found; the page posts the response back.
    "inspect_sign_in_result": gated(VIEWER, get=405, post=404),
    # The run has no federation role nor assigned people: nothing to watch (400); no such watch.
    "sign_in_watch_new": gated(OPERATOR, get=200, post=400),
    "sign_in_watch": gated(VIEWER, get=404, post=405),
    "audit_log": gated(VIEWER, get=200, post=405),
    # Checking a federation only reads: every role may. An empty form is shown again with its
    # errors; a check that does not exist is not found.
    "federation_check_new": gated(VIEWER, get=200, post=200),
    "federation_check": gated(VIEWER, get=404, post=405),
    # Checking again only reads too; a check that does not exist is not found.
    "federation_check_again": gated(VIEWER, get=405, post=404),
    # Repair starts a run: an operator's move, on a check that does not exist here.
    "federation_check_repair": gated(OPERATOR, get=405, post=404),
    "federation_check_rotate": gated(OPERATOR, get=405, post=404),
    # A watched federation that does not exist; only admins change its interval or stop
    # watching it; an empty Notifications form is valid (no recipients, the webhook kept) and
    # saved.
    "watched_federation": gated(VIEWER, get=404, post=405),
    "watched_federation_interval": gated(ADMIN, get=405, post=404),
    "watched_federation_stop": gated(ADMIN, get=405, post=404),
    "watched_federation_resume": gated(ADMIN, get=405, post=404),
    # Starting a rotation is starting a run (operators); no such watched federation.
    "watched_federation_rotate": gated(OPERATOR, get=405, post=404),
    "watched_federation_repair": gated(OPERATOR, get=405, post=404),
    "notifications": gated(ADMIN, get=200, post=302),
    # Nothing set up to send to: said on the page it redirects to.
    "notifications_test": gated(ADMIN, get=405, post=302),
    # No such test notification.
    "notifications_test_status": gated(ADMIN, get=404, post=405),
    # Without a format the export is refused, back to the log.
    "audit_export_new": gated(VIEWER, get=405, post=302),
    # Someone else's (or no) export: none to see.
    "audit_export": gated(VIEWER, get=404, post=405),
    "audit_export_download": gated(VIEWER, get=404, post=405),
    "connections": gated(ADMIN, get=200, post=405),
    "connection_new": gated(ADMIN, get=200, post=200),
    "connection_edit": gated(ADMIN, get=200, post=200),
    "connection_test": gated(ADMIN, get=405, post=302),
    "connection_test_status": gated(ADMIN, get=200, post=405),
    "connection_delete": gated(ADMIN, get=200, post=409),
}
# Views anyone may reach without a role: signing in and out, the language, the health probe, the
# invite link.
NO_ROLE_CHECK = {"healthz", "login", "logout", "set_language", "set_password"}

# Values for the URL parameters, by name.
URL_ARGUMENTS: dict[str, Any] = {
    "run_id": RUN_ID,
    "export_id": RUN_ID,
    "sync_id": SYNC_ID,
    "reading_id": uuid.UUID("00000000-0000-4000-8000-0000000000c3"),
    "check_id": uuid.UUID("00000000-0000-4000-8000-0000000000d4"),
    "connection_id": CONNECTION_ID,
    "watched_id": 61,
    "test_id": 62,
    "person_id": PERSON_ID,
    "step_key": "web_create",
    "cloud": "aws",
    "method": "access_key",
    "uidb64": "MQ",
    "token": "not-a-token",
}

_observed: dict[tuple[str, str, str], int] = {}


def _named_patterns(patterns: list[Any], prefix: str = "") -> Iterator[URLPattern]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _named_patterns(pattern.url_patterns)
        elif pattern.name:
            yield pattern


URL_PATTERNS = {pattern.name: pattern for pattern in _named_patterns(get_resolver().url_patterns)}


def _url(name: str) -> str:
    pattern = URL_PATTERNS[name]
    return reverse(name, kwargs={key: URL_ARGUMENTS[key] for key in pattern.pattern.converters})


@pytest.fixture
def world(web_flow: Flow) -> None:
    """One of everything the URLs name: a failed run with a step holding a secret, a sync, a
    connection the run uses (so it can't be deleted), and a person to change."""
    connection = make_connection(pk=CONNECTION_ID)
    idp = make_connection(cloud="entra")
    run = make_run(
        pk=RUN_ID,
        status="failed",
        aws_connection=connection,
        idp_connection=idp,
        steps=[
            {"key": "web_ask", "status": "succeeded"},
            {
                "key": "web_create",
                "status": "failed",
                "created_resources": [{"type": "instance", "id": "i-1"}],
            },
        ],
    )
    run.steps.filter(key="web_create").update(
        secret_ciphertext=secret_box.encrypt_json({"AKIAEXAMPLE": "secret-value-shown-once"})
    )
    UserSync.objects.create(
        pk=SYNC_ID,
        idp="entra",
        region="ap-northeast-1",
        instance_id="instance-1",
        aws_connection=connection,
        idp_connection=idp,
        setup=run,
    )
    User.objects.create_user("person", pk=PERSON_ID).groups.add(role_group(VIEWER))
    # Rows written with explicit ids leave PostgreSQL's sequences behind (and a rolled-back test
    # does not roll a sequence back): without this, the 41st test's new connection is given id 41.
    with db.cursor() as cursor:
        for sql in db.ops.sequence_reset_sql(no_style(), [Connection, User]):
            cursor.execute(sql)


def _client(who: str) -> Client:
    client = Client()
    if who == "anonymous":
        return client
    # No password: hashing one for each of these hundreds of tests would take most of their time.
    user = User.objects.create_user(f"{who.replace(' ', '-')}-user")
    if who in roles.ROLES:
        user.groups.add(role_group(who))
    # force_login signs in through login(), so the password counts as just typed.
    client.force_login(user)
    return client


@pytest.fixture(scope="module", autouse=True)
def roles_table(artifacts_dir: Path) -> Iterator[None]:
    """Write what every URL answered, per method and per who, as a Markdown table."""
    yield
    if not _observed:
        return
    lines = [
        "# Role × view × method",
        "",
        "Written by tests/web/test_roles.py: the HTTP status each URL answered. 302 for a visitor"
        " is the sign-in page; 403 is the no-role or not-allowed page; 405 a method the view"
        " refuses.",
        "",
        "| URL name | Path | Method | Role needed | " + " | ".join(WHO) + " |",
        "|---|---|---|---|" + "---|" * len(WHO),
    ]
    for name in EXPECTED:
        if name not in URL_PATTERNS:
            continue
        callback = URL_PATTERNS[name].callback
        needed = getattr(callback, "required_role", "none")
        if getattr(callback, "asks_recent_password", False):
            needed += " + recent password"
        for method in METHODS:
            cells = [str(_observed.get((name, method, who), "")) for who in WHO]
            lines.append(
                f"| `{name}` | `{_url(name)}` | {method} | {needed} | " + " | ".join(cells) + " |"
            )
    (artifacts_dir / "roles.md").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(URL_PATTERNS))
def test_it_answers_each_role_as_the_table_says(
    world: None, name: str, method: str, who: str
) -> None:
    assert name in EXPECTED, f"{name} has no row in EXPECTED: say which role it needs"
    client = _client(who)
    url = _url(name)

    response = client.get(url) if method == "GET" else client.post(url)

    _observed[(name, method, who)] = response.status_code
    expected = EXPECTED[name][method][who]
    allowed = expected if isinstance(expected, frozenset) else {expected}
    assert response.status_code in allowed, (name, method, who)
    if response.status_code == REFUSED:
        assert response.templates[0].name == "role_refused.html"


def test_every_row_of_the_table_names_a_url() -> None:
    assert set(EXPECTED) - set(URL_PATTERNS) == set()


def test_every_view_but_the_public_ones_checks_a_role() -> None:
    unchecked = {
        name
        for name, pattern in URL_PATTERNS.items()
        if not hasattr(pattern.callback, "required_role")
    }

    assert unchecked == NO_ROLE_CHECK
