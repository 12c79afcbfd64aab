"""Catalogue services: search with facets (from the worker's index, no database query), detail, topics."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..errors import NotFound, ValidationFailed
from ..extensions import db
from .halls import hall_chain
from .index import FACETS, channel_token, fresh_index, list_item
from .models import Service, Topic

AUDIENCE_LABELS = {"person": "个人", "legal": "法人"}
PROVINCE_HALL = "370000"


def search_services(*, q: str | None = None, hall: str | None = None, audience: str | None = None,
                    topic: str | None = None, item_type: str | None = None, channel: str | None = None,
                    high_frequency: bool | None = None, instant_approval: bool | None = None,
                    city: str | None = None, page: int = 1, page_size: int = 20,
                    visible_channel: str | None = None) -> dict:
    """A page of published services, best match first with `q`, with facet counts.

    `visible_channel` is the channel the request comes through (a mini-program or a signed
    third-party client): only services exposed to it exist for that caller; `channel` filters further.
    Without `hall` every item comes once (ranked by item, not by hall): the service of `city` (the
    city hall, else one of its counties) when given, else the provincial hall's, else the most popular
    one, with `hall_count`, the number of halls offering it.
    """
    index = fresh_index()
    prefer = _preferred_halls(index, city) if not hall else ()
    filters: dict[str, Any] = {}
    required = {c for c in (visible_channel, channel) if c}
    if required:
        filters["channel"] = channel_token(required)
    for field, value in (("hall", hall), ("audience", audience), ("topic", topic), ("item_type", item_type)):
        if value:
            filters[field] = value
    if high_frequency is not None:
        filters["high_frequency"] = bool(high_frequency)
    if instant_approval is not None:
        filters["instant_approval"] = bool(instant_approval)
    q = (q or "").strip() or None
    result = index.search(q=q, filters=filters, page=page, page_size=page_size, collapse=not hall, prefer=prefer)
    counts = result.hall_counts or {}
    items = []
    for code in result.ids:
        doc = index.doc(code)
        if doc is not None:
            items.append(list_item(doc, hall_count=counts.get(code)))
    return {"items": items, "total": result.total, "page": page, "page_size": page_size,
            "facets": _labelled_facets(result.facets, index)}


def _preferred_halls(index, city: str | None) -> tuple[tuple[str, ...], ...]:
    """Hall tiers a collapsed search takes an item's service from: the city, its counties, the province."""
    if not city:
        return ((PROVINCE_HALL,),)
    found = index.halls.get(city)
    if found is None or found.level != "city":
        raise ValidationFailed.field("city", "city 应为山东省16个市之一的行政区划代码（如 370100）")
    counties = tuple(code for code, h in index.halls.items() if h.parent_code == city and h.level == "county")
    return (city,), counties, (PROVINCE_HALL,)


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
