"""Write inbox entries and outbox notices in the caller's transaction; deliver the outbox later."""
from __future__ import annotations

import logging

from sqlalchemy import func, select

from ..bulk import insert_rows
from ..errors import ApiError
from ..extensions import db
from ..jobs import enqueue
from ..journal import catch_up
from ..timeutil import utcnow
from .models import Notification, OutboxMessage

logger = logging.getLogger("app.notifications")
MAX_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 30
CHANNELS_WITH_NOTICES = ("wechat", "alipay")


def notify(subject_id: str, *, kind: str, title: str, body: str = "", data: dict | None = None,
           template: str | None = None) -> Notification:
    """Add an inbox entry and, when `template` is given, a notice per bound mini-program channel."""
    note = Notification(subject_id=subject_id, kind=kind, title=title, body=body, data=data or {})
    db.session.add(note)
    if template:
        for channel, open_id in _channel_recipients(subject_id):
            db.session.add(OutboxMessage(subject_id=subject_id, channel=channel, open_id=open_id,
                                         template=template,
                                         payload={"title": title, "body": body, **(data or {})}))
    return note


def notify_many(notes: list[dict]) -> None:
    """Inbox entries (`notify`'s keyword arguments, without templates) as one multi-row insert."""
    if notes:
        now = utcnow()
        insert_rows(Notification.__table__, [{"body": "", "data": {}, "created_at": now, **note} for note in notes])


def _channel_recipients(subject_id: str) -> list[tuple[str, str]]:
    from ..identity.models import ChannelBinding
    rows = db.session.execute(
        select(ChannelBinding.channel, ChannelBinding.open_id)
        .where(ChannelBinding.subject_id == subject_id,
               ChannelBinding.channel.in_(CHANNELS_WITH_NOTICES))).all()
    return [(row.channel, row.open_id) for row in rows]


def schedule_delivery() -> None:
    """After a commit that added outbox rows: deliver them through the job queue."""
    enqueue("app.notifications.service:deliver_pending")


def deliver_pending(limit: int = 100) -> dict:
    """Send pending outbox notices; failures stay pending until MAX_ATTEMPTS."""
    from miniprograms.adapters import adapter_for
    query = (select(OutboxMessage).where(OutboxMessage.status == "pending")
             .order_by(OutboxMessage.id).limit(limit))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    counts = {"sent": 0, "failed": 0, "skipped": 0, "retry": 0}
    for message in db.session.scalars(query).all():
        adapter = adapter_for(message.channel)
        if adapter is None:
            message.status = "skipped"
            counts["skipped"] += 1
            continue
        message.attempts += 1
        try:
            adapter.send_notice(message.open_id, message.template, message.payload)
        except ApiError as exc:
            message.last_error = f"{exc.status}: {exc.detail}"[:300]
            final = exc.status < 500 or message.attempts >= MAX_ATTEMPTS
            message.status = "failed" if final else "pending"
            counts["failed" if final else "retry"] += 1
            continue
        message.status, message.sent_at = "sent", utcnow()
        counts["sent"] += 1
    db.session.commit()
    if counts["retry"]:
        logger.warning("outbox: %s notices will be retried", counts["retry"])
        enqueue("app.notifications.service:deliver_pending", delay=RETRY_DELAY_SECONDS)
    return counts


def inbox_page(subject_id: str, *, page: int, page_size: int) -> tuple[list[Notification], int]:
    """The subject's inbox, newest first (journalled notices included)."""
    catch_up()
    base = select(Notification).where(Notification.subject_id == subject_id)
    total = db.session.scalar(select(func.count()).select_from(base.subquery()))
    rows = db.session.scalars(base.order_by(Notification.created_at.desc(), Notification.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)).all()
    return rows, total
