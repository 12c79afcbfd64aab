"""The holder's access log (谁看过我的证照): one entry per verification that names a license,
failed ones included, and per use as application material; each also reaches the inbox of
the holder (and of whoever showed it for them) and the audit chain."""
from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..notifications.service import notify
from ..security import audit
from ..timeutil import BEIJING, utcnow
from . import holders
from .models import AccessLogEntry, License

ANONYMOUS = "匿名"
RESULT_LABELS = {"valid": "核验通过", "expired": "已过期", "used": "亮证码已使用", "revoked": "证照已撤销",
                 "suspended": "证照已暂停", "bad_signature": "签名或内容无效", "unknown": "无法识别"}


def record(license: License, *, kind: str, verifier: str, verifier_client_id: str | None,
           purpose: str | None, disclosed: list[str], result: str, shown_by: dict | None,
           presentation_id: str | None, actor: str | None) -> AccessLogEntry:
    """Append an entry, notify and audit in the caller's transaction (the caller commits)."""
    entry = AccessLogEntry(license_id=license.id, at=utcnow(), kind=kind, verifier=verifier,
                           verifier_client_id=verifier_client_id, purpose=purpose,
                           disclosed=list(disclosed), result=result, shown_by=shown_by,
                           presentation_id=presentation_id)
    db.session.add(entry)
    holder_subject = holders.holder_subject_id(license)
    name = license.license_type.name
    when = entry.at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    if kind == "material":
        title = f"您的{name}已用于办件"
        body = f"{when} {verifier}（{purpose or '办件'}）使用了您的{name}。"
    else:
        title = f"您的{name}被核验：{RESULT_LABELS.get(result, result)}"
        body = f"{when} {verifier}核验了您的{name}" + (f"，用途：{purpose}" if purpose else "") + "。"
    data = {"license_id": license.license_id, "result": result, "verifier": verifier,
            "disclosed": list(disclosed), "presentation_id": presentation_id}
    recipients = [holder_subject] if holder_subject else []
    presenter = (shown_by or {}).get("subject_id")
    if presenter and presenter not in recipients:
        recipients.append(presenter)
    for subject_id in recipients:
        notify(subject_id, kind="license_access", title=title, body=body, data=data)
    audit.record("license.used_as_material" if kind == "material" else "license.verified",
                 subject_id=holder_subject, actor=actor,
                 details={"license_id": license.license_id, "result": result, "verifier": verifier,
                          "disclosed": list(disclosed), "presentation_id": presentation_id,
                          "shown_by": (shown_by or {}).get("role")})
    return entry


def page(license: License, *, page: int, page_size: int) -> tuple[list[AccessLogEntry], int]:
    """A license's entries, newest first."""
    base = select(AccessLogEntry).where(AccessLogEntry.license_id == license.id)
    total = db.session.scalar(select(func.count()).select_from(base.subquery()))
    rows = db.session.scalars(base.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total
