"""The "Check a federation" page: any signed-in role may ask for a check, the form says what to
fix, the request calls no cloud (it saves the check and enqueues the worker), CSRF is required,
and a finished check draws each link's state and the findings, each with an id of its own that the
chain's link leads to."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from provisioning.federation_check.result import FederationCheck, LinkState
from provisioning.models import FederationCheckRecord, FederationCheckStatus
from tests.web.factories import make_connection
from tests.web.test_federation_check_fixes import FINDINGS, check_record, user
from wizard.roles import OPERATOR, VIEWER, role_group

INSTANCE_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def viewer(db: None) -> User:
    user = User.objects.create_user("viewer", password="x")
    user.groups.add(role_group(VIEWER))
    return user


def form_data(**changes: Any) -> dict[str, Any]:
    aws = make_connection("aws", name="Prod AWS")
    idp = make_connection("entra", name="Contoso")
    return {
        "aws_connection": aws.pk,
        "region": "ap-northeast-1",
        "instance": "contact-center",
        "idp_connection": idp.pk,
        "app_id": "",
        **changes,
    }


def test_it_sends_an_anonymous_visitor_to_sign_in(client: Client, db: None) -> None:
    response = client.get(reverse("federation_check_new"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_viewer_asks_for_a_check_and_a_worker_gets_it(
    client: Client, viewer: User, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(viewer)
    with (
        mock.patch("provisioning.tasks.run_federation_check.delay") as enqueued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(reverse("federation_check_new"), form_data())

    record = FederationCheckRecord.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("federation_check", args=[record.pk])
    enqueued.assert_called_once_with(str(record.pk))
    assert (record.instance, record.region, record.requested_by) == (
        "contact-center",
        "ap-northeast-1",
        viewer,
    )
    page = client.get(response["Location"])
    assert b'id="check-pending"' in page.content
    assert b'hx-trigger="every 1s"' in page.content


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("instance", "not an alias!", "Enter the instance ID"),
        ("region", "tokyo", "A region looks like ap-northeast-1."),
        ("app_id", "../../etc", "An app ID is letters, digits and hyphens"),
    ],
)
def test_it_says_what_to_fix_in_the_form(
    client: Client, viewer: User, field: str, value: str, message: str
) -> None:
    client.force_login(viewer)

    response = client.post(reverse("federation_check_new"), form_data(**{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not FederationCheckRecord.objects.exists()


def test_it_refuses_a_check_without_the_csrf_token(viewer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)

    response = client.post(reverse("federation_check_new"), form_data())

    assert response.status_code == 403
    assert not FederationCheckRecord.objects.exists()


def test_it_draws_a_finished_check_in_japanese_and_stops_polling(
    client: Client, viewer: User
) -> None:
    result = FederationCheck(
        aws_connection="Prod AWS", region="ap-northeast-1", instance=INSTANCE_ID, idp_connection="C"
    )
    for link in result.links:
        link.state = LinkState.OK
    result.add("connect_users", "person_without_user", names="kenji@contoso.jp", more=0)
    record = FederationCheckRecord.objects.create(
        aws_connection=make_connection("aws", name="Prod AWS"),
        idp_connection=make_connection("entra", name="C"),
        region="ap-northeast-1",
        instance=INSTANCE_ID,
        status=FederationCheckStatus.DONE,
        result=result.to_json(),
    )
    client.force_login(viewer)

    page = client.get(
        reverse("federation_check", args=[record.pk]),
        headers={"HX-Request": "true", "Accept-Language": "ja"},
    )

    assert page.status_code == 286  # htmx: stop polling
    html = page.content.decode()
    assert 'data-link="connect_users" data-state="broken"' in html
    assert 'data-link="idp_app" data-state="done"' in html
    assert "割り当て済みの次のユーザーには Connect ユーザーがありません: kenji@contoso.jp" in html


class _IdsAndReferences(HTMLParser):
    """Every element id of a page, and every id its links, labels and ARIA attributes name."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()
        self.references: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            if name == "id":
                self.ids[value] += 1
            elif name == "href" and value.startswith("#") and len(value) > 1:
                self.references.append((name, value[1:]))
            elif name in ("for", "aria-describedby", "aria-labelledby", "aria-controls"):
                self.references.extend((name, referenced) for referenced in value.split())


def test_each_finding_of_a_link_has_its_own_id_and_the_chain_leads_to_the_first(
    client: Client, db: None
) -> None:
    """Two findings on one link (the IdP app's, the Connect users') each get an id of their own,
    and every link, label and ARIA reference of the page names an element that exists."""
    record = check_record("entra")
    client.force_login(user("operator", OPERATOR))

    page = client.get(reverse("federation_check", args=[record.pk])).content.decode()

    parsed = _IdsAndReferences()
    parsed.feed(page)
    assert [name for name, count in parsed.ids.items() if count > 1] == []
    assert [ref for ref in parsed.references if ref[1] not in parsed.ids] == []
    links = Counter(link for link, _severity, _params in FINDINGS.values())
    assert links["idp_app"] == 2 and links["connect_users"] == 2
    for link in links:
        # The chain's box of a link leads to its first finding.
        assert f'href="#findings-{link}"' in page
        assert f'<li id="findings-{link}"' in page
