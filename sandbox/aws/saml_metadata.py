"""Checks that a document is SAML 2.0 IdP metadata with a signing certificate, as IAM does."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

SAML_METADATA = "urn:oasis:names:tc:SAML:2.0:metadata"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
# IAM's own message for metadata it can't use (CreateSAMLProvider / UpdateSAMLProvider).
IAM_MESSAGE = "Could not parse metadata"
# IAM's documented bounds on SAMLMetadataDocument (CreateSAMLProvider: 1000 to 10000000 chars).
MIN_DOCUMENT_LENGTH = 1000
MAX_DOCUMENT_LENGTH = 10_000_000
# IAM fails to parse metadata that starts with a byte-order mark, as Entra serves it
# (MicrosoftDocs/azure-docs issue 65434: "AWS was unable to parse the XML data due to a
# nonprintable ASCII character ... EF BB BF").
BYTE_ORDER_MARK = "\ufeff"


class InvalidMetadata(ValueError):
    """The document is not usable IdP metadata; str() says why, in IAM's words first."""


def check_idp_metadata(document: str) -> None:
    """Raise InvalidMetadata unless `document` is an md:EntityDescriptor (alone or inside an
    md:EntitiesDescriptor) with an IDPSSODescriptor carrying a parsable signing certificate."""
    if not MIN_DOCUMENT_LENGTH <= len(document) <= MAX_DOCUMENT_LENGTH:
        raise InvalidMetadata(
            f"{IAM_MESSAGE}: the document must be {MIN_DOCUMENT_LENGTH} to "
            f"{MAX_DOCUMENT_LENGTH} characters long"
        )
    if document.startswith(BYTE_ORDER_MARK):
        raise InvalidMetadata(
            f"{IAM_MESSAGE}: the document starts with a byte-order mark (U+FEFF), not with XML"
        )
    try:
        # defusedxml refuses DTDs, entity expansion and external references.
        root = ElementTree.fromstring(document.encode("utf-8"), forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise InvalidMetadata(f"{IAM_MESSAGE}: not well-formed XML ({error})") from error

    md = f"{{{SAML_METADATA}}}"
    if root.tag == md + "EntityDescriptor":
        entities = [root]
    elif root.tag == md + "EntitiesDescriptor":
        entities = root.findall(md + "EntityDescriptor")
    else:
        raise InvalidMetadata(f"{IAM_MESSAGE}: the root element is not md:EntityDescriptor")

    for entity in entities:
        if not entity.get("entityID"):
            continue
        for idp in entity.findall(md + "IDPSSODescriptor"):
            if _has_signing_certificate(idp):
                return
    raise InvalidMetadata(
        f"{IAM_MESSAGE}: no md:IDPSSODescriptor with an entityID and a signing X509 certificate"
    )


def _has_signing_certificate(idp: object) -> bool:
    md = f"{{{SAML_METADATA}}}"
    ds = f"{{{XMLDSIG}}}"
    for key_descriptor in idp.findall(md + "KeyDescriptor"):  # type: ignore[attr-defined]
        # A KeyDescriptor without `use` serves both signing and encryption (SAML metadata 2.4.1.1).
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for certificate in key_descriptor.iter(ds + "X509Certificate"):
            text = "".join((certificate.text or "").split())
            try:
                x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                continue
            return True
    return False
