"""The holder's access log (谁看过我的证照): one entry per verification that names a license,
failed ones included, and per use as application material; each also reaches the inbox of
the holder (and of whoever showed it for them) and the audit chain.

Uses as material are written in the application's transaction (`record`). Verifications are
journalled (`journal_line`, atomically with consuming the one-time code) and written in batches
by `write_journal_entries`; readers catch up with the journal first.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import load_only

from .. import journal
from ..bulk import among, insert_rows
from ..extensions import db
from ..identity.models import ApiClient
from ..json_output import json_read
from ..notifications.service import notify_many
from ..security import audit
from ..timeutil import BEIJING, utcnow
from . import holders
from .models import AccessLogEntry, License, Presentation

ANONYMOUS = "匿名"
JOURNAL_KIND = "wallet.access"
LICENSE_FACTS = (License.id, License.license_id, License.license_type_code, License.holder_type,
                 License.holder_index, License.holder_ref_enc)  # what an entry needs of its license
RESULT_LABELS = {"valid": "核验通过", "expired": "已过期", "used": "亮证码已使用", "revoked": "证照已撤销",
                 "suspended": "证照已暂停", "bad_signature": "签名或内容无效", "unknown": "无法识别",
                 "cancelled": "亮证已结束", "device_removed": "设备已移除或挂失",
                 "device_binding_required": "核验方要求设备绑定", "wrong_nonce": "不是本次核验的亮证",
                 "wrong_audience": "不是给该核验方的亮证", "wrong_type": "证照类型不符"}


def record(license: License, *, kind: str, verifier: str, verifier_client_id: str | None,
           purpose: str | None, disclosed: list[str], result: str, shown_by: dict | None,
           presentation_id: str | None, actor: str | None) -> None:
    """Append an entry, notify and audit in the caller's transaction (the caller commits)."""
    _add([(_row(license, at=utcnow(), kind=kind, event_id=None, verifier=verifier,
                verifier_client_id=verifier_client_id, purpose=purpose, disclosed=disclosed, result=result,
                shown_by=shown_by, presentation_id=presentation_id), license, actor, None)],
         {license.id: holders.holder_subject_id(license)})


def journal_line(*, license_pk: int, presentation_id: str | None, verifier_client_id: str | None,
                 result: str, disclosed: list[str], actor: str | None, ip: str | None,
                 purpose: str | None = None, shown_by: dict | None = None, readers: list[str] = ()) -> str:
    """A verification as a journal entry (no personal data: ids, field names and the result).
    `purpose` and `shown_by` are for what no presentation record describes (a phone's own); `readers`:
    whose inboxes it reaches (`holders.told_of_use`), to push with it."""
    extra = {key: value for key, value in (("purpose", purpose), ("shown_by", shown_by)) if value is not None}
    return journal.entry(JOURNAL_KIND, readers=readers, license=license_pk, presentation=presentation_id,
                         client=verifier_client_id, result=result, disclosed=list(disclosed), actor=actor, ip=ip,
                         **extra)


def write_journal_entries(entries: list[dict]) -> None:
    """Journal handler: the verifications of a batch, each written once (by its entry id)."""
    ids = [item["id"] for item in entries]
    done = set(db.session.scalars(select(AccessLogEntry.event_id).where(among(AccessLogEntry.event_id, ids))))
    entries = [item for item in entries if item["id"] not in done]
    licenses = {row.id: row for row in db.session.scalars(
        select(License).options(load_only(*LICENSE_FACTS)).where(among(License.id, {item["license"] for item in entries})))}
    shown = {row.presentation_id: row for row in db.session.execute(
        select(Presentation.presentation_id, Presentation.purpose, cast(Presentation.shown_by, Text).label("shown_by"))
        .where(among(Presentation.presentation_id, {item["presentation"] for item in entries if item["presentation"]})))}
    clients = {row.client_id: row.name for row in db.session.execute(
        select(ApiClient.client_id, ApiClient.name).where(
            among(ApiClient.client_id, {item["client"] for item in entries if item["client"]})))}
    batch = []
    for item in entries:
        license = licenses.get(item["license"])
        if license is None:  # deleted since; nothing to show it to
            continue
        presentation = shown.get(item["presentation"])
        client_id = item["client"]
        row = _row(license, at=datetime.fromtimestamp(item["at"], timezone.utc), kind="verification",
                   event_id=item["id"], verifier=clients.get(client_id, client_id) if client_id else ANONYMOUS,
                   verifier_client_id=client_id,
                   purpose=presentation.purpose if presentation else item.get("purpose"),
                   disclosed=item["disclosed"], result=item["result"],
                   shown_by=_shown_by(presentation.shown_by) if presentation else item.get("shown_by"),
                   presentation_id=presentation.presentation_id if presentation else None)
        batch.append((row, license, item["actor"], item.get("ip")))
    if batch:
        _add(batch, holders.holder_subject_ids(list(licenses.values())))


def _shown_by(text: str | None) -> dict | None:
    """`shown_by` read as text and parsed by `json_read`: the driver would parse the JSON column with the
    standard library, several times slower, for every entry of a batch."""
    return None if text is None else json_read(text)


def _row(license: License, **values) -> dict:
    return {"license_id": license.id, **values, "disclosed": list(values["disclosed"])}


def _add(batch: list[tuple[dict, License, str | None, str | None]], holder_of: dict[int, str | None]) -> None:
    """The entries, their inbox notices and one audit event each, as three multi-row inserts."""
    notices, events = [], []
    for row, license, actor, ip in batch:
        holder_subject = holder_of.get(license.id)
        notices += _notices(row, license, holder_subject)
        events.append(dict(event="license.used_as_material" if row["kind"] == "material" else "license.verified",
                           subject_id=holder_subject, actor=actor, ip=ip,
                           details={"license_id": license.license_id, "result": row["result"],
                                    "verifier": row["verifier"], "disclosed": row["disclosed"],
                                    "presentation_id": row["presentation_id"],
                                    "shown_by": (row["shown_by"] or {}).get("role")}))
    insert_rows(AccessLogEntry.__table__, [row for row, *_ in batch])
    notify_many(notices)
    audit.record_many(events)


def _notices(row: dict, license: License, holder_subject: str | None) -> list[dict]:
    name = license.license_type.name
    when = row["at"].astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    if row["kind"] == "material":
        title = f"您的{name}已用于办件"
        body = f"{when} {row['verifier']}（{row['purpose'] or '办件'}）使用了您的{name}。"
    else:
        title = f"您的{name}被核验：{RESULT_LABELS.get(row['result'], row['result'])}"
        body = f"{when} {row['verifier']}核验了您的{name}" + (f"，用途：{row['purpose']}" if row["purpose"] else "") + "。"
    data = {"license_id": license.license_id, "result": row["result"], "verifier": row["verifier"],
            "disclosed": row["disclosed"], "presentation_id": row["presentation_id"]}
    return [dict(subject_id=subject_id, kind="license_access", title=title, body=body, data=data)
            for subject_id in holders.told_of_use(holder_subject, row["shown_by"])]


def page(license: License, *, page: int, page_size: int) -> tuple[list[AccessLogEntry], int]:
    """A license's entries, newest first (the caller has caught up with the journal)."""
    base = select(AccessLogEntry).where(AccessLogEntry.license_id == license.id)
    total = db.session.scalar(select(func.count()).select_from(base.subquery()))
    rows = db.session.scalars(base.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total
