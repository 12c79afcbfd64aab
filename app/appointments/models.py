"""Appointment tables: a hall's bookable slots (综合窗口, 一窗受理) and the bookings made in them.

The database keeps the promises: `booked` never passes `capacity` (a CHECK constraint, besides the
conditional UPDATE that takes a place), and one person holds at most one active booking per slot
(`active_slot_id` is the slot while the booking is active and NULL once it is cancelled, under a
unique constraint with the subject; NULLs never collide).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow

BOOKED, CANCELLED, ATTENDED, NO_SHOW = "booked", "cancelled", "attended", "no_show"
STATUSES = (BOOKED, CANCELLED, ATTENDED, NO_SHOW)
STATUS_LABELS = {BOOKED: "已预约", CANCELLED: "已取消", ATTENDED: "已到场", NO_SHOW: "爽约"}


class AppointmentSlot(db.Model):
    """Half an hour of a hall's windows on one working day; `slot_id` is "{hall}-{YYYYMMDD}-{HHMM}"."""

    __tablename__ = "appointment_slots"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        Index("ix_appointment_slots_hall_code_day", "hall_code", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[str] = mapped_column(String(40), unique=True)
    hall_code: Mapped[str] = mapped_column(ForeignKey("halls.code"))
    day: Mapped[date] = mapped_column(Date)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)  # tickets handed out so far (never decreases)


class Appointment(db.Model):
    """One person's booking of a slot for a service of that hall."""

    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("active_slot_id", "subject_id"),  # one active booking per person and slot
        Index("ix_appointments_subject_id_status", "subject_id", "status"),
        Index("ix_appointments_hall_code_day", "hall_code", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[str] = mapped_column(String(40), unique=True)
    slot_pk: Mapped[int] = mapped_column(ForeignKey("appointment_slots.id"), index=True)
    active_slot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject_id: Mapped[str] = mapped_column(String(40))
    hall_code: Mapped[str] = mapped_column(String(12))
    day: Mapped[date] = mapped_column(Date)
    service_code: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str] = mapped_column(String(200))
    ticket: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=BOOKED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    slot: Mapped[AppointmentSlot] = relationship(lazy="joined", innerjoin=True)
