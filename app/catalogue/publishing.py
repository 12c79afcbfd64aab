"""Hall admins publish, change and withdraw their hall's services (四级六同 enforced), with revisions."""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from ..errors import ApiError, Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import isoformat_z, utcnow
from . import seed_data
from .halls import get_hall, manages_hall
from .index import catalogue_index
from .models import STATE_ID, CatalogueState, Hall, Service, ServiceRevision, Topic

SIX_SAME = ("name", "item_type", "legal_basis", "materials", "statutory_limit_days")
SIX_SAME_LABELS = {"name": "事项名称", "item_type": "事项类型", "legal_basis": "设定依据", "materials": "申请材料",
                   "statutory_limit_days": "法定办结时限"}
# taken from the base item when a hall creates its service without them
BASE_FIELDS = SIX_SAME + ("aliases", "promised_limit_days", "fee", "online_depth", "audience", "topics",
                          "instant_approval", "produces_license", "form", "high_frequency_rank", "grassroots",
                          "cross_region",
                          "department_code", "parent_item", "source_ref")
DEFAULTS: dict[str, Any] = {"aliases": [], "legal_basis": [], "materials": [], "fee": None, "online_depth": "到现场办理",
                            "topics": [], "instant_approval": False, "produces_license": None, "form": [],
                            "high_frequency_rank": None, "grassroots": False, "cross_region": False,
                            "department_code": None,
                            "parent_item": None, "source_ref": None}
REQUIRED_WITHOUT_BASE = ("name", "item_type", "department", "audience", "statutory_limit_days")
CHANNELS = ("app", "wechat", "alipay")


class PreconditionFailed(ApiError):
    """If-Match named a version of the service that is no longer current."""

    status = 412
    slug = "precondition-failed"

    def __init__(self, detail: str | None = None, **kw):
        kw.setdefault("title", "资源已被修改")
        super().__init__(detail or "事项已被他人修改，请重新获取后再提交", **kw)


def next_catalogue_version(*, bulk: bool = False) -> int:
    """Increment the catalogue version (and the epoch for a bulk load) in the current transaction.

    The row stays locked until the transaction ends, so catalogue writers are serialised and
    versions are committed in order; returns the new version.
    """
    values: dict[str, Any] = {"version": CatalogueState.version + 1, "updated_at": utcnow()}
    if bulk:
        values["epoch"] = CatalogueState.epoch + 1
    version = db.session.execute(
        update(CatalogueState).where(CatalogueState.id == STATE_ID).values(**values)
        .returning(CatalogueState.version).execution_options(synchronize_session=False)).scalar_one_or_none()
    if version is None:
        db.session.add(CatalogueState(id=STATE_ID, version=1, epoch=1, updated_at=utcnow()))
        db.session.flush()
        version = 1
    return version


def _require_admin(principal: Principal, hall: Hall) -> None:
    if not manages_hall(principal, hall):
        raise Forbidden("只有本大厅（或其上级市级大厅）的管理员可以维护本大厅的事项清单")


def _hall_service_or_404(hall: Hall, service_code: str) -> Service:
    service = db.session.execute(select(Service).where(Service.code == service_code)
                                 .execution_options(populate_existing=True)).scalar_one_or_none()
    if service is None or service.hall_code != hall.code:
        raise NotFound(f"大厅 {hall.code} 没有事项 {service_code}")
    return service


def _reference(base_code: str, *, exclude_code: str | None = None) -> tuple[str, dict] | None:
    """The standard a hall's service of `base_code` must follow: another hall's published service,
    else the base catalogue's entry; (source, fields) or None for a new base code."""
    query = select(Service).where(Service.base_code == base_code, Service.status == "published")
    if exclude_code:
        query = query.where(Service.code != exclude_code)
    peer = db.session.scalars(query.order_by(Service.code).limit(1)).first()
    if peer is not None:
        return f"事项 {peer.code}", {field: getattr(peer, field) for field in BASE_FIELDS}
    base = _base_catalogue().get(base_code)
    if base is not None:
        return "基本目录", {field: base.get(field, DEFAULTS.get(field)) for field in BASE_FIELDS}
    return None


@lru_cache(maxsize=1)
def _base_catalogue() -> dict[str, dict]:
    return {item["base_code"]: item for item in seed_data.load_base_items()}


def _comparable(field: str, value):
    if field == "name":
        return (value or "").strip()
    if field == "legal_basis":
        return sorted((str(v).strip() for v in value or ()))
    if field == "materials":
        return sorted(((m.get("name") or "").strip(), bool(m.get("required", True)), m.get("license_type_code") or None)
                      for m in value or ())
    return value


def _six_same_errors(values: dict, reference: tuple[str, dict] | None, fields: Iterable[str]) -> dict:
    if reference is None:
        return {}
    source, standard = reference
    errors = {}
    for field in fields:
        if field in SIX_SAME and _comparable(field, values[field]) != _comparable(field, standard[field]):
            errors[field] = [f"{SIX_SAME_LABELS[field]}须与{source}一致（四级六同）"]
    return errors


def _merge_materials(materials: list[dict], reference: tuple[str, dict] | None) -> list[dict]:
    """Materials as stored: commitment and core flags taken from the standard when not given."""
    standard = {m["name"]: m for m in (reference[1]["materials"] if reference else ())}
    merged = []
    for material in materials:
        known = standard.get(material["name"], {})
        entry = {"name": material["name"], "required": material.get("required", True),
                 "license_type_code": material.get("license_type_code"),
                 "commitment_allowed": material.get("commitment_allowed", known.get("commitment_allowed", False))}
        if "core" in known:
            entry["core"] = known["core"]
        merged.append(entry)
    return merged


def _check_values(values: dict, errors: dict) -> None:
    statutory, promised = values.get("statutory_limit_days"), values.get("promised_limit_days")
    if statutory is not None and promised is not None and promised > statutory:
        errors.setdefault("promised_limit_days", []).append("承诺办结时限不能超过法定办结时限")
    topics = values.get("topics") or []
    if topics:
        known = set(db.session.scalars(select(Topic.code).where(Topic.code.in_(topics))))
        unknown = [t for t in topics if t not in known]
        if unknown:
            errors.setdefault("topics", []).append("未知的主题：" + "、".join(unknown))
    if errors:
        raise ValidationFailed("；".join(f"{k}: {'，'.join(v)}" for k, v in errors.items()), errors=errors)


def _department_for(hall: Hall, department_code: str | None) -> str | None:
    if not department_code:
        return None
    try:
        return seed_data.department_name(department_code, {"code": hall.code})
    except KeyError:  # a hall or department the base catalogue does not know
        return None


def create_service(*, principal: Principal, hall_code: str, data: dict) -> Service:
    """Publish a service at a hall; fields left out come from the base item (四级六同 enforced).

    Like every write here, one transaction: take the catalogue version (serialising catalogue
    writers), check 四级六同 against the other halls' published services of the same `base_code`
    (or the base catalogue), write the row, append a `ServiceRevision`, audit, commit, then tell
    the index.
    """
    hall = get_hall(hall_code)
    _require_admin(principal, hall)
    seq = next_catalogue_version()
    base_code = data["base_code"]
    reference = _reference(base_code)
    standard = reference[1] if reference else {}
    values: dict[str, Any] = {}
    for field in BASE_FIELDS:
        values[field] = data[field] if field in data else copy.deepcopy(standard.get(field, DEFAULTS.get(field)))
    values["department"] = data.get("department") or _department_for(hall, values.get("department_code"))
    values["channels"] = _ordered_channels(data.get("channels") or CHANNELS)
    values["address"] = data["address"] if "address" in data else hall.address
    if values.get("promised_limit_days") is None:
        values["promised_limit_days"] = values.get("statutory_limit_days")
    errors: dict[str, list[str]] = {}
    if reference is None:
        for field in REQUIRED_WITHOUT_BASE:
            if values.get(field) in (None, ""):
                errors[field] = [f"基本编码 {base_code} 尚无标准事项，必须提供此字段"]
    elif not values["department"]:
        errors["department"] = ["无法从基本目录推定本大厅的实施部门，请提供"]
    errors.update(_six_same_errors(values, reference, [f for f in SIX_SAME if f in data]))
    if errors.keys() & set(SIX_SAME):
        raise ValidationFailed("与其他大厅同一基本编码的事项不一致，违反四级六同：" + "、".join(
            SIX_SAME_LABELS[f] for f in SIX_SAME if f in errors), errors=errors)
    _check_values(values, errors)
    values["materials"] = _merge_materials(values["materials"], reference)
    duplicate = db.session.scalars(select(Service.code).where(
        Service.hall_code == hall.code, Service.base_code == base_code, Service.status == "published")).first()
    if duplicate:
        raise Conflict(f"本大厅已发布该基本编码的事项 {duplicate}", extra={"existing_code": duplicate})
    code = data.get("code") or _free_code(hall.code, base_code)
    if data.get("code") and db.session.get(Service, code) is not None:
        raise Conflict(f"事项编码 {code} 已被使用")
    now = utcnow()
    service = Service(code=code, base_code=base_code, hall_code=hall.code, level=hall.level, popularity=0,
                      status="published", origin="hall", change_seq=seq, created_at=now, updated_at=now, **values)
    db.session.add(service)
    db.session.flush()
    _record(service, action="create", principal=principal, fields=sorted(data), seq=seq)
    db.session.commit()
    catalogue_index().changed()
    return service


def _ordered_channels(channels: Iterable[str]) -> list[str]:
    wanted = set(channels)
    return [c for c in CHANNELS if c in wanted]


def _free_code(hall_code: str, base_code: str) -> str:
    code = f"{hall_code}-{base_code}"
    taken = set(db.session.scalars(select(Service.code).where(Service.code.startswith(code))))
    suffix = 2
    candidate = code
    while candidate in taken:
        candidate = f"{code}-{suffix}"
        suffix += 1
    return candidate


def _matches(if_match: str | None, version: int) -> bool:
    if not if_match:
        return True
    for tag in if_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == str(version):
            return True
    return False


def update_service(*, principal: Principal, hall_code: str, service_code: str, data: dict,
                   if_match: str | None = None) -> Service:
    """Change a hall's service; 四级六同 fields must stay identical to the other halls'."""
    hall = get_hall(hall_code)
    _require_admin(principal, hall)
    seq = next_catalogue_version()
    service = _hall_service_or_404(hall, service_code)
    if not _matches(if_match, service.version):
        raise PreconditionFailed(f"事项已更新到第 {service.version} 版，请重新获取后再修改")
    reference = _reference(service.base_code, exclude_code=service.code)
    data = dict(data)
    if "channels" in data:
        data["channels"] = _ordered_channels(data["channels"])
    if "materials" in data:
        data["materials"] = _merge_materials(data["materials"], reference or ("", {"materials": service.materials}))
    changes = {field: value for field, value in data.items() if getattr(service, field) != value}
    if not changes:
        db.session.rollback()
        return service
    publishing = changes.get("status") == "published"
    withdrawing = changes.get("status") == "withdrawn"
    values = {field: getattr(service, field) for field in BASE_FIELDS + ("department", "channels", "address")}
    values.update({k: v for k, v in changes.items() if k != "status"})
    errors = _six_same_errors(values, reference, SIX_SAME if publishing else [f for f in SIX_SAME if f in changes])
    if errors:
        raise ValidationFailed("与其他大厅同一基本编码的事项不一致，违反四级六同：" + "、".join(
            SIX_SAME_LABELS[f] for f in SIX_SAME if f in errors), errors=errors)
    _check_values(values, errors)
    if publishing:
        duplicate = db.session.scalars(select(Service.code).where(
            Service.hall_code == hall.code, Service.base_code == service.base_code,
            Service.status == "published", Service.code != service.code)).first()
        if duplicate:
            raise Conflict(f"本大厅已发布该基本编码的事项 {duplicate}", extra={"existing_code": duplicate})
    for field, value in changes.items():
        setattr(service, field, value)
    service.change_seq = seq
    service.updated_at = utcnow()
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise Conflict("事项已被他人同时修改，请重新获取后再提交") from None
    action = "publish" if publishing else "withdraw" if withdrawing else "update"
    _record(service, action=action, principal=principal, fields=sorted(changes), seq=seq)
    db.session.commit()
    catalogue_index().changed()
    return service


def withdraw_service(*, principal: Principal, hall_code: str, service_code: str,
                     if_match: str | None = None) -> None:
    """Withdraw (unpublish) a hall's service; the row and its history stay."""
    update_service(principal=principal, hall_code=hall_code, service_code=service_code,
                   data={"status": "withdrawn"}, if_match=if_match)


def list_revisions(*, principal: Principal, hall_code: str, service_code: str) -> list[ServiceRevision]:
    """A service's change history, oldest first (hall admins and staff of the hall or its city)."""
    hall = get_hall(hall_code)
    if not manages_hall(principal, hall, roles=("hall_admin", "hall_staff")):
        raise Forbidden("只有本大厅（或其上级市级大厅）的工作人员可以查看事项的修改记录")
    _hall_service_or_404(hall, service_code)
    return list(db.session.scalars(select(ServiceRevision).where(ServiceRevision.service_code == service_code)
                                   .order_by(ServiceRevision.version)))


def snapshot(service: Service) -> dict:
    """The stored state of a service, JSON-ready (kept in its revisions)."""
    data = {column.key: getattr(service, column.key) for column in Service.__table__.columns}
    for key in ("created_at", "updated_at"):
        data[key] = isoformat_z(data[key])
    return data


def _record(service: Service, *, action: str, principal: Principal, fields: list[str], seq: int) -> None:
    db.session.add(ServiceRevision(service_code=service.code, hall_code=service.hall_code, version=service.version,
                                   action=action, actor=principal.actor_id, changed_fields=fields,
                                   snapshot=snapshot(service), catalogue_version=seq, created_at=utcnow()))
    audit.record(f"catalogue.service_{action}", actor=principal.actor_id,
                 details={"hall_code": service.hall_code, "service_code": service.code,
                          "base_code": service.base_code, "version": service.version, "fields": fields})
