"""Rotating an IdP's SAML signing certificate without an outage: the metadata IAM holds meanwhile.

The order the rotation follows (and the sandbox proof test in tests/sandbox/test_signing_rotation.py
measures, with a sign-in every second):

1. create the new certificate at the IdP, not yet signing (Okta: POST
   /api/v1/apps/{appId}/credentials/keys/generate?validityYears=N, "Update SAML certificates";
   Entra: Graph servicePrincipal addTokenSigningCertificate, which adds it to keyCredentials);
2. give the IAM SAML provider metadata that lists BOTH certificates (UpdateSAMLProvider with
   `overlap_metadata`): IAM checks an assertion's signature against the certificates in the
   provider's metadata document, so while it holds both, a response signed by either is accepted;
3. switch the IdP to sign with the new one (Okta: replace the app with credentials.signing.kid;
   Entra: preferredTokenSigningKeyThumbprint);
4. verify a sign-in signed by the new certificate;
5. retire the old one: UpdateSAMLProvider with the IdP's metadata for the new key alone.

How many certificates IAM's metadata may hold: the IAM API reference (CreateSAMLProvider,
UpdateSAMLProvider: "keys that can be used to validate the SAML authentication response") speaks
of keys in the plural and bounds only the document's length (1,000 to 10,000,000 characters);
no documented count limit was found. The rotation never needs more than two (old and new), so it
stays within any limit a reader of those pages could assume.
"""

from __future__ import annotations

import copy
from xml.etree import ElementTree as StdElementTree

from provisioning.saml import (
    _DS,
    _MD,
    SAML_METADATA,
    XMLDSIG,
    IdpMetadata,
    _certificate,
    _identity_provider_entity,
    _parse_xml,
    _saml2_idp_descriptor,
    parse_idp_metadata,
)

# The prefixes IdPs use, so the document IAM stores reads as the IdP's own (md:, ds:).
StdElementTree.register_namespace("md", SAML_METADATA)
StdElementTree.register_namespace("ds", XMLDSIG)


def overlap_metadata(new: str, old: str) -> str:
    """`new` (the IdP's metadata for its new signing key) with `old`'s signing certificates added
    as further signing KeyDescriptors, each once: the document IAM holds while both may sign.

    Both are checked as IdP metadata first (parse_idp_metadata), so a bad download stops here with
    the error that says what to fix; the two must name the same entity ID, since an IAM provider
    is one IdP."""
    new_parsed = parse_idp_metadata(new, check_dates=False)
    old_parsed = parse_idp_metadata(old, check_dates=False)
    if new_parsed.entity_id != old_parsed.entity_id:
        raise ValueError(
            f"the new metadata's entity ID {new_parsed.entity_id!r} is not the old one's "
            f"{old_parsed.entity_id!r}: they are two IdPs, not one IdP's two keys"
        )
    root = _parse_xml(new_parsed.document.encode("utf-8"))
    idp = _saml2_idp_descriptor(_identity_provider_entity(root))
    have = new_parsed.fingerprints
    old_root = _parse_xml(old_parsed.document.encode("utf-8"))
    old_idp = _saml2_idp_descriptor(_identity_provider_entity(old_root))
    # KeyDescriptor comes first in an IDPSSODescriptor (after an optional Signature and
    # Extensions: SAML 2.0 metadata schema, RoleDescriptorType), so the old keys go right after
    # the new one's.
    position = max(
        (i + 1 for i, child in enumerate(idp) if child.tag == _MD + "KeyDescriptor"), default=0
    )
    for key_descriptor in old_idp.findall(_MD + "KeyDescriptor"):
        if key_descriptor.get("use", "signing") != "signing":
            continue
        fingerprints = _fingerprints_in(key_descriptor)
        if not fingerprints or fingerprints <= have:
            continue
        idp.insert(position, copy.deepcopy(key_descriptor))
        position += 1
        have = have | fingerprints
    return StdElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def adding_certificate(metadata: str, certificate_b64: str) -> str:
    """`metadata` with one more signing certificate (base64 DER, as Graph's keyCredentials `key`
    and metadata's X509Certificate carry it), unless it lists that one already.

    Entra's federation metadata carries only the certificate the app signs with now (the one
    preferredTokenSigningKeyThumbprint names), so before the switch the new certificate is taken
    from the service principal's keyCredentials (Graph, addTokenSigningCertificate: "The
    certificate is added to the keyCredentials collection") and added here."""
    added = _certificate(certificate_b64)
    if added is None:
        raise ValueError("the new signing certificate is not a base64 X.509 certificate")
    parsed = parse_idp_metadata(metadata, check_dates=False)
    if added.fingerprint_sha256 in parsed.fingerprints:
        return parsed.document
    root = _parse_xml(parsed.document.encode("utf-8"))
    idp = _saml2_idp_descriptor(_identity_provider_entity(root))
    position = max(
        (i + 1 for i, child in enumerate(idp) if child.tag == _MD + "KeyDescriptor"), default=0
    )
    key_descriptor = StdElementTree.Element(_MD + "KeyDescriptor", {"use": "signing"})
    x509_data = StdElementTree.SubElement(
        StdElementTree.SubElement(key_descriptor, _DS + "KeyInfo"), _DS + "X509Data"
    )
    StdElementTree.SubElement(x509_data, _DS + "X509Certificate").text = "".join(
        certificate_b64.split()
    )
    idp.insert(position, key_descriptor)
    return StdElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def _fingerprints_in(key_descriptor: StdElementTree.Element) -> frozenset[str]:
    """The readable certificates' fingerprints (an unreadable one is not carried over)."""
    certificates = (
        _certificate(e.text or "") for e in key_descriptor.iter(_DS + "X509Certificate")
    )
    return frozenset(c.fingerprint_sha256 for c in certificates if c is not None)


def certificate_fingerprint(certificate_b64: str) -> str:
    """A base64 DER certificate's SHA-256 fingerprint as metadata parsing writes it ("" when it
    is not a certificate)."""
    parsed = _certificate(certificate_b64)
    return parsed.fingerprint_sha256 if parsed is not None else ""


def signing_fingerprints(document: str) -> frozenset[str]:
    """The SHA-256 fingerprints of a metadata document's signing certificates."""
    parsed: IdpMetadata = parse_idp_metadata(document, check_dates=False)
    return parsed.fingerprints
