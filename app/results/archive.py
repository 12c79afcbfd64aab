"""The e-archive (电子档案): one immutable package per final application (the decision's hash, the
reviewed materials' hashes, the timeline) as canonical JSON, its hash held by the audit chain, a
retention class; `verify_archives` recomputes every package and checks it against the chain."""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import date, datetime

from sqlalchemy import select

from ..errors import ValidationFailed
from ..extensions import db
from ..files.crypto import CorruptObject
from ..files.models import StoredFile
from ..files.service import stored_digest
from ..files.storage import StorageError
from ..security import audit
from ..security.models import AuditEvent
from ..timeutil import beijing_today, isoformat_z, utcnow
from .models import ArchivePackage, DecisionDocument

AUDIT_EVENT = "archive.sealed"
PERMANENT = "永久"
RETENTION_BY_ITEM_TYPE = {  # 保管期限 by the kind of matter decided
    "行政确认": PERMANENT, "行政裁决": PERMANENT, "行政许可": "30年", "行政给付": "30年",
    "行政备案": "10年", "公共服务": "10年",
}
DEFAULT_RETENTION = "10年"
RETENTIONS = (PERMANENT, "30年", "10年")


def retention_for(item_type: str | None) -> str:
    return RETENTION_BY_ITEM_TYPE.get(item_type or "", DEFAULT_RETENTION)


def _retain_until(retention: str, today: date) -> date | None:
    if retention == PERMANENT:
        return None
    years = int(retention.rstrip("年"))
    return today.replace(year=today.year + years) if not (today.month == 2 and today.day == 29) \
        else date(today.year + years, 3, 1)


def _jsonable(value):
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(document: dict) -> str:
    """Sorted keys, no spaces, UTF-8 text: the same document always gives the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def package_hash(manifest: str) -> str:
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _materials(materials: list[dict], owner_subject_id: str) -> list[dict]:
    """The materials as given, each uploaded file with the hash of what is stored (never the caller's word)."""
    wanted = [item["file_id"] for item in materials if item.get("file_id")]
    hashes = dict(db.session.execute(select(StoredFile.id, StoredFile.sha256).where(
        StoredFile.id.in_(wanted), StoredFile.owner_subject_id == owner_subject_id)).all()) if wanted else {}
    missing = [file_id for file_id in wanted if file_id not in hashes]
    if missing:
        raise ValidationFailed.field("materials", f"归档的材料文件不存在：{'、'.join(missing)}")
    return [{**item, "sha256": hashes[item["file_id"]]} if item.get("file_id") else dict(item) for item in materials]


def archive_application(*, application_id: str, applicant_subject_id: str, service_code: str, service_name: str,
                        department: str, final_status: str, materials: list[dict], timeline: list[dict],
                        decision: DecisionDocument | None = None, item_type: str | None = None,
                        retention: str | None = None, actor: str | None = None) -> ArchivePackage:
    """Archive a final application in the caller's transaction (the caller commits, so the package
    and its audit event stand or fall with the final state). Once per application: a second call
    returns the package already made."""
    existing = db.session.scalars(select(ArchivePackage).where(ArchivePackage.application_id == application_id)).first()
    if existing is not None:
        return existing
    retention = retention or retention_for(item_type)
    if retention not in RETENTIONS:
        raise ValueError(f"unknown retention class {retention!r}")
    package_id, archived_at = f"ar_{secrets.token_hex(10)}", utcnow()
    manifest = canonical_json({
        "package_id": package_id, "application_id": application_id, "applicant_subject_id": applicant_subject_id,
        "service_code": service_code, "service_name": service_name, "department": department,
        "final_status": final_status, "retention": retention, "archived_at": archived_at,
        "decision": {"document_id": decision.id, "decision": decision.decision, "file_id": decision.file_id,
                     "sha256": decision.sha256, "seal_serial": decision.seal_serial} if decision else None,
        "materials": _materials(materials, applicant_subject_id), "timeline": timeline,
    })
    digest = package_hash(manifest)
    event = audit.record(AUDIT_EVENT, subject_id=applicant_subject_id, actor=actor,
                         details={"package_id": package_id, "application_id": application_id,
                                  "package_hash": digest, "retention": retention})
    row = ArchivePackage(id=package_id, application_id=application_id, retention=retention,
                         retain_until=_retain_until(retention, beijing_today()), manifest=manifest,
                         package_hash=digest, audit_seq=event.seq, created_at=archived_at)
    db.session.add(row)
    db.session.flush()
    return row


def verify_archives(*, files: bool = False, batch_size: int = 500) -> audit.VerifyResult:
    """Recompute every package's hash and compare it with the row and with the audit event that
    recorded it (whose own chain hash must hold); with `files`, also re-hash the stored bytes of
    every document and material the package names."""
    result = audit.VerifyResult()
    query = select(ArchivePackage).order_by(ArchivePackage.created_at, ArchivePackage.id)
    for package in db.session.scalars(query.execution_options(yield_per=batch_size)):
        result.count += 1
        result.problems.extend(_package_problems(package, files=files))
    return result


def _package_problems(package: ArchivePackage, *, files: bool) -> list[str]:
    label = f"档案 {package.id}（办件 {package.application_id}）"
    problems = []
    digest = package_hash(package.manifest)
    if digest != package.package_hash:
        problems.append(f"{label} 的内容与记录的哈希不符")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == package.audit_seq)).first()
    details = (event.details or {}) if event is not None else {}
    if event is None or event.event != AUDIT_EVENT or details.get("package_id") != package.id:
        problems.append(f"{label} 在审计链中找不到对应的归档记录")
    elif details.get("package_hash") != digest or details.get("package_hash") != package.package_hash:
        problems.append(f"{label} 的哈希与审计链记录不符")
    elif audit.row_hash(event) != event.hash:
        problems.append(f"{label} 对应的审计链记录被修改")
    if files and not problems:
        problems.extend(_file_problems(package, label))
    return problems


def _file_problems(package: ArchivePackage, label: str) -> list[str]:
    manifest = json.loads(package.manifest)
    named = [manifest["decision"]] if manifest.get("decision") else []
    named += [item for item in manifest.get("materials", []) if item.get("sha256")]
    problems = []
    for item in named:
        try:
            digest = stored_digest(item["sha256"])
        except (CorruptObject, StorageError):
            problems.append(f"{label} 的文件 {item.get('file_id')} 无法读取或解密失败")
            continue
        if digest is None:
            problems.append(f"{label} 的文件 {item.get('file_id')} 已不在存储中")
        elif digest != item["sha256"]:
            problems.append(f"{label} 的文件 {item.get('file_id')} 内容与哈希不符")
    return problems
