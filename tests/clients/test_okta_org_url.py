"""Which Okta org URLs the wizard accepts: an Okta org domain in live mode, the sandbox's in
sandbox mode, nothing that could send the API token elsewhere."""

from __future__ import annotations

import pytest

from provisioning.errors import PermanentError
from provisioning.okta.org_url import validate_okta_org_url


@pytest.mark.parametrize(
    ("typed", "accepted"),
    [
        ("https://example.okta.com", "https://example.okta.com"),
        ("  https://Example.OKTA.com/ ", "https://example.okta.com"),
        ("https://dev-123456.oktapreview.com", "https://dev-123456.oktapreview.com"),
        ("https://acme.okta-emea.com", "https://acme.okta-emea.com"),
        ("https://agency.okta-gov.com", "https://agency.okta-gov.com"),
    ],
)
def test_it_accepts_an_org_on_an_okta_domain(typed: str, accepted: str) -> None:
    assert validate_okta_org_url(typed) == accepted


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("http://example.okta.com", "https://"),
        ("example.okta.com", "https://"),
        ("https://evil.com", "Custom domains are not accepted"),
        ("https://login.example.com", "Custom domains are not accepted"),
        ("https://example.okta.com.evil.com", "not an Okta org domain"),
        ("https://evilokta.com", "not an Okta org domain"),
        ("https://a.b.okta.com", "not an Okta org domain"),
        ("https://evil.com@example.okta.com", "user name or password"),
        ("https://example.okta.com@evil.com", "user name or password"),
        ("https://user:pass@example.okta.com", "user name or password"),
        ("https://127.0.0.1", "not an IP address"),
        ("https://[::1]", "not an IP address"),
        ("https://example.okta.com:8443", "port"),
        ("https://example.okta.com:x", "not a valid URL"),
        ("https://example.okta.com/oauth2/default", "without a path"),
        ("https://example.okta.com/?next=https://evil.com", "without a path"),
        ("https://evil.com#.okta.com", "without a path"),
        ("https://example-admin.okta.com", "without “-admin”: https://example.okta.com"),
        ("https://exa mple.okta.com", "not an Okta org domain"),
    ],
)
def test_it_refuses_anything_but_an_okta_org_in_live_mode(typed: str, reason: str) -> None:
    with pytest.raises(PermanentError) as raised:
        validate_okta_org_url(typed)

    assert raised.value.code == "okta_bad_org_url"
    assert reason in raised.value.message


def test_it_accepts_only_the_sandbox_org_in_sandbox_mode() -> None:
    sandbox_url = "https://localhost:8446"

    assert validate_okta_org_url("https://localhost:8446/", sandbox_org_url=sandbox_url) == (
        sandbox_url
    )
    with pytest.raises(PermanentError) as raised:
        validate_okta_org_url("https://example.okta.com", sandbox_org_url=sandbox_url)
    assert sandbox_url in raised.value.message
