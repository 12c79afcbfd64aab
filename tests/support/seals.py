"""Oracles for sealed PDFs: the published seal root, pyHanko's validator trusting only it, pdftotext."""
from __future__ import annotations

import io
import subprocess

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from tests.support.helpers import API


def published_root(client) -> asn1_x509.Certificate:
    response = client.get(f"{API}/seals/ca")
    assert response.status_code == 200 and response.mimetype == "application/x-pem-file"
    certificate = x509.load_pem_x509_certificate(response.data)
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def oracle(pdf: bytes, root: asn1_x509.Certificate, tsa_root: asn1_x509.Certificate | None = None):
    """pyHanko's validator, trusting only the root published at /seals/ca."""
    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    return validate_pdf_signature(
        signature, signer_validation_context=ValidationContext(trust_roots=[root]),
        ts_validation_context=ValidationContext(trust_roots=[tsa_root]) if tsa_root else None)


def pdftotext(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True,
                          check=True, timeout=30).stdout.decode("utf-8")
