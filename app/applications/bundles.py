"""一件事 bundles: which hall each member runs at, and the union form of the members.

Hall choice: a `hall_code` in the request (a city or a county hall), or by default the city
of the applicant: the first four digits of the ID number (person) or of the region part of
the credit code (company) + "00"; 3712 (莱芜, merged into 济南 in 2019) maps to 370100.
Members run at the level the bundle names: province members at 370000, city members at the
city hall, county members at the chosen county, or, when a city was chosen, at the county
configured in BUNDLE_DEFAULT_COUNTIES ({city: county}) or else the first county of the city
(by code) that offers every county-level member (else, per member, the first county that
offers it, else the city hall, which offers every county-level item).

The union form: fields by name (two fields of different names but one label are told apart by
the members that ask for them), materials by name, except the materials an earlier member
produces (the 出生医学证明 the first member of 新生儿出生一件事 issues is not asked for again).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from flask import current_app
from sqlalchemy import select

from ..catalogue.halls import city_of_division
from ..catalogue.models import Bundle, Hall
from ..errors import NotFound, ValidationFailed
from ..extensions import db
from .forms import FieldSpec, MaterialSpec, ServiceSpec, service_spec_at

PROVINCE_HALL = "370000"
BUNDLE_CODE = re.compile(r"[0-9A-Za-z_-]{1,40}")
HALL_CODE = re.compile(r"\d{6,12}")


@dataclass(frozen=True)
class BundleSpec:
    code: str
    name: str
    audience: str
    members: tuple  # ({"base_code","name","level"}, ...)


def bundle_spec(code: str) -> BundleSpec:
    row = db.session.get(Bundle, code) if isinstance(code, str) and BUNDLE_CODE.fullmatch(code) else None
    if row is None:
        raise NotFound("一件事不存在")
    return BundleSpec(code=row.code, name=row.name, audience=row.audience,
                      members=tuple(dict(member) for member in row.members or ()))


def _hall(code: str | None):
    return db.session.get(Hall, code) if isinstance(code, str) and HALL_CODE.fullmatch(code) else None


def hall_parent(code: str) -> str | None:
    hall = _hall(code)
    return hall.parent_code if hall is not None else None


def hall_exists(code: str) -> bool:
    return _hall(code) is not None


def _counties(city_code: str) -> list[str]:
    return list(db.session.scalars(select(Hall.code).where(Hall.parent_code == city_code,
                                                           Hall.level == "county").order_by(Hall.code)))


def resolve_member_services(bundle: BundleSpec, *, hall_code: str | None, region: str | None) -> tuple[str, list]:
    """(the parent's hall, [ServiceSpec per member]) or 422 naming `hall_code`."""
    if hall_code:
        hall = _hall(hall_code)
        if hall is None:
            raise ValidationFailed.field("hall_code", "办理大厅不存在")
        if hall.level == "county":
            city, county = hall.parent_code, hall.code
        elif hall.level == "city":
            city, county = hall.code, None
        else:
            raise ValidationFailed.field("hall_code", "请选择市级或县（市、区）级政务服务大厅")
    else:
        city = city_of_division(region)
        if city is None:
            raise ValidationFailed.field("hall_code", "无法根据申请人证件确定所在城市，请指定办理大厅（hall_code）")
        county = None
    county_members = [m["base_code"] for m in bundle.members if m.get("level") == "county"]
    if county is None and county_members:
        configured = (current_app.config.get("BUNDLE_DEFAULT_COUNTIES") or {}).get(city)
        candidates = ([configured] if configured else []) + _counties(city)
        county = next((code for code in candidates
                       if all(service_spec_at(base, code) is not None for base in county_members)), None)
    specs, absent = [], []
    for member in bundle.members:
        level = member.get("level") or "county"
        if level == "province":
            spec = service_spec_at(member["base_code"], PROVINCE_HALL)
        elif level == "city":
            spec = service_spec_at(member["base_code"], city)
        elif county is not None:
            spec = service_spec_at(member["base_code"], county)
            if spec is None and not hall_code:
                spec = service_spec_at(member["base_code"], city)
        else:
            spec = next((s for s in (service_spec_at(member["base_code"], code) for code in _counties(city))
                         if s is not None), None) or service_spec_at(member["base_code"], city)
        if spec is None:
            absent.append(member.get("name") or member["base_code"])
        specs.append(spec)
    if absent:
        raise ValidationFailed.field("hall_code", "所选大厅未提供以下事项：" + "、".join(absent))
    return (hall_code or city), specs


def union_fields(specs: list[ServiceSpec]) -> list[FieldSpec]:
    """Member form fields deduplicated by name (required when any member requires it); a label
    that two different fields share gets the names of the members asking for each."""
    merged: dict[str, FieldSpec] = {}
    askers: dict[str, list[str]] = {}
    for spec in specs:
        for item in spec.fields:
            askers.setdefault(item.name, []).append(spec.name)
            known = merged.get(item.name)
            if known is None:
                merged[item.name] = item
            elif item.required and not known.required:
                merged[item.name] = replace(known, required=True)
    by_label: dict[str, list[str]] = {}
    for item in merged.values():
        by_label.setdefault(item.label, []).append(item.name)
    for names in by_label.values():
        if len(names) > 1:
            for name in names:
                merged[name] = replace(merged[name], label=f"{merged[name].label}（{'、'.join(askers[name])}）")
    return list(merged.values())


def produced_before(specs: list[ServiceSpec], index: int) -> dict[str, ServiceSpec]:
    """Materials of member `index` that an earlier member produces: name -> that member."""
    producers = {spec.produces_license: spec for spec in specs[:index] if spec.produces_license}
    return {m.name: producers[m.license_type_code] for m in specs[index].materials
            if m.license_type_code in producers}


def union_materials(specs: list[ServiceSpec]) -> list[MaterialSpec]:
    """Member materials deduplicated by name, without those an earlier member produces: required
    when any member requires it, core when any member holds it core, commitment only when every
    member allows it."""
    merged: dict[str, MaterialSpec] = {}
    for index, spec in enumerate(specs):
        produced = produced_before(specs, index)
        for item in spec.materials:
            if item.name in produced:
                continue
            known = merged.get(item.name)
            if known is None:
                merged[item.name] = item
            else:
                merged[item.name] = MaterialSpec(
                    name=item.name, required=known.required or item.required,
                    license_type_code=known.license_type_code or item.license_type_code,
                    commitment_allowed=known.commitment_allowed and item.commitment_allowed,
                    core=known.core or item.core)
    return list(merged.values())
