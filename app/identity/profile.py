"""The caller's own profile (/me): person, company acted for, client, mini-program bindings."""
from __future__ import annotations

from ..errors import Unauthorized
from ..extensions import db
from ..security import audit
from ..security.pii import mask_name
from ..security.rbac import Principal
from .channels import bindings_of
from .clients import client_by_id
from .enterprises import enterprise_for
from .persons import person_by_subject_id


def me(principal: Principal, *, reveal: bool = False) -> dict:
    """The caller's profile for MeSchema. For a company token it describes the person acting
    (the `act` claim) with `acting_for` naming the company. Full ID and phone numbers are
    included only when the holder asks (`reveal`), which is audited."""
    base = {"roles": sorted(principal.roles), "halls": principal.halls, "acting_for": None,
            "bindings": [], "reveal": False, "id_number": None, "phone": None, "real_name_level": None}
    if principal.subject_type == "client":
        client = client_by_id(principal.subject_id)
        return {**base, "subject_id": principal.subject_id, "subject_type": "client",
                "name": client.name if client else None}
    person = person_by_subject_id(principal.actor_id)
    if person is None or not person.active:
        raise Unauthorized("账号不存在或已停用")
    if principal.subject_type == "legal":
        enterprise = enterprise_for(principal.subject_id)
        base["acting_for"] = {
            "subject_id": principal.subject_id,
            "credit_code": enterprise.credit_code if enterprise else principal.claims.get("credit_code"),
            "name": enterprise.name if enterprise else None,
            "role": principal.claims.get("enterprise_role"),
            "scopes": list(principal.claims.get("scopes") or [])}
    elif principal.is_proxy:  # a relative acting for this person (亲友代办)
        grantor = person_by_subject_id(principal.subject_id)
        base["acting_for"] = {"subject_id": principal.subject_id, "name": mask_name(grantor.name if grantor else None),
                              "role": "proxy", "scopes": list(principal.claims.get("scopes") or [])}
    if reveal:
        audit.record("pii.revealed", subject_id=person.subject_id, actor=person.subject_id,
                     details={"fields": ["id_number", "phone"]})
        db.session.commit()
    return {**base, "subject_id": person.subject_id, "subject_type": "person", "name": person.name,
            "id_number": person.id_number, "phone": person.phone, "real_name_level": person.real_name_level,
            "bindings": bindings_of(person.subject_id), "reveal": reveal}
