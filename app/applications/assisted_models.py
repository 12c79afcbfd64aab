"""帮办代办: an application a staff helper filled in for a person, until the person confirms it."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, update
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..timeutil import as_aware, utcnow

PENDING, CONFIRMED, DECLINED, CANCELLED, EXPIRED = "pending", "confirmed", "declined", "cancelled", "expired"
STATUSES = (PENDING, CONFIRMED, DECLINED, CANCELLED, EXPIRED)
STATUS_LABELS = {PENDING: "待申请人确认", CONFIRMED: "已确认提交", DECLINED: "申请人已拒绝", CANCELLED: "工作人员已撤销",
                 EXPIRED: "已过期"}
CONTACTS = ("phone", "desk")  # the helper filled it in on the phone with the applicant, or at the desk


class AssistedApplication(db.Model):
    """What the helper filled in (service, form, materials: sealed, the form holds personal numbers),
    for whom, by whom, and the applicant's answer. Confirming submits it as the application
    `application_id` (the id the applicant was told)."""

    __tablename__ = "assisted_applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[str] = mapped_column(String(40), unique=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    service_code: Mapped[str] = mapped_column(String(40))
    service_name: Mapped[str] = mapped_column(String(200))
    hall_code: Mapped[str] = mapped_column(String(12), index=True)  # the helper's hall
    helper_id: Mapped[str] = mapped_column(String(40))
    contact: Mapped[str] = mapped_column(String(10))
    request_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def _context(self) -> str:
        return f"assisted:{self.application_id}"

    @property
    def request(self) -> dict:
        """The application as filled in: service_code, form, materials (and where it goes)."""
        return json.loads(pii_cipher().decrypt(self.request_enc, context=self._context()))

    @request.setter
    def request(self, value: dict) -> None:
        self.request_enc = pii_cipher().encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True),
                                                context=self._context())

    @property
    def state(self) -> str:
        """The status, `expired` once a pending one is past its time."""
        if self.status == PENDING and as_aware(self.expires_at) <= utcnow():
            return EXPIRED
        return self.status


def decline_pending_of(subject_id: str) -> int:
    """The person's drafts still waiting for their answer are declined (their account is closing)."""
    return db.session.execute(
        update(AssistedApplication).where(AssistedApplication.subject_id == subject_id,
                                          AssistedApplication.status == PENDING)
        .values(status=DECLINED, decided_at=utcnow()).execution_options(synchronize_session=False)).rowcount
