"""Holder devices (phone keys) and device binding.

A person registers the public half of a P-256 key their phone generated (`POST /wallet/devices`);
the private key never leaves the phone. Binding re-issues one of their licenses to that key:
`cnf.jwk` = the device key, `holder_binding: "device"`, every disclosure, the same identifier,
validity and status list entry, so the phone presents it offline by itself with a standard
RFC 9901 KB-JWT. Removing a device (or reporting it lost) ends every credential bound to it:
verification answers `device_removed`. A removed key cannot be registered again.
"""
from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..identity.actors import actor_of
from ..identity.levels import ensure_level_for
from ..security import audit
from ..security.jose import JoseError, jwk_thumbprint, load_public_jwk
from ..security.rbac import Principal
from ..timeutil import utcnow
from . import holders, presentations
from .device_models import Device, LicenseBinding
from .issuance import sign_credential
from .sdjwt import DEVICE_BINDING

MAX_DEVICES = 10  # active devices per person
DEVICE_ID_RE = re.compile(r"dev_[0-9a-f]{24}")
PUBLIC_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "use", "alg", "key_ops"})
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
REMOVAL_REASONS = ("removed", "lost")
NOT_FOUND = "设备不存在"


def _owner(principal: Principal):
    return actor_of(principal).own_person()


def _public_jwk(jwk) -> dict:
    """The four members of a public EC P-256 JWK; 422 naming `jwk` for anything else."""
    def refuse(message: str):
        raise ValidationFailed.field("jwk", message)

    if not isinstance(jwk, dict):
        refuse("应为 JWK 对象")
    if PRIVATE_MEMBERS & set(jwk):
        refuse("只能登记公钥：JWK 不能包含私钥成员（d 等），私钥只保存在手机上")
    if set(jwk) - PUBLIC_MEMBERS:
        refuse("JWK 含有不支持的成员：" + "、".join(sorted(set(jwk) - PUBLIC_MEMBERS)))
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        refuse("只支持 EC P-256 公钥（kty=EC，crv=P-256）")
    if jwk.get("alg") not in (None, "ES256") or jwk.get("use") not in (None, "sig"):
        refuse("该公钥应用于 ES256 签名")
    try:
        load_public_jwk(jwk)
    except JoseError:
        refuse("x、y 不是 P-256 曲线上的点")
    return {member: jwk[member] for member in ("kty", "crv", "x", "y")}


def register_device(*, principal: Principal, name: str, jwk) -> Device:
    """Register a phone key for the caller (a person); commits. 409 for a key already registered
    (by anyone, or removed before) and beyond MAX_DEVICES active devices."""
    person = _owner(principal)
    public = _public_jwk(jwk)
    jkt = jwk_thumbprint(public)
    if db.session.scalar(select(Device.id).where(Device.jkt == jkt)) is not None:
        raise Conflict("该设备密钥已登记过（移除或挂失的密钥不能再次登记，请在手机上生成新密钥）")
    active = db.session.scalar(select(func.count()).select_from(Device).where(
        Device.owner_subject_id == person.subject_id, Device.status == "active"))
    if active >= MAX_DEVICES:
        raise Conflict(f"最多登记{MAX_DEVICES}台设备，请先移除不用的设备")
    device = Device(device_id="dev_" + secrets.token_hex(12), owner_subject_id=person.subject_id,
                    name=name, public_jwk=public, jkt=jkt, status="active", created_at=utcnow())
    db.session.add(device)
    audit.record("wallet.device_registered", subject_id=person.subject_id, actor=principal.actor_id,
                 details={"device_id": device.device_id, "jkt": jkt, "name": name})
    try:
        db.session.commit()
    except IntegrityError as exc:  # the same key registered concurrently
        db.session.rollback()
        raise Conflict("该设备密钥已登记过") from exc
    return device


def devices_page(*, principal: Principal, page: int, page_size: int) -> tuple[list[Device], int]:
    """The caller's devices, active first, newest first."""
    person = _owner(principal)
    query = select(Device).where(Device.owner_subject_id == person.subject_id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by((Device.status == "active").desc(), Device.created_at.desc(),
                                             Device.id.desc()).offset((page - 1) * page_size).limit(page_size))
    return list(rows), total


def _own_device(person, device_id: str) -> Device:
    device = None
    if isinstance(device_id, str) and DEVICE_ID_RE.fullmatch(device_id):
        device = db.session.scalar(select(Device).where(Device.device_id == device_id,
                                                        Device.owner_subject_id == person.subject_id))
    if device is None:
        raise NotFound(NOT_FOUND)
    return device


def remove_device(*, principal: Principal, device_id: str, reason: str = "removed") -> Device:
    """Remove (or report lost) one of the caller's devices: every credential bound to it stops
    verifying at once. Idempotent; commits."""
    person = _owner(principal)
    if reason not in REMOVAL_REASONS:
        raise ValidationFailed.field("reason", "原因应为 removed 或 lost")
    device = _own_device(person, device_id)
    if device.status != "active":
        return device
    device.status, device.removed_at = reason, utcnow()
    audit.record("wallet.device_removed", subject_id=person.subject_id, actor=principal.actor_id,
                 details={"device_id": device.device_id, "jkt": device.jkt, "reason": reason})
    db.session.commit()
    return device


def bind_license(*, principal: Principal, license_id: str, device_id: str) -> dict:
    """Re-issue a license the caller may show to one of the caller's active devices; commits.
    Returns {"sd_jwt", "device_id", "license_id"}: the device-bound credential, every disclosure."""
    license = presentations.license_by_id(license_id)
    capacity = holders.actor_for(principal, license, need=holders.PRESENT)
    owner = capacity.subject_id  # devices belong to the person acting (holder, guardian, agent)
    acting = actor_of(principal)
    if acting.person is not None:
        ensure_level_for(acting.person, "license_binding")  # L3 where REQUIRE_L3_FOR names it
    if not isinstance(device_id, str) or not DEVICE_ID_RE.fullmatch(device_id):
        raise ValidationFailed.field("device_id", "设备不存在")
    device = db.session.scalar(select(Device).where(Device.device_id == device_id,
                                                    Device.owner_subject_id == owner))
    if device is None:
        raise ValidationFailed.field("device_id", "设备不存在")
    if device.status != "active":
        raise Conflict("该设备已移除或挂失，不能绑定证照")
    presentations.require_usable(license)
    kid, sd_jwt = sign_credential(license, holder_public_jwk=device.public_jwk, binding=DEVICE_BINDING)
    binding = db.session.scalar(select(LicenseBinding).where(LicenseBinding.license_id == license.id,
                                                             LicenseBinding.device_id == device.id))
    if binding is None:
        db.session.add(LicenseBinding(license_id=license.id, device_id=device.id, jkt=device.jkt, bound_at=utcnow()))
    else:
        binding.bound_at = utcnow()
    audit.record("license.bound_to_device", subject_id=holders.holder_subject_id(license), actor=capacity.subject_id,
                 details={"license_id": license.license_id, "device_id": device.device_id, "kid": kid,
                          "role": capacity.role})
    db.session.commit()
    return {"license_id": license.license_id, "device_id": device.device_id, "sd_jwt": sd_jwt}


def bound_device_status(license_pk: int, jkt: str) -> str | None:
    """The status of the device a license is bound to by the key with this thumbprint; None when unbound."""
    return db.session.scalar(select(Device.status).join(LicenseBinding, LicenseBinding.device_id == Device.id)
                             .where(LicenseBinding.license_id == license_pk, LicenseBinding.jkt == jkt))
