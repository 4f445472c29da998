"""The metadata IAM holds while an IdP's old and new signing certificates overlap."""

from __future__ import annotations

import pytest

from provisioning.saml import parse_idp_metadata
from provisioning.signing_rotation import (
    adding_certificate,
    overlap_metadata,
    signing_fingerprints,
)
from sandbox import saml_idp

ENTITY_ID = "http://www.okta.com/exkrotation"
SSO_URL = "https://idp.example/sso"


def _metadata(certificate: saml_idp.SigningCertificate, entity_id: str = ENTITY_ID) -> str:
    return saml_idp.idp_metadata(entity_id=entity_id, certificate=certificate, sso_url=SSO_URL)


def test_it_lists_the_new_certificate_and_the_old_one_once_each() -> None:
    old, new = (saml_idp.issue_signing_certificate(f"CN={n}") for n in ("old", "new"))
    both = overlap_metadata(_metadata(new), _metadata(old))
    parsed = parse_idp_metadata(both)
    assert parsed.entity_id == ENTITY_ID and parsed.sso_urls == (SSO_URL, SSO_URL)
    assert [c.thumbprint_sha1 for c in parsed.signing_certificates] == [
        new.thumbprint,
        old.thumbprint,
    ]
    assert both.count("<md:KeyDescriptor") == 2
    # Overlapping again (a retried step) adds nothing.
    assert signing_fingerprints(overlap_metadata(both, _metadata(old))) == parsed.fingerprints


def test_it_refuses_metadata_of_another_idp() -> None:
    old, new = (saml_idp.issue_signing_certificate(f"CN={n}") for n in ("old", "new"))
    with pytest.raises(ValueError, match="two IdPs"):
        overlap_metadata(_metadata(new), _metadata(old, "http://www.okta.com/exkother"))


def test_it_adds_entras_new_certificate_from_key_credentials_once() -> None:
    old, new = (saml_idp.issue_signing_certificate(f"CN={n}") for n in ("old", "new"))
    both = adding_certificate(_metadata(old), new.cert_base64)
    thumbprints = [c.thumbprint_sha1 for c in parse_idp_metadata(both).signing_certificates]
    assert thumbprints == [old.thumbprint, new.thumbprint]
    assert adding_certificate(both, new.cert_base64).count("<md:KeyDescriptor") == 2
    with pytest.raises(ValueError, match="not a base64 X.509"):
        adding_certificate(both, "bm90IGEgY2VydGlmaWNhdGU=")
