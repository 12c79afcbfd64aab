"""好差评: one rating per completed application, and rectification tickets for bad ones."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..applications.models import Application
from ..extensions import db
from ..timeutil import utcnow

RATING_LABELS = {1: "非常不满意", 2: "不满意", 3: "基本满意", 4: "满意", 5: "非常满意"}
SATISFIED_RATINGS = (4, 5)  # what counts towards the satisfaction rate
DIMENSIONS = {"efficiency": "办事效率", "guide_accuracy": "办事指南精确度", "convenience": "办事便捷度",
              "attitude": "服务态度"}
OPEN, CLOSED = "open", "closed"


class Evaluation(db.Model):
    """The applicant's rating of one completed application (unique per application)."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_hall_code_service_code", "hall_code", "service_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(String(40), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    actor_id: Mapped[str] = mapped_column(String(40))
    hall_code: Mapped[str] = mapped_column(String(12))
    service_code: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str] = mapped_column(String(200))
    rating: Mapped[int] = mapped_column(Integer)
    dimensions: Mapped[dict] = mapped_column(JSON, default=dict)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    application: Mapped[Application] = relationship()
    ticket: Mapped["RectificationTicket | None"] = relationship(back_populates="evaluation", uselist=False)


class RectificationTicket(db.Model):
    """差评整改: opened for ratings 1-2, due in 5 working days, closed with a resolution."""

    __tablename__ = "rectification_tickets"
    __table_args__ = (Index("ix_rectification_tickets_hall_code_status", "hall_code", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(40), unique=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), unique=True)
    application_id: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(40))
    hall_code: Mapped[str] = mapped_column(String(12))
    service_code: Mapped[str] = mapped_column(String(40))
    rating: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    due_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    evaluation: Mapped[Evaluation] = relationship(back_populates="ticket")
    follow_ups: Mapped[list["RectificationFollowUp"]] = relationship(
        back_populates="ticket", order_by="RectificationFollowUp.id", cascade="all, delete-orphan")


class RectificationFollowUp(db.Model):
    """A note a hall admin adds while working on a ticket."""

    __tablename__ = "rectification_follow_ups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("rectification_tickets.id", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    ticket: Mapped[RectificationTicket] = relationship(back_populates="follow_ups")
