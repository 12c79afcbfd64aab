"""Write inbox entries and outbox notices in the caller's transaction; deliver the outbox later."""
from __future__ import annotations

import functools
import logging

from sqlalchemy import bindparam, func, insert, literal, select, update

from .. import personal_pages
from ..bulk import insert_rows
from ..errors import ApiError, NotFound
from ..extensions import db
from ..identity.models import ChannelBinding
from ..jobs import enqueue
from ..journal import catch_up
from ..pages import counted_page
from ..timeutil import utcnow
from .models import Notification, OutboxMessage

logger = logging.getLogger("app.notifications")
MAX_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 30
CHANNELS_WITH_NOTICES = ("wechat", "alipay")
MAX_ID = 2**31 - 1  # notification ids are 32-bit integers


def notify(subject_id: str, *, kind: str, title: str, body: str = "", data: dict | None = None,
           template: str | None = None) -> bool:
    """Add an inbox entry and, when `template` is given, a notice per bound mini-program channel, as
    statements in the open transaction; True when a notice was added (`schedule_delivery` after the commit)."""
    now = utcnow()
    db.session.execute(insert(Notification.__table__), {"subject_id": subject_id, "kind": kind, "title": title,
                                                         "body": body, "data": data or {}, "created_at": now})
    personal_pages.changed("inbox", (subject_id,))
    if not template:
        return False
    return db.session.execute(OUTBOX_FOR_BOUND_CHANNELS, {
        "subject": subject_id, "template": template, "payload": {"title": title, "body": body, **(data or {})},
        "now": now}).rowcount > 0


_OUTBOX = OutboxMessage.__table__
OUTBOX_FOR_BOUND_CHANNELS = insert(_OUTBOX).from_select(  # a pending notice per bound channel that takes them
    ["subject_id", "channel", "open_id", "template", "payload", "status", "attempts", "created_at"],
    select(ChannelBinding.subject_id, ChannelBinding.channel, ChannelBinding.open_id,
           bindparam("template", type_=_OUTBOX.c.template.type), bindparam("payload", type_=_OUTBOX.c.payload.type),
           literal("pending"), literal(0), bindparam("now", type_=_OUTBOX.c.created_at.type))
    .where(ChannelBinding.subject_id == bindparam("subject"), ChannelBinding.channel.in_(CHANNELS_WITH_NOTICES)))


def notify_many(notes: list[dict]) -> None:
    """Inbox entries (`notify`'s keyword arguments, without templates) as one multi-row insert."""
    if notes:
        now = utcnow()
        insert_rows(Notification.__table__, [{"body": "", "data": {}, "created_at": now, **note} for note in notes])
        personal_pages.changed("inbox", {note["subject_id"] for note in notes})


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


_NOTES = Notification.__table__


_UNREAD = select(func.count()).select_from(_NOTES).where(_NOTES.c.subject_id == bindparam("subject"),
                                                         _NOTES.c.read_at.is_(None))


@functools.cache
def _inbox_query(unread: bool | None, by_kind: bool):
    """One page of an inbox with the filter's total and the whole inbox's unread count, as one Core
    statement built once per kind of filter."""
    query = select(_NOTES.c.id, _NOTES.c.kind, _NOTES.c.title, _NOTES.c.body, _NOTES.c.data, _NOTES.c.created_at,
                   _NOTES.c.read_at, func.count().over().label("total"),
                   _UNREAD.scalar_subquery().label("unread")).where(
        _NOTES.c.subject_id == bindparam("subject"))
    if unread is not None:
        query = query.where(_NOTES.c.read_at.is_(None) if unread else _NOTES.c.read_at.is_not(None))
    if by_kind:
        query = query.where(_NOTES.c.kind == bindparam("kind"))
    return query.order_by(_NOTES.c.created_at.desc(), _NOTES.c.id.desc()).offset(bindparam("offset")).limit(
        bindparam("limit"))


def inbox_page(subject_id: str, *, page: int, page_size: int, unread: bool | None = None,
               kind: str | None = None, caught_up: bool = False) -> tuple[list, int, int]:
    """The subject's inbox, newest first (journalled notices included: the journal is caught up with
    first, unless the caller did, `caught_up`), filtered by read state and kind: (rows, total of the filter, unread
    count of the whole inbox); one read for a page with rows."""
    if not caught_up:
        catch_up(reader=subject_id)
    query = _inbox_query(unread, bool(kind))
    params = {"subject": subject_id, "kind": kind, "offset": (page - 1) * page_size, "limit": page_size}
    rows, total = counted_page(query, params)
    return rows, total, rows[0].unread if rows else unread_count(subject_id)


personal_pages.watch(Notification, ("inbox",), personal_pages.subjects_in("subject_id"))


def unread_count(subject_id: str) -> int:
    return db.session.scalar(_UNREAD, {"subject": subject_id}) or 0


def mark_read(subject_id: str, notification_id: str) -> Notification:
    """Mark one of the subject's notices read (again: unchanged); 404 for anyone else's or a
    malformed id; commits."""
    known = notification_id.isascii() and notification_id.isdigit() and int(notification_id) <= MAX_ID
    note = db.session.scalar(select(Notification).where(Notification.id == int(notification_id),
                                                        Notification.subject_id == subject_id)) if known else None
    if note is None:
        raise NotFound("消息不存在")
    if note.read_at is None:
        note.read_at = utcnow()
        db.session.commit()
    return note


def mark_all_read(subject_id: str, *, kind: str | None = None) -> int:
    """Mark every unread notice of the subject (of one kind) read; returns how many; commits."""
    catch_up(reader=subject_id)
    query = update(Notification).where(Notification.subject_id == subject_id, Notification.read_at.is_(None))
    if kind:
        query = query.where(Notification.kind == kind)
    updated = db.session.execute(query.values(read_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    personal_pages.changed("inbox", [subject_id])
    db.session.commit()
    return updated
