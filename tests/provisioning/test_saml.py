"""IdP metadata parsing: what is accepted, what is refused with which advice, and which metadata
URLs the wizard refuses to fetch."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import translation

from provisioning import saml
from provisioning.errors import PermanentError
from sandbox.saml_idp import SigningCertificate
from tests.steps.iam_flow import SSO_URL, certificate, metadata

ENTITY_ID = "https://sts.windows.net/5a1d2b3c-0000-4000-8000-00000000aaaa/"


def _dated_certificate(not_before: dt.datetime, not_after: dt.datetime) -> SigningCertificate:
    """A certificate with any validity window (the sandbox's issuer always starts it now)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old IdP signing")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return SigningCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem="",
        thumbprint="",
        not_after=cert.not_valid_after_utc,
    )


def _refusal(document: bytes | str) -> PermanentError:
    with pytest.raises(PermanentError) as refused:
        saml.parse_idp_metadata(document)
    return refused.value


def test_it_reads_entity_id_certificate_and_sso_urls_from_good_metadata() -> None:
    cert = certificate(name="CN=Microsoft Azure Federated SSO Certificate")

    parsed = saml.parse_idp_metadata(metadata(ENTITY_ID, cert))

    assert parsed.entity_id == ENTITY_ID
    assert parsed.sso_urls == (SSO_URL, SSO_URL)
    (only,) = parsed.signing_certificates
    assert only.subject == "CN=Microsoft Azure Federated SSO Certificate"
    assert only.thumbprint_sha1 == cert.thumbprint
    assert only.fingerprint_sha256.count(":") == 31
    assert only.not_after == cert.not_after
    assert only.pem == cert.cert_pem
    assert parsed.warnings == ()
    summary = saml.metadata_summary(parsed)
    assert summary["certificate_fingerprint"] == only.fingerprint_sha256
    assert summary["entity_id"] == ENTITY_ID


def test_it_takes_the_one_idp_out_of_an_entities_descriptor() -> None:
    inner = metadata(ENTITY_ID).split("?>", 1)[1]
    document = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
        f"{inner}</md:EntitiesDescriptor>"
    )

    assert saml.parse_idp_metadata(document).entity_id == ENTITY_ID

    two = document.replace("</md:EntitiesDescriptor>", inner + "</md:EntitiesDescriptor>")
    assert _refusal(two).code == "saml_metadata_not_one_idp"


@pytest.mark.parametrize("namespace", ["urn:oasis:names:tc:SAML:1.0:metadata", ""])
def test_it_says_the_namespace_is_wrong(namespace: str) -> None:
    document = metadata(ENTITY_ID).replace(
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"', f'xmlns:md="{namespace}"'
    )
    if not namespace:
        document = document.replace('xmlns:md=""', "").replace("md:", "")

    error = _refusal(document)

    assert error.code == "saml_metadata_wrong_namespace", error.message
    assert "wrong XML namespace" in error.message
    assert f"“{namespace or 'none'}”" in error.message


def test_it_refuses_sp_metadata_and_says_where_to_get_idp_metadata() -> None:
    document = metadata(ENTITY_ID).replace("IDPSSODescriptor", "SPSSODescriptor")

    error = _refusal(document)

    assert error.code == "saml_metadata_is_sp"
    assert "SP metadata" in error.message
    assert "Federation Metadata XML" in error.hint


def test_it_refuses_metadata_without_a_signing_certificate() -> None:
    document = metadata(ENTITY_ID).replace('use="signing"', 'use="encryption"')

    assert _refusal(document).code == "saml_metadata_no_certificate"


def test_it_refuses_a_certificate_that_is_not_one() -> None:
    cert = certificate()
    document = metadata(ENTITY_ID, cert).replace(cert.cert_base64, "bm90IGEgY2VydGlmaWNhdGU=")

    assert _refusal(document).code == "saml_certificate_unreadable"


def test_it_refuses_metadata_that_does_not_support_saml_2() -> None:
    document = metadata(ENTITY_ID).replace(
        saml.SAML2_PROTOCOL, "urn:oasis:names:tc:SAML:1.1:protocol"
    )

    assert _refusal(document).code == "saml_metadata_not_saml2"


def test_it_refuses_an_expired_certificate() -> None:
    now = dt.datetime.now(dt.UTC)
    expired = _dated_certificate(now - dt.timedelta(days=400), now - dt.timedelta(days=2))

    error = _refusal(metadata(ENTITY_ID, expired))

    assert error.code == "saml_certificate_expired"
    assert "expired on" in error.message
    assert "New Certificate" in error.hint
    # What IAM already holds is read without the date check (to compare, not to accept).
    assert saml.parse_idp_metadata(metadata(ENTITY_ID, expired), check_dates=False).entity_id


def test_it_warns_when_the_certificate_expires_within_30_days() -> None:
    parsed = saml.parse_idp_metadata(metadata(ENTITY_ID, certificate(days=10)))

    (warning,) = parsed.warnings
    assert "expires in 9 days" in str(warning) or "expires in 10 days" in str(warning)
    # Stored as an id and its parameters: it reads in the language of whoever opens the plan.
    with translation.override("ja"):
        assert "日" in str(warning) and "expires" not in str(warning)
    assert saml.parse_idp_metadata(metadata(ENTITY_ID, certificate(days=45))).warnings == ()


def test_it_refuses_dtds_and_entity_expansion() -> None:
    billion_laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'entityID="&lol2;"/>'
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>'
    )

    assert _refusal(billion_laughs).code == "saml_metadata_unsafe_xml"
    assert _refusal(external).code == "saml_metadata_unsafe_xml"


def test_it_refuses_oversized_documents_before_parsing_them() -> None:
    padding = "<!--" + "x" * saml.MAX_METADATA_BYTES + "-->"
    document = metadata(ENTITY_ID).replace("<md:IDPSSODescriptor", padding + "<md:IDPSSODescriptor")

    error = _refusal(document)

    assert error.code == "saml_metadata_too_large"


def test_it_tells_a_web_page_and_broken_xml_apart() -> None:
    page = _refusal("<!DOCTYPE html><html><body>Sign in to your account</body></html>")
    broken = _refusal(metadata(ENTITY_ID)[:-40])

    assert page.message.startswith("This is a web page")
    assert broken.code == "saml_metadata_not_xml"
    assert "not well-formed" in broken.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://login.microsoftonline.com/x/federationmetadata.xml", "only https"),
        ("https://10.0.0.8/metadata", "IP address"),
        ("https://[::1]/metadata", "IP address"),
        ("https://localhost/metadata", "local name"),
        ("https://idp.localhost/metadata", "local name"),
        ("https://metadata/", "local name"),
        ("https://login.microsoftonline.com@169.254.169.254/latest", "user name or password"),
        ("https://user:pw@login.microsoftonline.com/metadata", "user name or password"),
        ("https://login.microsoftonline.com:8443/metadata", "port 8443"),
        ("file:///etc/passwd", "only https"),
    ],
)
def test_it_refuses_metadata_urls_that_could_reach_inside(url: str, reason: str) -> None:
    with pytest.raises(PermanentError) as refused:
        saml.check_metadata_url(url)

    assert refused.value.code == "saml_metadata_url_refused"
    assert reason in refused.value.message


def test_it_accepts_the_urls_entra_and_okta_show() -> None:
    assert saml.check_metadata_url(
        "https://login.microsoftonline.com/tenant/federationmetadata/2007-06/"
        "federationmetadata.xml?appid=6b2e3c4d"
    ) == ("login.microsoftonline.com", 443)
    assert saml.check_metadata_url("https://example.okta.com/app/exk1/sso/saml/metadata") == (
        "example.okta.com",
        443,
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::1"])
def test_it_refuses_a_host_that_resolves_to_a_private_address(address: str) -> None:
    with pytest.raises(PermanentError) as refused:
        saml.public_addresses(
            "idp.example.com", 443, resolver=lambda host, port: ["93.184.215.14", address]
        )

    assert "not a public address" in refused.value.message


def test_it_refuses_a_fetch_whose_name_resolves_to_loopback() -> None:
    # An all-digits host is a number to the resolver (127.0.0.1), not an IP literal to a parser;
    # the fetch must refuse it after resolving, before connecting.
    with pytest.raises(PermanentError) as refused:
        saml.fetch_metadata_url(
            "https://2130706433.example/metadata", resolver=lambda h, p: ["127.0.0.1"]
        )
    assert "not a public address" in refused.value.message

    assert saml.public_addresses("idp.example.com", 443, resolver=lambda h, p: ["93.184.215.14"])


def test_it_drops_the_byte_order_mark_entra_serves_metadata_with() -> None:
    document = metadata(ENTITY_ID)

    from_bytes = saml.parse_idp_metadata(b"\xef\xbb\xbf" + document.encode())
    from_text = saml.parse_idp_metadata("\ufeff" + document)

    assert from_bytes.document == document
    assert from_text.document == document
    assert from_text.entity_id == ENTITY_ID
