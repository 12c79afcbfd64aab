"""Truthful issuance: a license's identity fields agree with the registries and the ID number.

A person's `name` must be the name the population registry holds for the holder's ID number;
`gender` and `birth_date` must be what the GB 11643 ID number itself encodes (the sequence
digit's parity, digits 7-14). A legal entity's `entity_name` must be the legal-entity registry's
name for the credit code, and `legal_representative` the registered representative's name.
Contradictions are 422 naming the field (`fields.<name>`). Types whose holders are foreigners
are not in the population registry and are not checked against it.

Some licenses exist once per holder (居民身份证, 机动车驾驶证, 普通护照): issuing a new one
supersedes (revokes) the holder's older valid one, so the wallet never holds two.
"""
from __future__ import annotations

from sqlalchemy import select

from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..identity import registries
from ..identity.identifiers import IdentifierError, birth_date_of, gender_of
from ..timeutil import beijing_today, utcnow
from .models import License, LicenseType

FOREIGNER_TYPES = frozenset({"11100000000013289F001", "11100000000013107B004"})  # 外国人工作许可证, 永久居留身份证
ONE_VALID_PER_HOLDER = frozenset({"11100000000013100M001", "11100000000013100M009", "11100000000013107B001"})
SUPERSEDED_REASON = "已换领新证，原证作废"


def implied_person_values(ltype: LicenseType, id_number: str) -> dict:
    """Values an issuer may leave out because the ID number states them: gender, birth date."""
    if ltype.code in FOREIGNER_TYPES:
        return {}
    try:
        return {"gender": gender_of(id_number), "birth_date": birth_date_of(id_number).isoformat()}
    except IdentifierError:
        return {}


def check_against_registries(ltype: LicenseType, values: dict, *, holder_ref: str) -> None:
    """422 naming each identity field that contradicts the registries or the ID number."""
    errors = (_person_errors(ltype, values, holder_ref) if ltype.holder_type == "person"
              else _entity_errors(values, holder_ref))
    if errors:
        raise ValidationFailed("证照信息与登记信息不一致：" + "；".join(f"{k}: {v[0]}" for k, v in errors.items()),
                               errors=errors)


def _person_errors(ltype: LicenseType, values: dict, id_number: str) -> dict[str, list[str]]:
    if ltype.code in FOREIGNER_TYPES:
        return {}
    errors = {}
    implied = implied_person_values(ltype, id_number)
    for name, label in (("gender", "性别"), ("birth_date", "出生日期")):
        if name in values and name in implied and values[name] != implied[name]:
            errors[f"fields.{name}"] = [f"{label}与持证人身份证号码不一致"]
    name = values.get("name")
    if name is not None and not registries.population().matches(id_number=id_number, name=name):
        errors["fields.name"] = ["姓名与人口库登记信息不一致"]
    return errors


def _entity_errors(values: dict, credit_code: str) -> dict[str, list[str]]:
    record = registries.legal_entities().lookup(credit_code)
    if record is None:
        return {"holder_credit_code": ["法人库中没有该统一社会信用代码"]}
    errors = {}
    if "entity_name" in values and not registries.same_name(values["entity_name"], record.name):
        errors["fields.entity_name"] = ["名称与法人库登记信息不一致"]
    representative = values.get("legal_representative")
    if representative is not None and not registries.population().matches(
            id_number=record.representative_id_number, name=representative):
        errors["fields.legal_representative"] = ["法定代表人与法人库登记信息不一致"]
    return errors


def superseded_by(license: License) -> list[License]:
    """The holder's valid licenses of a once-per-holder type that `license` replaces (their
    status is set to revoked here; the caller moves the status lists and commits). 409 when the
    holder already has a newer one."""
    if license.license_type_code not in ONE_VALID_PER_HOLDER:
        return []
    older = list(db.session.scalars(select(License).where(
        License.holder_index == license.holder_index, License.holder_type == license.holder_type,
        License.license_type_code == license.license_type_code, License.status == "valid",
        License.valid_until >= beijing_today()).with_for_update(of=License)))
    if any(other.valid_from > license.valid_from for other in older):
        raise Conflict(f"持证人已有更新的有效{license.license_type.name}，不能签发较早的证件")
    for other in older:
        other.status, other.status_reason, other.status_changed_at = "revoked", SUPERSEDED_REASON, utcnow()
    return older
