"""The platform's seal CA: a root created once, and one seal certificate per issuing department
(created on first use, renewed before it expires); private keys encrypted like the signing keys."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..security.keys import key_cipher
from ..timeutil import as_aware, utcnow
from .models import SealCertificate

if TYPE_CHECKING:  # pyHanko and asn1crypto are imported by what signs or checks
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers import SimpleSigner

ORGANIZATION = "山东省政务服务"
ROOT_NAME = "山东省政务服务电子印章根证书"
ROOT_SLOT = "root"
ROOT_YEARS, DEPARTMENT_YEARS = 20, 5
RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(minutes=5)
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=signing, content_commitment=signing, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                         crl_sign=not signing, encipher_only=False, decipher_only=False)


def _store(*, slot: str, kind: str, department: str | None, certificate: x509.Certificate, private_key,
           issuer_serial: str | None) -> SealCertificate:
    serial = format(certificate.serial_number, "x")
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return SealCertificate(
        serial=serial, slot=slot, kind=kind, department=department, issuer_serial=issuer_serial,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_enc=key_cipher().encrypt(pem, context=f"seal-key:{serial}"),
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc)


def _new_root() -> SealCertificate:
    key, now, name = ec.generate_private_key(ec.SECP256R1()), utcnow(), _name(ROOT_NAME)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - BACKDATE)
                   .not_valid_after(now + timedelta(days=365 * ROOT_YEARS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(_key_usage(signing=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .sign(key, hashes.SHA256()))
    return _store(slot=ROOT_SLOT, kind="root", department=None, certificate=certificate, private_key=key,
                  issuer_serial=None)


def _new_department(department: str, root: SealCertificate) -> SealCertificate:
    root_cert, root_key = load_certificate(root), load_private_key(root)
    key, now = ec.generate_private_key(ec.SECP256R1()), utcnow()
    not_after = min(now + timedelta(days=365 * DEPARTMENT_YEARS), root_cert.not_valid_after_utc)
    certificate = (x509.CertificateBuilder().subject_name(_name(department)).issuer_name(root_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - BACKDATE).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(signing=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                  critical=False)
                   .sign(root_key, hashes.SHA256()))
    return _store(slot=f"department:{department}", kind="department", department=department,
                  certificate=certificate, private_key=key, issuer_serial=root.serial)


def load_certificate(row: SealCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(row.certificate_pem.encode())


def load_private_key(row: SealCertificate):
    pem = key_cipher().decrypt(row.private_key_enc, context=f"seal-key:{row.serial}")
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _in_slot(slot: str) -> SealCertificate | None:
    return db.session.scalars(select(SealCertificate).where(SealCertificate.slot == slot)).first()


def _claim(slot: str, build) -> SealCertificate:
    """The certificate in `slot`, made by `build()` and committed when there is none (or it is about
    to expire: the old one keeps working for what it sealed and gives its slot up)."""
    row = _in_slot(slot)
    if row is not None and as_aware(row.not_after) - RENEW_BEFORE > utcnow():
        return row
    try:
        if row is not None:
            row.slot = f"{slot}@{row.serial}"
            db.session.flush()
        fresh = build()
        db.session.add(fresh)
        db.session.commit()
        return fresh
    except IntegrityError:  # another worker made it first
        db.session.rollback()
        return _in_slot(slot)


def root() -> SealCertificate:
    """The platform's seal root (created on first use)."""
    return _claim(ROOT_SLOT, _new_root)


def department_seal(department: str) -> SealCertificate:
    """The department's current seal certificate (issued by the root on first use)."""
    return _claim(f"department:{department}", lambda: _new_department(department, root()))


def root_pem() -> str:
    return root().certificate_pem


def trusted_roots() -> list[asn1_x509.Certificate]:
    """Every seal root the platform has had: the only trust anchors for seal verification."""
    rows = db.session.scalars(select(SealCertificate).where(SealCertificate.kind == "root")).all()
    return [as_asn1(load_certificate(row)) for row in rows] or [as_asn1(load_certificate(root()))]


def as_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    from asn1crypto import x509 as asn1_x509
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def signer_for(department: str) -> tuple[SimpleSigner, SealCertificate]:
    """A pyHanko signer with the department's seal and the chain up to the root embedded."""
    from asn1crypto import keys as asn1_keys
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore
    seal = department_seal(department)
    issuer = db.session.get(SealCertificate, seal.issuer_serial)
    private_der = load_private_key(seal).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption())
    signer = SimpleSigner(signing_cert=as_asn1(load_certificate(seal)),
                          signing_key=asn1_keys.PrivateKeyInfo.load(private_der),
                          cert_registry=SimpleCertificateStore.from_certs([as_asn1(load_certificate(issuer))]))
    return signer, seal
