"""The chain diagram: each link's state from its steps, its key fact and link to its step, for
Entra, Okta and users runs, drawn as an SVG that reads without JavaScript."""

from __future__ import annotations

import re

import pytest
from defusedxml import ElementTree
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from tests.web.factories import make_run
from wizard.selectors.chain import LinkState, chain_links
from wizard.templatetags.wizard_tags import chain_diagram

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def _entra_run(**statuses: str) -> object:
    outputs = {
        "entra_app": {"display_name": "Amazon Connect sales"},
        "entra_claims": {"relay_state": "https://example.awsapps.com/connect/federation"},
        "saml_provider": {"provider_name": "ConnectSSO-sales"},
        "federation_role": {"role_name": "ConnectSSO-sales-role"},
        "connect_instance": {"instance_alias": "sales"},
        "connect_users": {"users": [{"username": "a"}, {"username": "b"}, {"username": "c"}]},
    }
    keys = [
        "entra_preflight",
        "connect_instance",
        "entra_app",
        "saml_provider",
        "federation_policy",
        "federation_role",
        "entra_claims",
        "entra_assignments",
        "connect_users",
        "sign_in_test",
    ]
    status = statuses.pop("run", "succeeded")
    return make_run(
        flow_key="entra",
        status=status,
        instance_alias="sales",
        steps=[
            {"key": key, "status": statuses.get(key, "succeeded"), "outputs": outputs.get(key, {})}
            for key in keys
        ],
    )


def test_it_draws_the_six_links_of_a_finished_entra_run_with_their_facts() -> None:
    run = _entra_run()

    links = chain_links(run)

    assert [link.kind for link in links] == [
        "idp_app",
        "claims",
        "saml_provider",
        "federation_role",
        "connect_instance",
        "connect_users",
    ]
    assert {link.state for link in links} == {LinkState.DONE}
    facts = {link.kind: link.fact for link in links}
    assert facts["idp_app"] == "Amazon Connect sales"
    assert facts["saml_provider"] == "ConnectSSO-sales"
    assert facts["federation_role"] == "ConnectSSO-sales-role"
    assert facts["connect_instance"] == "sales"
    assert facts["connect_users"] == "3 users"
    role = next(link for link in links if link.kind == "federation_role")
    assert role.href == reverse("run_detail", args=[run.pk]) + "#step-federation_policy"


@pytest.mark.parametrize(
    ("run_status", "step_status", "state"),
    [
        ("waiting", "planned", LinkState.NEEDS_YOU),
        ("running", "applying", LinkState.WORKING),
        ("running", "planning", LinkState.WORKING),
        ("failed", "failed", LinkState.BROKEN),
        ("rolled_back", "rolled_back", LinkState.ROLLED_BACK),
    ],
)
def test_it_colours_a_link_by_the_state_of_its_steps(
    run_status: str, step_status: str, state: str
) -> None:
    later = {"entra_assignments": "pending", "connect_users": "pending", "sign_in_test": "pending"}
    run = _entra_run(run=run_status, entra_claims=step_status, **later)

    links = {link.kind: link for link in chain_links(run)}

    assert links["claims"].state == state
    assert links["claims"].href.endswith("#step-entra_claims")
    assert links["saml_provider"].state == LinkState.DONE
    # The users link has done nothing yet, so nothing of it was rolled back either.
    assert links["connect_users"].state == LinkState.NOT_STARTED


def test_a_link_takes_its_state_from_its_own_steps_not_from_the_sign_in_test() -> None:
    run = _entra_run(run="running", sign_in_test="applying")

    links = chain_links(run)

    # The users are made; the test that signs one in is not the users link at work.
    assert {link.kind: link.state for link in links}["connect_users"] == LinkState.DONE
    assert LinkState.WORKING not in {link.state for link in links}


def test_a_failed_sign_in_test_breaks_no_link() -> None:
    run = _entra_run(run="failed", sign_in_test="failed")

    assert {link.state for link in chain_links(run)} == {LinkState.DONE}


def test_it_draws_an_okta_run_with_its_app_label() -> None:
    run = make_run(
        flow_key="okta_group_mapping",
        idp="okta",
        status="waiting",
        steps=[
            {"key": "okta_app", "status": "succeeded", "outputs": {"app_label": "Connect"}},
            {"key": "saml_provider", "status": "succeeded", "outputs": {"provider_name": "P"}},
            {"key": "okta_app_provider", "status": "planned"},
            {"key": "okta_assignments", "status": "pending"},
        ],
    )

    links = {link.kind: link for link in chain_links(run)}

    assert links["idp_app"].fact == "Connect"
    assert links["claims"].state == LinkState.NEEDS_YOU
    assert links["connect_users"].state == LinkState.NOT_STARTED
    assert "connect_instance" not in links


def test_a_users_run_draws_the_chain_of_its_setup_with_its_own_users_link() -> None:
    setup = _entra_run()
    users = make_run(
        flow_key="entra_users",
        parent_id=setup.pk,
        status="running",
        steps=[
            {"key": "preflight", "status": "succeeded"},
            {"key": "group_users", "status": "applying"},
        ],
    )

    links = {link.kind: link for link in chain_links(users)}

    assert len(links) == 6
    assert links["connect_users"].state == LinkState.WORKING
    assert links["connect_users"].href.startswith(reverse("run_detail", args=[users.pk]))
    assert links["saml_provider"].href.startswith(reverse("run_detail", args=[setup.pk]))
    assert links["saml_provider"].fact == "ConnectSSO-sales"


def test_the_svg_has_a_title_a_description_and_a_state_word_and_link_per_box() -> None:
    run = _entra_run(run="failed", saml_provider="failed")
    html = chain_diagram(chain_links(run))
    svg_text = render_to_string("chain.html", html)
    svg_text = svg_text[svg_text.index("<svg") : svg_text.index("</svg>") + len("</svg>")]

    svg = ElementTree.fromstring(svg_text)
    assert svg.find(f"{SVG}title").text == "The federation chain this run builds"
    description = svg.find(f"{SVG}desc").text
    assert "IAM SAML provider: Broken (ConnectSSO-sales)" in description
    anchors = svg.findall(f"{SVG}a")
    assert len(anchors) == 6
    for anchor in anchors:
        assert re.search(r"/runs/[0-9a-f-]{36}/#step-\w+$", anchor.get("href"))
        words = [text.text for text in anchor.findall(f"{SVG}text")]
        assert words[2].split(" ", 1)[1] in {"Done", "Broken", "Not started"}, words
    broken = [a for a in anchors if a.get("data-state") == "broken"]
    assert [a.get("data-link") for a in broken] == ["saml_provider"]


def test_a_label_too_long_for_its_box_is_squeezed_into_it_and_a_short_one_is_not() -> None:
    html = chain_diagram(chain_links(_entra_run()))
    svg_text = render_to_string("chain.html", html)
    svg = ElementTree.fromstring(svg_text[svg_text.index("<svg") : svg_text.index("</svg>") + 6])

    labels = {
        anchor.get("data-link"): anchor.findall(f"{SVG}text")[0]
        for anchor in svg.findall(f"{SVG}a")
    }
    role_label = labels["federation_role"]
    assert role_label.text == "Federation role and policy"
    assert float(role_label.get("textLength")) < html["box_width"]
    assert role_label.get("lengthAdjust") == "spacingAndGlyphs"
    assert labels["connect_users"].get("textLength") is None


def test_the_run_page_draws_the_chain_in_its_html_without_javascript(
    admin_client: Client,
) -> None:
    run = _entra_run(run="waiting", entra_claims="planned")

    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert '<div id="run-chain">' in page
    assert 'data-link="claims" data-state="needs_you"' in page
    assert "Needs you" in page
