"""Bundles (一件事): members resolved to base items and, for a hall, to the service that handles each."""
from __future__ import annotations

from sqlalchemy import select

from ..errors import NotFound
from ..extensions import db
from .halls import hall_chain
from .models import Bundle, Service


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
