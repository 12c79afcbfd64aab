"""Sealed decision documents: pyHanko's own validator and pdftotext as oracles, the seal root,
seal verification of altered, unsigned and foreign-signed PDFs, and a local RFC 3161 TSA."""
from __future__ import annotations

import io
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from fpdf import FPDF
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator.registry import SimpleCertificateStore

from app.extensions import db
from app.results import documents, seals
from app.results.models import DecisionDocument, SealCertificate
from tests.support.helpers import API, register_person
from tests.support.seals import oracle, pdftotext, published_root

DEPARTMENT = "济南市公安局历下分局"
DECIDED_AT = datetime(2026, 3, 2, 3, 30, tzinfo=timezone.utc)


def issue(app, person, *, department=DEPARTMENT, application_id="a_0123456789abcdef0123", decision="approved",
          comment=None) -> dict:
    with app.app_context():
        row = documents.issue_decision(application_id=application_id, applicant_subject_id=person["subject_id"],
                                       department=department, applicant_name=person["name"],
                                       service_name="居住证签发", decision=decision, decided_at=DECIDED_AT,
                                       comment=comment)
        return {"id": row.id, "file_id": row.file_id, "sha256": row.sha256, "seal_serial": row.seal_serial,
                "timestamped": row.timestamped}


def download(client, person, file_id) -> bytes:
    response = client.get(f"{API}/files/{file_id}", headers=person["headers"])
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return response.data


def verify(client, pdf: bytes, name="decision.pdf"):
    return client.post(f"{API}/seal-verifications", data={"file": (io.BytesIO(pdf), name, "application/pdf")},
                       content_type="multipart/form-data")


# ---------------------------------------------------------------- the sealed document

def test_a_sealed_decision_validates_with_pyhanko_against_the_published_root(client, app, store_dirs):
    alice = register_person(client, app, name="王小明")
    issued = issue(app, alice, comment="请于十五个工作日内到窗口领取实体证件")
    pdf = download(client, alice, issued["file_id"])
    root = published_root(client)

    status = oracle(pdf, root)
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    subject = status.signing_cert.subject.native
    assert subject["common_name"] == DEPARTMENT and subject["organization_name"] == "山东省政务服务"
    assert status.signing_cert.issuer == root.subject
    assert status.validation_path is not None and status.validation_path.trust_anchor.authority.name == root.subject

    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    assert signature.sig_object_type == "/Sig" and PdfFileReader(io.BytesIO(pdf)).root["/Perms"]["/DocMDP"]
    embedded = {choice.chosen.subject.native["common_name"] for choice in signature.signed_data["certificates"]}
    assert {DEPARTMENT, "山东省政务服务电子印章根证书"} <= embedded

    text = pdftotext(pdf)
    for words in ("准予办理决定书", "王小明", "居住证签发", DEPARTMENT, "2026年3月2日", "决定准予办理",
                  "请于十五个工作日内到窗口领取实体证件"):
        assert words in text, words


def test_the_department_seal_certificate_is_for_document_signing_under_the_root(client, app, store_dirs):
    alice = register_person(client, app)
    issue(app, alice)
    with app.app_context():
        row = db.session.scalars(db.select(SealCertificate).where(SealCertificate.department == DEPARTMENT)).one()
        certificate = seals.load_certificate(row)
        root_row = seals.root()
        root = seals.load_certificate(root_row)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ObjectIdentifier("1.3.6.1.5.5.7.3.36") in eku
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    root.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes,
                             ec.ECDSA(certificate.signature_hash_algorithm))
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.subject == root.issuer
    assert row.private_key_enc.startswith("v1.") and "PRIVATE KEY" not in row.private_key_enc


def test_one_seal_per_department_and_one_root(client, app, store_dirs):
    alice = register_person(client, app)
    first = issue(app, alice, application_id="a_1")
    second = issue(app, alice, application_id="a_2")
    other = issue(app, alice, application_id="a_3", department="青岛市市场监督管理局")
    assert first["seal_serial"] == second["seal_serial"] != other["seal_serial"]
    with app.app_context():
        assert db.session.query(SealCertificate).filter_by(kind="root").count() == 1
        assert db.session.query(SealCertificate).filter_by(kind="department").count() == 2
    pdf = download(client, alice, other["file_id"])
    assert oracle(pdf, published_root(client)).signing_cert.subject.native["common_name"] == "青岛市市场监督管理局"


def test_issuing_twice_returns_the_first_document(client, app, store_dirs):
    alice = register_person(client, app)
    first, again = issue(app, alice), issue(app, alice)
    assert first == again
    rejected = issue(app, alice, decision="rejected", comment="材料不齐全")
    assert rejected["id"] != first["id"]
    assert "不予办理决定书" in pdftotext(download(client, alice, rejected["file_id"]))
    with app.app_context():
        assert db.session.query(DecisionDocument).count() == 2


def test_without_a_cjk_font_the_error_says_what_to_install(app, monkeypatch):
    monkeypatch.setattr(documents, "FONT_CANDIDATES", ("/nonexistent/font.ttc",))
    with app.app_context(), pytest.raises(documents.FontMissing, match="fonts-wqy-microhei"):
        documents.cjk_font()


def test_the_setup_script_looks_for_the_fonts_the_documents_use():
    script = Path(__file__).resolve().parent.parent / "scripts" / "services.sh"
    listed = subprocess.run(["bash", "-c", f'eval "$(sed -n "/^document_fonts=(/,/)$/p" {script})"; '
                                           'printf "%s\\n" "${document_fonts[@]}"'],
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == list(documents.FONT_CANDIDATES)


# ---------------------------------------------------------------- seal verification

def test_seal_verification_accepts_the_platforms_sealed_document(client, app, store_dirs):
    alice = register_person(client, app)
    pdf = download(client, alice, issue(app, alice)["file_id"])
    response = verify(client, pdf)
    assert response.status_code == 200
    body = response.get_json()
    assert body["valid"] is True and body["intact"] is True and body["signer"] == DEPARTMENT
    signed_at = datetime.fromisoformat(body["signed_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - signed_at) < timedelta(minutes=5)


def test_an_altered_byte_fails_both_oracle_and_verification(client, app, store_dirs):
    alice = register_person(client, app, name="王小明")
    pdf = download(client, alice, issue(app, alice)["file_id"])
    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    start, length = signature.byte_range[0], signature.byte_range[1]
    position = pdf.index(b"/Author")  # inside the first signed range: the document information
    assert start <= position < start + length
    altered = bytearray(pdf)
    altered[position + 2] ^= 0x20  # /Author -> /AUthor: same length, different bytes
    altered = bytes(altered)

    assert oracle(altered, published_root(client)).intact is False
    body = verify(client, altered).get_json()
    assert body["valid"] is False and body["intact"] is False


def test_content_appended_after_sealing_is_not_valid(client, app, store_dirs):
    alice = register_person(client, app)
    pdf = download(client, alice, issue(app, alice)["file_id"])
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (APPROVED FOR EVERYTHING) Tj ET")
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    body = verify(client, out.getvalue()).get_json()
    assert body["valid"] is False and body["intact"] is True and body["signer"] == DEPARTMENT
    assert oracle(out.getvalue(), published_root(client)).bottom_line is False


def test_an_unsigned_pdf_is_not_valid(client, app, store_dirs):
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "Decision (forged, unsigned)")
    body = verify(client, bytes(pdf.output())).get_json()
    assert body == {"valid": False, "signer": None, "signed_at": None, "intact": False}


def _foreign_chain():
    """A self-made CA that copies the platform's names, and a 'department' certificate under it."""
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "山东省政务服务"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(timezone.utc)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name("山东省政务服务电子印章根证书"))
            .issuer_name(name("山东省政务服务电子印章根证书")).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name(DEPARTMENT)).issuer_name(root.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(root_key, hashes.SHA256()))
    return root, leaf, leaf_key


def _asn1(certificate):
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def test_a_pdf_sealed_under_a_foreign_ca_with_the_same_names_is_not_valid(client, app, store_dirs):
    root, leaf, leaf_key = _foreign_chain()
    key_der = leaf_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    signer = signers.SimpleSigner(signing_cert=_asn1(leaf), signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
                                  cert_registry=SimpleCertificateStore.from_certs([_asn1(root)]))
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(0, 10, "Forged decision")
    signed = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Seal", subfilter=fields.SigSeedSubFilter.PADES), signer
    ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(bytes(document.output())))).getvalue()

    assert oracle(signed, _asn1(root)).bottom_line  # sound under its own CA...
    assert not oracle(signed, published_root(client)).trusted  # ...but not under the platform's
    body = verify(client, signed).get_json()
    assert body["valid"] is False and body["intact"] is True and body["signer"] == DEPARTMENT


def test_seal_verification_refuses_what_is_not_a_pdf(client, app, store_dirs):
    response = client.post(f"{API}/seal-verifications",
                           data={"file": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * 64), "x.pdf", "application/pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 415 and "file" in response.get_json()["errors"]
    response = client.post(f"{API}/seal-verifications", data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and "file" in response.get_json()["errors"]


# ---------------------------------------------------------------- a trusted timestamp from a local RFC 3161 TSA

def _tsa_chain():
    now = datetime.now(timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA Root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    tsa = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
           .issuer_name(root_name).public_key(tsa_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
           .sign(root_key, hashes.SHA256()))
    tsa_key_info = asn1_keys.PrivateKeyInfo.load(tsa_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return root, tsa, tsa_key_info


@pytest.fixture
def local_tsa(tmp_path):
    """An HTTP RFC 3161 time-stamping service (pyHanko's DummyTimeStamper answers the requests)."""
    root, tsa, tsa_key = _tsa_chain()
    stamped_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    stamper = DummyTimeStamper(tsa_cert=_asn1(tsa), tsa_key=tsa_key,
                               certs_to_embed=SimpleCertificateStore.from_certs([_asn1(root)]), fixed_dt=stamped_at)
    requests_seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests_seen.append(self.headers.get("Content-Type"))
            reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    roots_file = tmp_path / "tsa-roots.pem"
    roots_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/tsa", "roots": str(roots_file),
           "root": _asn1(root), "stamped_at": stamped_at, "requests": requests_seen}
    server.shutdown()
    server.server_close()


def test_a_configured_tsa_timestamps_the_seal(client, app, store_dirs, local_tsa, monkeypatch):
    monkeypatch.setitem(app.config, "SEAL_TSA_URL", local_tsa["url"])
    monkeypatch.setitem(app.config, "SEAL_TSA_ROOTS", local_tsa["roots"])
    alice = register_person(client, app)
    issued = issue(app, alice)
    assert issued["timestamped"] is True
    assert local_tsa["requests"] and set(local_tsa["requests"]) == {"application/timestamp-query"}
    pdf = download(client, alice, issued["file_id"])

    status = oracle(pdf, published_root(client), tsa_root=local_tsa["root"])
    assert status.bottom_line
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert status.timestamp_validity.timestamp == local_tsa["stamped_at"]

    body = verify(client, pdf).get_json()
    assert body["valid"] is True
    assert body["signed_at"] == local_tsa["stamped_at"].strftime("%Y-%m-%dT%H:%M:%SZ")

    monkeypatch.setitem(app.config, "SEAL_TSA_ROOTS", None)  # a timestamp nobody trusts makes the seal invalid
    assert verify(client, pdf).get_json()["valid"] is False


def test_a_tsa_without_its_roots_is_a_configuration_error(app, store_dirs, monkeypatch):
    monkeypatch.setitem(app.config, "SEAL_TSA_URL", "http://127.0.0.1:9/tsa")
    monkeypatch.setitem(app.config, "SEAL_TSA_ROOTS", None)
    with app.app_context(), pytest.raises(RuntimeError, match="SEAL_TSA_ROOTS"):
        documents.seal_pdf(b"%PDF-1.4", department=DEPARTMENT, reason="x")
