"""Catalogue logic: halls, search, service detail, coverage, topics, bundles, and hall admins' writes.

Reads go through the worker's search index (`index.py`) and need no database query, except a
service's detail, a hall's coverage and bundles. Writes (create, change, withdraw) run in one
transaction each: take the catalogue version (serialising catalogue writers), check 四级六同
against the other halls' published services of the same `base_code` (or the base catalogue),
write the row, append a `ServiceRevision`, audit, commit, then tell the index.

Public helpers for other domains: `get_service`, `find_service_for_hall`, `get_hall`, `hall_chain`,
`manages_hall`, `get_bundle`, `bundle_or_404`, `list_bundles`, `high_frequency_items`.
"""
from __future__ import annotations

import copy
import logging
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm.exc import StaleDataError

from ..errors import ApiError, Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import isoformat_z, utcnow
from . import seed_data
from .index import FACETS, catalogue_index, channel_token, fresh_index, list_item
from .models import STATE_ID, Bundle, CatalogueState, Hall, Service, ServiceRevision, Topic

logger = logging.getLogger("app.catalogue")

SIX_SAME = ("name", "item_type", "legal_basis", "materials", "statutory_limit_days")
SIX_SAME_LABELS = {"name": "事项名称", "item_type": "事项类型", "legal_basis": "设定依据", "materials": "申请材料",
                   "statutory_limit_days": "法定办结时限"}
# taken from the base item when a hall creates its service without them
BASE_FIELDS = SIX_SAME + ("aliases", "promised_limit_days", "fee", "online_depth", "audience", "topics",
                          "instant_approval", "produces_license", "form", "high_frequency_rank", "grassroots",
                          "department_code")
DEFAULTS: dict[str, Any] = {"aliases": [], "legal_basis": [], "materials": [], "fee": None, "online_depth": "到现场办理",
                            "topics": [], "instant_approval": False, "produces_license": None, "form": [],
                            "high_frequency_rank": None, "grassroots": False, "department_code": None}
REQUIRED_WITHOUT_BASE = ("name", "item_type", "department", "audience", "statutory_limit_days")
CHANNELS = ("app", "wechat", "alipay")
CITY_SERVICE_TARGET = seed_data.CITY_SERVICE_TARGET
AUDIENCE_LABELS = {"person": "个人", "legal": "法人"}


class PreconditionFailed(ApiError):
    """If-Match named a version of the service that is no longer current."""

    status = 412
    slug = "precondition-failed"

    def __init__(self, detail: str | None = None, **kw):
        kw.setdefault("title", "资源已被修改")
        super().__init__(detail or "事项已被他人修改，请重新获取后再提交", **kw)


# ---------------------------------------------------------------------------------------------- halls


def get_hall(code: str) -> Hall:
    """The hall with this code, or 404."""
    hall = db.session.get(Hall, code)
    if hall is None:
        raise NotFound(f"大厅 {code} 不存在")
    return hall


def hall_chain(code: str) -> list[Hall]:
    """The hall and its ancestors, nearest first (county, city, province); 404 when unknown."""
    chain = [get_hall(code)]
    while chain[-1].parent_code and len(chain) < 6:
        chain.append(get_hall(chain[-1].parent_code))
    return chain


def manages_hall(principal: Principal | None, hall: Hall, roles: Iterable[str] = ("hall_admin",)) -> bool:
    """Whether the caller holds one of `roles` at `hall`, or at the city hall above a county hall."""
    if principal is None:
        return False
    roles = set(roles)
    halls = principal.halls
    if halls.get(hall.code) in roles:
        return True
    if hall.level == "county" and hall.parent_code and halls.get(hall.parent_code) in roles:
        return True
    return False


def hall_tree(*, channel: str | None = None) -> list[dict]:
    """山东省 with its cities with their counties, each with its published service count."""
    index = fresh_index()

    def build():
        counts = index.hall_counts(channel)
        nodes = {code: {"code": h.code, "name": h.name, "full_name": h.full_name, "level": h.level,
                        "parent_code": h.parent_code, "service_count": counts.get(code, 0), "children": []}
                 for code, h in sorted(index.halls.items()) if h.level in ("province", "city", "county")}
        roots = []
        for node in nodes.values():
            parent = nodes.get(node["parent_code"]) if node["parent_code"] else None
            (parent["children"] if parent else roots).append(node)
        return roots

    return index.cached_response(("hall_tree", channel), build)


def hall_detail(code: str, *, channel: str | None = None) -> dict:
    """One hall with its service count (published, exposed to `channel` when given)."""
    index = fresh_index()
    hall = index.halls.get(code)
    if hall is None:
        raise NotFound(f"大厅 {code} 不存在")
    parent = index.halls.get(hall.parent_code) if hall.parent_code else None
    counts = index.hall_counts(channel)
    children = [{"code": h.code, "name": h.name, "level": h.level}
                for h in sorted(index.halls.values(), key=lambda h: h.code)
                if h.parent_code == code and h.level in ("city", "county")]
    return {"code": hall.code, "name": hall.name, "full_name": hall.full_name, "level": hall.level,
            "parent_code": hall.parent_code, "parent_name": parent.full_name if parent else None,
            "address": hall.address, "service_count": counts.get(code, 0), "children": children}


@lru_cache(maxsize=1)
def high_frequency_items() -> tuple[tuple[int, str, str], ...]:
    """The 50 high-frequency base items as (rank, base_code, name), by rank."""
    items = [(b["high_frequency_rank"], b["base_code"], b["name"]) for b in seed_data.load_base_items()
             if b["high_frequency_rank"] is not None]
    return tuple(sorted(items))


def coverage(hall_code: str) -> dict:
    """How many services a hall publishes and which high-frequency ones it lacks."""
    get_hall(hall_code)
    published = (Service.hall_code == hall_code, Service.status == "published")
    base_codes = set(db.session.scalars(select(Service.base_code).where(*published)))
    count = db.session.scalar(select(func.count()).select_from(Service).where(*published))
    wanted = high_frequency_items()
    missing = [name for _, base_code, name in wanted if base_code not in base_codes]
    present = len(wanted) - len(missing)
    return {"hall_code": hall_code, "service_count": count, "high_frequency_present": present,
            "high_frequency_missing": missing, "target_service_count": CITY_SERVICE_TARGET,
            "meets_target": count >= CITY_SERVICE_TARGET and not missing}


# ------------------------------------------------------------------------------------- search, detail


def search_services(*, q: str | None = None, hall: str | None = None, audience: str | None = None,
                    topic: str | None = None, item_type: str | None = None, channel: str | None = None,
                    high_frequency: bool | None = None, page: int = 1, page_size: int = 20,
                    visible_channel: str | None = None) -> dict:
    """A page of published services, best match first with `q`, with facet counts.

    `visible_channel` is the channel the request comes through (a mini-program or a signed
    third-party client): only services exposed to it exist for that caller; `channel` filters further.
    """
    index = fresh_index()
    filters: dict[str, Any] = {}
    required = {c for c in (visible_channel, channel) if c}
    if required:
        filters["channel"] = channel_token(required)
    for field, value in (("hall", hall), ("audience", audience), ("topic", topic), ("item_type", item_type)):
        if value:
            filters[field] = value
    if high_frequency is not None:
        filters["high_frequency"] = bool(high_frequency)
    q = (q or "").strip() or None
    result = index.search(q=q, filters=filters, page=page, page_size=page_size)
    docs = (index.doc(code) for code in result.ids)
    items = [list_item(doc) for doc in docs if doc is not None]
    return {"items": items, "total": result.total, "page": page, "page_size": page_size,
            "facets": _labelled_facets(result.facets, index)}


def _labelled_facets(facets: dict, index) -> dict:
    topic_names = index.cached_response(("topic_names",), _topic_names)
    halls = index.halls
    labels = {
        "hall": lambda v: halls[v].full_name if v in halls else v,
        "topic": lambda v: topic_names.get(v, v),
        "audience": lambda v: AUDIENCE_LABELS.get(v, v),
        "item_type": lambda v: v,
    }
    return {field: [{"value": entry["value"], "label": labels[field](entry["value"]), "count": entry["count"]}
                    for entry in facets.get(field, ())] for field in FACETS}


def _topic_names() -> dict[str, str]:
    return {code: name for code, name in db.session.execute(select(Topic.code, Topic.name))}


def get_service(code: str, *, channel: str | None = None, include_withdrawn: bool = False) -> Service:
    """A published service (or any, with `include_withdrawn`), exposed to `channel` when given; else 404."""
    service = db.session.get(Service, code)
    if (service is None or (service.status != "published" and not include_withdrawn)
            or (channel and channel not in (service.channels or ()))):
        raise NotFound(f"事项 {code} 不存在或未在当前渠道开放")
    return service


def find_service_for_hall(base_code: str, hall_code: str) -> Service | None:
    """The published service of `base_code` that serves `hall_code`: the hall's own, else the nearest
    ancestor's (a county's applicants use the city's service for a city-level item)."""
    chain = [hall.code for hall in hall_chain(hall_code)]
    rows = db.session.scalars(select(Service).where(
        Service.base_code == base_code, Service.hall_code.in_(chain), Service.status == "published")).all()
    by_hall = {row.hall_code: row for row in rows}
    return next((by_hall[code] for code in chain if code in by_hall), None)


def list_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.sort_order, Topic.code)))


# ------------------------------------------------------------------------------------------- bundles


def bundle_or_404(code: str) -> Bundle:
    bundle = db.session.get(Bundle, code)
    if bundle is None:
        raise NotFound(f"一件事 {code} 不存在")
    return bundle


def list_bundles() -> list[dict]:
    bundles = list(db.session.scalars(select(Bundle).order_by(Bundle.sort_order, Bundle.code)))
    base = _base_items({m["base_code"] for b in bundles for m in b.members})
    return [_bundle_dict(b, base) for b in bundles]


def get_bundle(code: str, *, hall_code: str | None = None) -> dict:
    """The bundle with members resolved to base items; with `hall_code`, also to the service that
    handles each member for that hall (its own or the nearest ancestor's, None when nobody offers it)."""
    bundle = bundle_or_404(code)
    base_codes = {m["base_code"] for m in bundle.members}
    result = _bundle_dict(bundle, _base_items(base_codes))
    if hall_code:
        chain = [hall.code for hall in hall_chain(hall_code)]
        rows = db.session.execute(select(Service.code, Service.hall_code, Service.base_code).where(
            Service.base_code.in_(base_codes), Service.hall_code.in_(chain), Service.status == "published")).all()
        found = {(r.base_code, r.hall_code): r.code for r in rows}
        for member in result["members"]:
            hit = next(((found[(member["base_code"], h)], h) for h in chain if (member["base_code"], h) in found),
                       (None, None))
            member["service_code"], member["hall_code"] = hit
    return result


def _base_items(base_codes: set[str]) -> dict[str, dict]:
    """One published service per base code, as the base item's shared fields."""
    if not base_codes:
        return {}
    rows = db.session.execute(select(Service.base_code, Service.name, Service.item_type, Service.audience,
                                     Service.high_frequency_rank).where(
        Service.base_code.in_(base_codes), Service.status == "published").distinct()).all()
    return {r.base_code: {"name": r.name, "item_type": r.item_type, "audience": r.audience,
                          "high_frequency": r.high_frequency_rank is not None} for r in rows}


def _bundle_dict(bundle: Bundle, base: dict[str, dict]) -> dict:
    members = []
    for member in bundle.members:
        item = base.get(member["base_code"])
        members.append({"base_code": member["base_code"], "name": item["name"] if item else member["name"],
                        "level": member.get("level"), "item_type": item and item["item_type"],
                        "audience": item and item["audience"], "high_frequency": bool(item and item["high_frequency"]),
                        "available": item is not None})
    return {"code": bundle.code, "name": bundle.name, "audience": bundle.audience,
            "description": bundle.description, "members": members}


# -------------------------------------------------------------------------------------------- writes


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
    """Publish a service at a hall; fields left out come from the base item (四级六同 enforced)."""
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
