"""Loading the catalogue's reference data: `seed_catalogue` (for `flask seed`) and `generate_catalogue`
(for `flask catalogue generate`).

Both are idempotent and insert in bulk (Core executemany, a few thousand rows per statement
batch): rows that already exist are left alone, only the missing ones are inserted. A bulk load
increments the catalogue epoch so every worker rebuilds its search index.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Callable, Iterable

from flask import current_app
from sqlalchemy import JSON, Text, bindparam, cast, column, delete, insert, select, table

from ..extensions import db
from ..timeutil import utcnow
from . import seed_data
from .index import catalogue_index
from .models import HALL_LEVELS, Bundle, CatalogueState, Hall, Service, ServiceSituation, Topic
from .publishing import next_catalogue_version

BATCH = 5000
_LEVEL_ORDER = {"province": 0, "city": 1, "county": 2, "township": 3, "village": 4}


def service_row(item: dict, *, origin: str, change_seq: int, now) -> dict:
    """A `services` row from one seed_data service dict."""
    return {
        "code": item["code"], "base_code": item["base_code"], "hall_code": item["hall_code"],
        "level": item["hall_level"], "name": item["name"], "aliases": item["aliases"],
        "item_type": item["item_type"], "department": item["department"],
        "department_code": item.get("department_code"), "legal_basis": item["legal_basis"],
        "materials": item["materials"], "statutory_limit_days": item["statutory_limit_days"],
        "promised_limit_days": item["promised_limit_days"], "fee": item.get("fee"),
        "online_depth": item["online_depth"], "audience": item["audience"], "topics": item["topics"],
        "channels": item["channels"], "high_frequency_rank": item.get("high_frequency_rank"),
        "instant_approval": bool(item.get("instant_approval")), "produces_license": item.get("produces_license"),
        "grassroots": bool(item.get("grassroots")), "cross_region": bool(item.get("cross_region")),
        "address": item.get("address"),
        "popularity": int(item.get("popularity") or 0), "form": item.get("form") or [],
        "parent_item": item.get("parent_item"), "source_ref": item.get("source_ref"), "status": "published",
        "origin": origin, "version": 1, "change_seq": change_seq, "created_at": now, "updated_at": now,
    }


def _insert(model, rows: list[dict]) -> None:
    if rows:
        db.session.execute(insert(model.__table__), rows)


@lru_cache(maxsize=2)
def _raw_services_insert(dialect: str):
    """INSERT into `services` taking its JSON columns as already serialised text."""
    if dialect == "sqlite":  # JSON is text there; a CAST would apply NUMERIC affinity
        columns = [column(c.name, Text() if isinstance(c.type, JSON) else c.type)
                   for c in Service.__table__.columns]
        return insert(table(Service.__tablename__, *columns))
    values = {c.name: cast(bindparam(c.name, type_=Text()), c.type) if isinstance(c.type, JSON)
              else bindparam(c.name, type_=c.type) for c in Service.__table__.columns}
    return insert(Service.__table__).values(values)


class _JsonCache:
    """Serialise the JSON fields of seed rows once per distinct value: rows of one base item share
    their legal basis, materials, form, aliases and topics, so most of the encoding is repeated."""

    SHARED = ("aliases", "legal_basis", "materials", "topics", "form")

    def __init__(self) -> None:
        self._by_base: dict[tuple[str, str], str] = {}
        self._channels: dict[tuple, str] = {}

    def __call__(self, row: dict) -> dict:
        base = row["base_code"]
        for field in self.SHARED:
            key = (base, field)
            text = self._by_base.get(key)
            if text is None:
                text = self._by_base[key] = json.dumps(row[field], ensure_ascii=False)
            row[field] = text
        channels = tuple(row["channels"])
        text = self._channels.get(channels)
        if text is None:
            text = self._channels[channels] = json.dumps(list(channels))
        row["channels"] = text
        return row


def _insert_services(rows: list[dict]) -> None:
    """Insert seed-shaped service rows (JSON fields already serialised by _JsonCache)."""
    if rows:
        db.session.execute(_raw_services_insert(db.session.get_bind().dialect.name), rows)


def _seed_reference() -> dict[str, int]:
    """Halls (1+16+136), topics, bundles and handling situations that are missing."""
    added = {}
    halls = sorted(seed_data.load_halls(), key=lambda h: (_LEVEL_ORDER[h["level"]], h["code"]))
    existing = set(db.session.scalars(select(Hall.code)))
    rows = [{"code": h["code"], "name": h["name"], "full_name": h["full_name"], "level": h["level"],
             "parent_code": h["parent_code"], "address": h["address"]} for h in halls if h["code"] not in existing]
    _insert(Hall, rows)
    added["halls"] = len(rows)
    existing = set(db.session.scalars(select(Topic.code)))
    rows = [{"code": t["code"], "name": t["name"], "audience": t["audience"], "sort_order": i}
            for i, t in enumerate(seed_data.load_topics()) if t["code"] not in existing]
    _insert(Topic, rows)
    added["topics"] = len(rows)
    existing = set(db.session.scalars(select(Bundle.code)))
    rows = [{"code": b["code"], "name": b["name"], "audience": b["audience"], "description": b.get("description"),
             "members": b["members"], "sort_order": i}
            for i, b in enumerate(seed_data.load_bundles()) if b["code"] not in existing]
    _insert(Bundle, rows)
    added["bundles"] = len(rows)
    existing = {tuple(row) for row in db.session.execute(select(ServiceSituation.base_code, ServiceSituation.code))}
    rows = [{"base_code": b["base_code"], "code": sit["code"], "name": sit["name"],
             "description": sit.get("description"), "materials": sit["materials"], "sort_order": i}
            for b in seed_data.load_base_items() for i, sit in enumerate(b["situations"])
            if (b["base_code"], sit["code"]) not in existing]
    _insert(ServiceSituation, rows)
    added["situations"] = len(rows)
    if db.session.get(CatalogueState, 1) is None:
        db.session.add(CatalogueState(id=1, version=0, epoch=1, updated_at=utcnow()))
        db.session.flush()
    return added


def _signal() -> None:
    """Tell the workers (through the shared store) that the catalogue changed."""
    catalogue_index(current_app._get_current_object()).changed()


def seed_catalogue() -> str:
    """Halls, topics, bundles and every hall's services (only the missing ones).

    `CATALOGUE_SEED_HALLS` (a list of hall codes) limits the services to those halls.
    """
    added = _seed_reference()
    wanted = current_app.config.get("CATALOGUE_SEED_HALLS")
    existing = set(db.session.scalars(select(Service.code)))
    now, inserted, batch, encode = utcnow(), 0, [], _JsonCache()
    for item in seed_data.iter_hall_services(wanted):
        if item["code"] in existing:
            continue
        batch.append(encode(service_row(item, origin="seed", change_seq=0, now=now)))
        if len(batch) >= BATCH:
            _insert_services(batch)
            inserted += len(batch)
            batch = []
    _insert_services(batch)
    inserted += len(batch)
    if inserted or added["halls"]:
        next_catalogue_version(bulk=True)
    db.session.commit()
    if inserted or added["halls"]:
        _signal()
    return (f"{added['halls']} halls, {inserted} services, {added['topics']} topics, "
            f"{added['bundles']} bundles added")


def generate_catalogue(count: int, *, batch_size: int = BATCH,
                       progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Make the seed and generated services exactly the first `count` items of `generate_items`
    (province, city and county halls, then township and village service points), in one transaction.

    Missing items are inserted (service points become halls of level township/village), seed and
    generated items beyond `count` are deleted; services created by hall admins are kept.
    """
    _seed_reference()
    existing = {code: origin for code, origin in db.session.execute(select(Service.code, Service.origin))}
    known_halls = set(db.session.scalars(select(Hall.code)))
    now, encode = utcnow(), _JsonCache()
    produced: set[str] = set()
    services: list[dict] = []
    halls: list[dict] = []
    inserted = 0

    def flush() -> None:
        nonlocal inserted, services, halls
        _insert(Hall, halls)
        _insert_services(services)
        inserted += len(services)
        services, halls = [], []

    for item in seed_data.generate_items(count):
        code = item["code"]
        produced.add(code)
        if progress:
            progress(1)
        if code in existing:
            continue
        hall_code = item["hall_code"]
        if hall_code not in known_halls:
            known_halls.add(hall_code)
            halls.append(_service_point(item))
        origin = "seed" if item["hall_level"] in HALL_LEVELS else "generated"
        services.append(encode(service_row(item, origin=origin, change_seq=0, now=now)))
        if len(services) >= batch_size:
            flush()
    flush()
    stale = [code for code, origin in existing.items() if origin in ("seed", "generated") and code not in produced]
    for start in range(0, len(stale), 1000):
        db.session.execute(delete(Service).where(Service.code.in_(stale[start:start + 1000]))
                           .execution_options(synchronize_session=False))
    used = select(Service.hall_code).distinct()
    db.session.execute(delete(Hall).where(Hall.level == "village", Hall.code.not_in(used))
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(Hall).where(Hall.level == "township", Hall.code.not_in(used),
                                          Hall.code.not_in(select(Hall.parent_code).where(Hall.level == "village")))
                       .execution_options(synchronize_session=False))
    next_catalogue_version(bulk=True)
    db.session.commit()
    _signal()
    total = db.session.scalar(select(db.func.count()).select_from(Service))
    return {"inserted": inserted, "deleted": len(stale), "total": total}


def _service_point(item: dict) -> dict:
    """A township (9-digit) or village (12-digit) service point as a hall under its county/township."""
    code = item["hall_code"]
    parent = code[:6] if item["hall_level"] == "township" else code[:9]
    return {"code": code, "name": item["hall_name"], "full_name": item["hall_name"], "level": item["hall_level"],
            "parent_code": parent, "address": item.get("address")}


def seeded_codes(hall_codes: Iterable[str] | None = None) -> set[str]:
    """Codes of the services `seed_catalogue` creates (tests use it to restore the catalogue)."""
    return {item["code"] for item in seed_data.iter_hall_services(hall_codes)}
