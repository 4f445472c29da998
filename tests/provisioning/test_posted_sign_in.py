"""Finding the SAML response in what an admin pastes: base64, XML, the form body (encoded or
not) and HAR files from Chromium or Firefox, with the size limits."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from provisioning.signin_checks.posted_sign_in import (
    MAX_HAR_BYTES,
    UnreadableSignIn,
    assertion_facts,
    read_posted_sign_in,
)
from sandbox.saml_idp import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    issue_signing_certificate,
    signed_saml_response,
)

RELAY = (
    "https://ap-northeast-1.console.aws.amazon.com/connect/federate/"
    "11111111-2222-4333-8444-555555555555"
)


@pytest.fixture(scope="module")
def saml_response() -> str:
    return signed_saml_response(
        issuer="https://idp.example/",
        audience="https://signin.aws.amazon.com/saml",
        recipient="https://ap-northeast-1.signin.aws.amazon.com/saml",
        name_id="agent@example.com",
        attributes={
            ROLE_ATTRIBUTE: [
                "arn:aws:iam::123456789012:role/R,arn:aws:iam::123456789012:saml-provider/P"
            ],
            ROLE_SESSION_NAME_ATTRIBUTE: ["agent@example.com"],
        },
        certificate=issue_signing_certificate("CN=idp"),
    )


def _har(url: str, post_data: dict) -> bytes:
    return json.dumps(
        {
            "log": {
                "entries": [
                    {"request": {"method": "GET", "url": "https://idp.example/sso"}},
                    {"request": {"method": "POST", "url": url, "postData": post_data}},
                ]
            }
        }
    ).encode()


def test_it_reads_base64_xml_and_the_form_body_encoded_or_not(saml_response) -> None:
    xml = base64.b64decode(saml_response)
    encoded = urlencode({"SAMLResponse": saml_response, "RelayState": RELAY})
    # Pasted from a view that shows the body decoded: "+" in the base64 arrive as spaces.
    pasted_raw = f"SAMLResponse={saml_response}&RelayState={RELAY}"

    found = [
        read_posted_sign_in(raw.encode())
        for raw in (saml_response, xml.decode(), encoded, pasted_raw)
    ]

    assert [p.found_in for p in found] == ["base64", "xml", "form", "form"]
    assert all(p.xml == xml for p in found)
    assert [p.relay_state for p in found] == ["", "", RELAY, RELAY]


def test_it_finds_the_post_to_a_regional_sign_in_url_in_a_har(saml_response) -> None:
    body = urlencode({"SAMLResponse": saml_response, "RelayState": RELAY})
    chromium = _har(
        "https://ap-northeast-1.signin.aws.amazon.com/saml",
        {"mimeType": "application/x-www-form-urlencoded", "text": body},
    )
    params_only = _har(
        "https://signin.aws.amazon.com/saml",
        {
            "params": [
                {"name": "SAMLResponse", "value": saml_response},
                {"name": "RelayState", "value": RELAY},
            ]
        },
    )

    for har in (chromium, params_only):
        posted = read_posted_sign_in(har)
        assert posted.found_in == "har"
        assert posted.relay_state == RELAY
        assert assertion_facts(posted.xml).name_id == "agent@example.com"


def test_it_ignores_a_post_elsewhere_unless_it_is_the_sandboxs_sign_in(saml_response) -> None:
    har = _har("https://127.0.0.1:8444/saml", {"text": urlencode({"SAMLResponse": saml_response})})

    with pytest.raises(UnreadableSignIn, match="no POST to https://signin.aws.amazon.com/saml"):
        read_posted_sign_in(har)
    assert read_posted_sign_in(har, extra_signin_urls=["https://127.0.0.1:8444/saml"]).xml


def test_it_refuses_what_is_too_large_or_not_saml() -> None:
    with pytest.raises(UnreadableSignIn, match="larger than"):
        read_posted_sign_in(b"{" + b" " * MAX_HAR_BYTES + b"}")
    with pytest.raises(UnreadableSignIn, match="not a HAR file"):
        read_posted_sign_in(b'{"not": "a har"}')
    with pytest.raises(UnreadableSignIn, match="not a SAML response"):
        read_posted_sign_in(b"hello")
    with pytest.raises(UnreadableSignIn, match="DOCTYPE or entities"):
        assertion_facts(b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r>&e;</r>')
