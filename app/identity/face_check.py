"""Face checks (real-name level 3): the provider interface, the configured provider and the flow.

The core knows `FaceCheckProvider` only: `start` asks the provider for a liveness and
face-comparison check of a named person (name and ID number, compared by the provider with the
photo of the national ID database) and returns the provider's token and the address of its
liveness page; `outcome` asks how that check ended. The bundled client speaks Tencent Cloud
FaceID's 实名核身 API (app/identity/faceid_tencent.py); FACE_CHECK_PROVIDER ("module:Class")
plugs in another. A check passes only when the provider reports success with a similarity of at
least FACE_CHECK_MIN_SIMILARITY (70) for the ID number and name the account holds; the person's
real-name level then becomes 3. Starting, passing and failing are audited.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from ..errors import NotFound
from ..extensions import db
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import as_aware, utcnow
from .common import new_id
from .levels import FACE_VERIFIED
from .models import FaceVerification, Person
from .persons import acting_person
from .registries import same_name

DEFAULT_PROVIDER = "app.identity.faceid_tencent:TencentFaceId"
CHECK_TTL = 600  # FACE_CHECK_TTL overrides: seconds to finish the check on the provider's page
MIN_SIMILARITY = 70.0  # FACE_CHECK_MIN_SIMILARITY overrides


@dataclass(frozen=True)
class FaceCheckStart:
    token: str  # the provider's handle of this check
    url: str  # the provider's liveness page, opened on the person's phone


@dataclass(frozen=True)
class FaceCheckOutcome:
    status: str  # pending | passed | failed
    similarity: float | None = None
    id_number: str | None = None
    name: str | None = None
    reason: str | None = None


class FaceCheckProvider(ABC):
    """A face-check service: liveness detection and comparison with the ID photo of a named person."""

    name = "abstract"

    @abstractmethod
    def start(self, *, id_number: str, name: str, redirect_url: str) -> FaceCheckStart:
        """Open a check; raise app.errors.UpstreamError / ServiceUnavailable when the provider fails."""

    @abstractmethod
    def outcome(self, token: str) -> FaceCheckOutcome:
        """How the check `token` stands now."""


def provider() -> FaceCheckProvider:
    """The configured provider (built once per app); its constructor refuses (503) when unset."""
    cache = current_app.extensions.setdefault("identity_adapters", {})
    if "FACE_CHECK_PROVIDER" not in cache:
        path = current_app.config.get("FACE_CHECK_PROVIDER") or DEFAULT_PROVIDER
        module, _, name = path.partition(":")
        cache["FACE_CHECK_PROVIDER"] = getattr(importlib.import_module(module), name)(current_app.config)
    return cache["FACE_CHECK_PROVIDER"]


def _view(row: FaceVerification, person: Person, url: str | None = None) -> dict:
    return {"verification_id": row.verification_id, "status": row.status, "url": url,
            "expires_at": row.expires_at, "completed_at": row.completed_at, "reason": row.reason,
            "real_name_level": person.real_name_level}


def start(*, principal: Principal) -> dict:
    """Open a face check of the caller at the provider; returns it with the provider's page."""
    person = acting_person(principal)
    checker = provider()
    begun = checker.start(id_number=person.id_number, name=person.name,
                          redirect_url=current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/")
    now = utcnow()
    ttl = int(current_app.config.get("FACE_CHECK_TTL", CHECK_TTL))
    row = FaceVerification(verification_id=new_id("fv"), subject_id=person.subject_id, provider=checker.name,
                           provider_token=begun.token, status="pending", created_at=now,
                           expires_at=now + timedelta(seconds=ttl))
    db.session.add(row)
    audit.record("face_check.started", subject_id=person.subject_id, actor=person.subject_id,
                 details={"verification_id": row.verification_id, "provider": checker.name})
    db.session.commit()
    return _view(row, person, begun.url)


def result(*, principal: Principal, verification_id: str) -> dict:
    """The caller's check; while pending, the provider is asked and a final answer recorded."""
    person = acting_person(principal)
    row = db.session.scalar(select(FaceVerification).where(FaceVerification.verification_id == verification_id,
                                                           FaceVerification.subject_id == person.subject_id))
    if row is None:
        raise NotFound("人脸核验记录不存在")
    if row.status == "pending":
        if as_aware(row.expires_at) <= utcnow():
            _finish(row, person, "expired", FaceCheckOutcome("failed", reason="核验超时，请重新发起"))
        else:
            outcome = provider().outcome(row.provider_token)
            if outcome.status != "pending":
                _finish(row, person, _judged(outcome, person), outcome)
    return _view(row, person)


def _judged(outcome: FaceCheckOutcome, person: Person) -> str:
    minimum = float(current_app.config.get("FACE_CHECK_MIN_SIMILARITY", MIN_SIMILARITY))
    same_person = (outcome.id_number or "").upper() == person.id_number and same_name(outcome.name or "", person.name)
    passed = outcome.status == "passed" and (outcome.similarity or 0) >= minimum and same_person
    return "passed" if passed else "failed"


def _finish(row: FaceVerification, person: Person, status: str, outcome: FaceCheckOutcome) -> None:
    """Record the final answer once (concurrent polls: the first update wins) and raise the level."""
    reason = None if status == "passed" else (outcome.reason or "人脸核验未通过")[:200]
    now = utcnow()
    claimed = db.session.execute(
        update(FaceVerification).where(FaceVerification.id == row.id, FaceVerification.status == "pending")
        .values(status=status, similarity=outcome.similarity, reason=reason, completed_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if claimed == 1:
        if status == "passed" and person.real_name_level < FACE_VERIFIED:
            person.real_name_level = FACE_VERIFIED
        audit.record(f"face_check.{status}", subject_id=person.subject_id, actor=person.subject_id,
                     details={"verification_id": row.verification_id, "similarity": outcome.similarity,
                              "reason": reason, "real_name_level": person.real_name_level})
    db.session.commit()
    db.session.refresh(row)
