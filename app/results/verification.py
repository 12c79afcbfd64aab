"""Seal verification: does a PDF carry an intact seal that chains to the platform's seal root?"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import current_app

from ..timeutil import isoformat_z
from .seals import trusted_roots

if TYPE_CHECKING:  # pyHanko and asn1crypto are imported by what checks a seal
    from asn1crypto import x509 as asn1_x509

logger = logging.getLogger("app.results")
ACCEPTED_CHANGES = ("NONE", "LTA_UPDATES")  # pyHanko's ModificationLevel names (imported when checking)
NOT_VALID = {"valid": False, "signer": None, "signed_at": None, "intact": False}


def _tsa_roots() -> list[asn1_x509.Certificate]:
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    path = current_app.config.get("SEAL_TSA_ROOTS")
    if not path:
        return []
    with open(path, "rb") as handle:
        data = handle.read()
    return [asn1_x509.Certificate.load(der) for _, _, der in asn1_pem.unarmor(data, multiple=True)]


def verify_pdf(path: str) -> dict:
    """{"valid","signer","signed_at","intact"} for the PDF at `path`. `valid`: a signature chains
    to the platform's seal root (the only trust anchor), is cryptographically sound, its signed
    bytes are unchanged and nothing but validation data was added after it."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    roots = trusted_roots()
    try:
        with open(path, "rb") as handle:
            signatures = PdfFileReader(handle, strict=False).embedded_signatures
            if not signatures:
                return dict(NOT_VALID)
            results = [_check(signature, roots) for signature in signatures]
    except Exception as exc:  # noqa: BLE001 - a damaged or altered PDF is "not valid", never a 500
        logger.info("seal verification could not read the document: %s", exc.__class__.__name__)
        return dict(NOT_VALID)
    return next((result for result in results if result["valid"]), results[0])


def _check(signature, roots) -> dict:
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    signer_context = ValidationContext(trust_roots=roots, allow_fetching=False)
    timestamp_context = ValidationContext(trust_roots=roots + _tsa_roots(), allow_fetching=False)
    try:
        status = validate_pdf_signature(signature, signer_validation_context=signer_context,
                                        ts_validation_context=timestamp_context)
    except Exception as exc:  # noqa: BLE001 - a signature pyHanko cannot even evaluate is not valid
        logger.info("seal verification failed to evaluate a signature: %s", exc.__class__.__name__)
        return dict(NOT_VALID)
    timestamp = status.timestamp_validity
    signed_at = timestamp.timestamp if timestamp is not None and timestamp.trusted else status.signer_reported_dt
    common_name = status.signing_cert.subject.native.get("common_name") if status.signing_cert else None
    return {"valid": bool(status.bottom_line and status.modification_level.name in ACCEPTED_CHANGES),
            "signer": common_name, "signed_at": isoformat_z(signed_at), "intact": bool(status.intact)}
