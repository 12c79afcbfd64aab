"""Seeder of the license catalogue (电子证照目录) from app/catalogue/data/license_types.json."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..extensions import db
from .models import LicenseType

DATA = Path(__file__).resolve().parent.parent / "catalogue" / "data" / "license_types.json"
COLUMNS = ("name", "issuer_department", "holder_type", "defined_by", "fields", "default_disclose",
           "validity_years")


@lru_cache(maxsize=1)
def catalogue() -> tuple[dict, ...]:
    """The license types as the data file defines them."""
    return tuple(json.loads(DATA.read_text(encoding="utf-8")))


def seed_license_types() -> str:
    """Insert or update every license type (idempotent); commits."""
    existing = {row.code: row for row in db.session.scalars(db.select(LicenseType))}
    added = updated = 0
    for item in catalogue():
        values = {column: item.get(column) for column in COLUMNS}
        row = existing.get(item["code"])
        if row is None:
            db.session.add(LicenseType(code=item["code"], **values))
            added += 1
        elif any(getattr(row, column) != value for column, value in values.items()):
            for column, value in values.items():
                setattr(row, column, value)
            updated += 1
    db.session.commit()
    return f"{len(catalogue())} license types ({added} added, {updated} updated)"
