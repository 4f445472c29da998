"""The People page: invite with a set-password link, change a role, deactivate, never lose the last
admin, every change in the audit log; and the page a user with no role sees."""

from __future__ import annotations

import html
import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from provisioning import secret_box
from provisioning.flows import Flow
from provisioning.models import AuditEvent, AuditKind
from tests.web.conftest import PASSWORD
from tests.web.factories import make_run
from wizard.roles import ADMIN, OPERATOR, ROLES, VIEWER, role_group, role_of

pytestmark = pytest.mark.django_db

role_groups_migration = importlib.import_module("wizard.migrations.0006_roles")


def _person(name: str, role: str | None = None, **fields: object) -> User:
    person = User.objects.create_user(name, **fields)
    if role:
        person.groups.add(role_group(role))
    return person


def _role(person: User) -> str | None:
    return role_of(User.objects.get(pk=person.pk))


def test_it_invites_a_person_who_sets_a_password_with_the_link_once(
    admin_client: Client, client: Client
) -> None:
    response = admin_client.post(
        reverse("person_invite"),
        {"username": "hanako", "email": "hanako@example.com", "role": OPERATOR},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    link = re.search(r'id="set-password-link">(http://testserver/set-password/[^<]+)<', html)
    assert link is not None
    hanako = User.objects.get(username="hanako")
    assert _role(hanako) == OPERATOR
    assert not hanako.has_usable_password()
    form_page = client.get(link.group(1), follow=True)
    new_password = "a fresh long passphrase 42"
    set_password = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
    )
    assert set_password["Location"] == reverse("login")
    signed_in = client.post(reverse("login"), {"username": "hanako", "password": new_password})
    assert signed_in["Location"] == reverse("dashboard")
    assert "This link has been used or has expired" in (
        Client().get(link.group(1), follow=True).content.decode()
    )
    event = AuditEvent.objects.get(kind=AuditKind.PERSON)
    assert event.actor_label == "admin"
    assert event.old_value == {}
    assert event.new_value == {"person": "hanako", "role": OPERATOR, "active": True}


def test_it_refuses_to_invite_a_taken_user_name_and_keeps_the_form(admin_client: Client) -> None:
    _person("hanako", VIEWER)

    response = admin_client.post(
        reverse("person_invite"), {"username": "Hanako", "email": "", "role": ADMIN}
    )

    assert response.status_code == 400
    assert "Someone is already called “Hanako”" in response.content.decode()
    assert 'value="Hanako"' in response.content.decode()
    assert not AuditEvent.objects.filter(kind=AuditKind.PERSON).exists()


def test_it_changes_a_role_and_audits_old_and_new(admin_client: Client) -> None:
    taro = _person("taro", VIEWER)

    response = admin_client.post(
        reverse("person_role", args=[taro.pk]), {f"person-{taro.pk}-role": OPERATOR}
    )

    assert response["Location"] == reverse("people")
    assert _role(taro) == OPERATOR
    event = AuditEvent.objects.get(kind=AuditKind.PERSON)
    assert (event.old_value, event.new_value) == (
        {"person": "taro", "role": VIEWER},
        {"person": "taro", "role": OPERATOR},
    )
    page = admin_client.get(reverse("people")).content.decode()
    assert "The role is saved." in page
    audit_page = admin_client.get(reverse("audit_log")).content.decode()
    assert "Person changed" in audit_page
    assert "taro&#x27;s role changed from viewer to operator." in audit_page


def test_it_deactivates_someone_else_and_audits_it(admin_client: Client) -> None:
    taro = _person("taro", OPERATOR, password=PASSWORD)

    admin_client.post(reverse("person_deactivate", args=[taro.pk]))

    assert not User.objects.get(pk=taro.pk).is_active
    refused = Client().post(reverse("login"), {"username": "taro", "password": PASSWORD})
    assert refused.status_code == 200
    event = AuditEvent.objects.get(kind=AuditKind.PERSON)
    assert event.new_value == {"person": "taro", "active": False}


def test_it_never_deactivates_yourself(admin_client: Client, admin_user: User) -> None:
    _person("other-admin", ADMIN)

    response = admin_client.post(reverse("person_deactivate", args=[admin_user.pk]), follow=True)

    assert User.objects.get(pk=admin_user.pk).is_active
    assert "You can't deactivate yourself" in html.unescape(response.content.decode())
    assert not AuditEvent.objects.filter(kind=AuditKind.PERSON).exists()


def test_it_never_demotes_or_deactivates_the_last_active_admin(
    admin_client: Client, admin_user: User
) -> None:
    other = _person("other-admin", ADMIN)
    admin_client.post(reverse("person_deactivate", args=[other.pk]))
    assert _role(admin_user) == ADMIN

    demoted = admin_client.post(
        reverse("person_role", args=[admin_user.pk]),
        {f"person-{admin_user.pk}-role": VIEWER},
        follow=True,
    )

    assert _role(admin_user) == ADMIN
    assert "admin is the last active admin" in demoted.content.decode()
    assert AuditEvent.objects.filter(kind=AuditKind.PERSON).count() == 1


def test_it_shows_people_with_their_roles_and_no_deactivate_button_for_yourself(
    admin_client: Client, admin_user: User
) -> None:
    taro = _person("taro", VIEWER)

    html = admin_client.get(reverse("people")).content.decode()

    assert reverse("person_deactivate", args=[taro.pk]) in html
    assert reverse("person_deactivate", args=[admin_user.pk]) not in html
    assert '<option value="viewer" selected>' in html


def test_a_user_with_no_role_sees_only_whom_to_ask(client: Client) -> None:
    _person("boss", ADMIN, first_name="Sachiko", last_name="Ito")
    User.objects.create_superuser("root", password=PASSWORD)
    _person("former-admin", ADMIN, is_active=False)
    client.force_login(_person("newcomer"))

    response = client.get(reverse("dashboard"))

    html = response.content.decode()
    assert response.status_code == 403
    assert "You have no role yet" in html
    assert "Sachiko Ito (boss)" in html and "root" in html
    assert "former-admin" not in html
    assert 'class="main-nav"' not in html
    assert reverse("logout") in html


def test_a_viewer_sees_no_menu_entry_or_button_it_cannot_use(client: Client) -> None:
    client.force_login(_person("reader", VIEWER))

    html = client.get(reverse("dashboard")).content.decode()

    assert reverse("audit_log") in html and reverse("syncs") in html
    for url in (reverse("run_new"), reverse("connections"), reverse("people")):
        assert f'href="{url}"' not in html


def test_the_japanese_pages_say_the_role_messages_in_japanese(client: Client) -> None:
    client.force_login(_person("newcomer"))
    client.cookies["django_language"] = "ja"

    html = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="ja").content.decode()

    assert "ロールがまだありません" in html


def test_ensure_admin_puts_the_first_login_in_the_admin_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORD)

    call_command("ensure_admin", username="first")

    first = User.objects.get(username="first")
    assert first.groups.filter(name=ADMIN).exists()
    assert _role(first) == ADMIN


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (VIEWER, [], ["run_resume", "run_rollback", "step_retry", "step_secret"]),
        (OPERATOR, ["run_resume", "run_rollback", "step_retry"], ["step_secret"]),
        (ADMIN, ["run_resume", "run_rollback", "step_retry", "step_secret"], []),
    ],
)
def test_the_run_page_shows_only_the_buttons_the_role_may_use(
    client: Client, web_flow: Flow, role: str, shown: list[str], hidden: list[str]
) -> None:
    run = make_run(
        status="failed",
        steps=[
            {
                "key": "web_create",
                "status": "failed",
                "created_resources": [{"type": "instance", "id": "i-1"}],
                "secret_ciphertext": secret_box.encrypt_json({"AKIAEXAMPLE": "shown-once"}),
            }
        ],
    )
    client.force_login(_person(f"{role}-person", role))

    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()

    def url(name: str) -> str:
        return reverse(name, args=[run.pk] if name.startswith("run_") else [run.pk, "web_create"])

    assert [name for name in shown if url(name) in page] == shown
    assert [name for name in hidden if url(name) in page] == []
    if role == ADMIN:
        back = reverse("run_detail", args=[run.pk]) + "#step-web_create"
        assert f'name="next" value="{back}"' in page


def test_the_migration_makes_the_three_role_groups_once() -> None:
    # Its function, not its past effect: a transactional test elsewhere in the session empties
    # the tables, groups included, and the test order decides whether that came first.
    Group.objects.all().delete()

    role_groups_migration.create_role_groups(django_apps, None)
    role_groups_migration.create_role_groups(django_apps, None)

    assert sorted(Group.objects.values_list("name", flat=True)) == sorted(ROLES)
