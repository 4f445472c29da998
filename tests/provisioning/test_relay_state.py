"""The relay state URL for each destination, GovCloud's console host, and custom CCP checks."""

from __future__ import annotations

import pytest

from provisioning.relay_state import (
    RelayStateError,
    RelayStateFields,
    build_relay_state_url,
    relay_state_warnings,
)

INSTANCE = "d1884fa0-123a-4fe0-8437-6d68c53e6021"


@pytest.mark.parametrize(
    ("destination", "encoded"),
    [
        ("admin_site", "%2Fconnect%2Fhome"),
        ("ccp", "%2Fccp-v2"),
        ("agent_workspace", "%2Fagent-app-v2"),
    ],
)
def test_it_builds_the_federation_url_for_each_destination(destination: str, encoded: str) -> None:
    assert build_relay_state_url("ap-northeast-1", INSTANCE, destination) == (
        f"https://ap-northeast-1.console.aws.amazon.com/connect/federate/{INSTANCE}"
        f"?destination={encoded}"
    )


def test_it_uses_the_govcloud_console_host() -> None:
    url = build_relay_state_url("us-gov-west-1", INSTANCE, "ccp")
    assert url.startswith(f"https://console.amazonaws-us-gov.com/connect/federate/{INSTANCE}?")


def test_it_encodes_a_custom_ccp_and_reminds_of_approved_origins() -> None:
    url = build_relay_state_url(
        "ap-northeast-1", INSTANCE, "custom_ccp", "https://ccp.example.com/x"
    )
    assert url.endswith("?destination=https%3A%2F%2Fccp.example.com%2Fx")
    (warning,) = relay_state_warnings("custom_ccp", "https://ccp.example.com/x")
    assert "https://ccp.example.com" in warning


@pytest.mark.parametrize(
    "url",
    [
        "http://ccp.example.com/",
        "https://user:pw@ccp.example.com/",
        "https://10.0.0.1/",
        "https://localhost/",
        "javascript:alert(1)",
    ],
)
def test_it_refuses_a_custom_ccp_that_is_not_a_plain_https_host(url: str) -> None:
    with pytest.raises(RelayStateError):
        build_relay_state_url("ap-northeast-1", INSTANCE, "custom_ccp", url)
    form = RelayStateFields({"destination": "custom_ccp", "custom_ccp_url": url})
    assert not form.is_valid() and "custom_ccp_url" in form.errors


def test_it_refuses_an_instance_id_that_is_not_one() -> None:
    with pytest.raises(RelayStateError):
        build_relay_state_url("ap-northeast-1", "../../evil", "ccp")
