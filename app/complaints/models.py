"""Complaint tables (找茬吐槽 / 12345): complaints routed to a hall and the hall's replies.

What a complainant writes (and a hotline caller's name and phone) may hold personal data, so it is
kept encrypted (pii_cipher, bound to the complaint) and decrypted only for the complainant and the
staff of the hall it is routed to.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..timeutil import utcnow

CATEGORIES = ("consultation", "complaint", "suggestion", "report")
CATEGORY_LABELS = {"consultation": "咨询", "complaint": "投诉", "suggestion": "建议", "report": "举报"}
OPEN, CLOSED = "open", "closed"
SOURCES = ("app", "hotline12345")
PENDING, SENT, FAILED = "pending", "sent", "failed"  # a reply's way back to the 12345 platform


def _sealed(value: str, context: str) -> str:
    return pii_cipher().encrypt(value, context=context)


def _opened(token: str | None, context: str) -> str | None:
    return pii_cipher().decrypt(token, context=context) if token else None


class Complaint(db.Model):
    """A consultation, complaint, suggestion or report about a hall (and a service or application of it)."""

    __tablename__ = "complaints"
    __table_args__ = (Index("ix_complaints_hall_code_status_due_date", "hall_code", "status", "due_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(20), default="app")
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)  # 12345 ticket number
    category: Mapped[str] = mapped_column(String(20))
    content_enc: Mapped[str] = mapped_column(Text)
    contact_enc: Mapped[str | None] = mapped_column(Text, nullable=True)  # a hotline caller's "name\nphone"
    hall_code: Mapped[str] = mapped_column(ForeignKey("halls.code"))
    service_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    application_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    due_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # the latest reply
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    replies: Mapped[list["ComplaintReply"]] = relationship(back_populates="complaint", order_by="ComplaintReply.id",
                                                           cascade="all, delete-orphan")

    @property
    def content(self) -> str:
        return _opened(self.content_enc, f"complaint:{self.complaint_id}:content")

    @content.setter
    def content(self, value: str) -> None:
        self.content_enc = _sealed(value, f"complaint:{self.complaint_id}:content")

    @property
    def contact(self) -> tuple[str | None, str | None]:
        """(name, phone) of a hotline caller."""
        text = _opened(self.contact_enc, f"complaint:{self.complaint_id}:contact")
        if not text:
            return None, None
        name, _, phone = text.partition("\n")
        return name or None, phone or None

    def set_contact(self, name: str | None, phone: str | None) -> None:
        self.contact_enc = _sealed(f"{name or ''}\n{phone or ''}", f"complaint:{self.complaint_id}:contact") \
            if (name or phone) else None


class ComplaintReply(db.Model):
    """A hall's reply; `close` ends the complaint. Replies to hotline tickets also go back to 12345."""

    __tablename__ = "complaint_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reply_id: Mapped[str] = mapped_column(String(40), unique=True)
    complaint_pk: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    content_enc: Mapped[str] = mapped_column(Text)
    closes: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    hotline_status: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)
    hotline_attempts: Mapped[int] = mapped_column(Integer, default=0)
    hotline_error: Mapped[str | None] = mapped_column(String(300), nullable=True)

    complaint: Mapped[Complaint] = relationship(back_populates="replies")

    @property
    def content(self) -> str:
        return _opened(self.content_enc, f"complaint-reply:{self.reply_id}")

    @content.setter
    def content(self, value: str) -> None:
        self.content_enc = _sealed(value, f"complaint-reply:{self.reply_id}")
