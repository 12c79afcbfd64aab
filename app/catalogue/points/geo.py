"""Nearest service points: an in-memory index per worker, vectorised haversine over numpy arrays.

About 12,000 points (153 halls and the township and village points below them) fit in a few
arrays; one query computes every great-circle distance at once (well under a millisecond) and
picks the k smallest with `argpartition`, on any database backend. The index is rebuilt when the
catalogue's epoch moves (bulk loads and the points seeder bump it); which halls offer an item is
read from the services table and cached per catalogue version. PostGIS (`ST_DWithin` on a
geography column with a GiST index) would be the choice for millions of points; this many do not
need it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from flask import current_app
from sqlalchemy import select

from ...errors import ValidationFailed
from ...extensions import db
from .. import seed_data
from ..index import fresh_index
from ..models import HALL_LEVELS, Hall, Service, ServicePoint
from .seed import EARTH_RADIUS_KM

FULLY_ONLINE = "全程网办"
_lock = threading.Lock()


@dataclass(frozen=True)
class PointIndex:
    epoch: int | None
    codes: np.ndarray       # str
    rows: tuple[dict, ...]  # output fields but distance_km, by position
    lat: np.ndarray         # radians
    lon: np.ndarray
    cos_lat: np.ndarray
    levels: np.ndarray      # str


def haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray, cos_lats: np.ndarray) -> np.ndarray:
    """Great-circle distances (km) from one point (radians) to many (radians, with their cosines)."""
    a = np.sin((lats - lat) / 2) ** 2 + np.cos(lat) * cos_lats * np.sin((lons - lon) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _build(epoch: int | None) -> PointIndex:
    rows = [{"code": h.code, "name": h.full_name if h.level == "county" else h.name, "level": h.level,
             "address": h.address, "lat": h.lat, "lon": h.lon, "open_hours": h.open_hours, "phone": h.phone}
            for h in db.session.scalars(select(Hall).where(Hall.level.in_(HALL_LEVELS), Hall.lat.is_not(None),
                                                           Hall.lon.is_not(None)).order_by(Hall.code))]
    rows += [{"code": p.code, "name": p.name, "level": p.level, "address": p.address, "lat": p.lat, "lon": p.lon,
              "open_hours": p.open_hours, "phone": p.phone}
             for p in db.session.scalars(select(ServicePoint).order_by(ServicePoint.code))]
    lat = np.radians(np.array([r["lat"] for r in rows], dtype=float))
    return PointIndex(epoch=epoch, codes=np.array([r["code"] for r in rows], dtype=object), rows=tuple(rows),
                      lat=lat, lon=np.radians(np.array([r["lon"] for r in rows], dtype=float)), cos_lat=np.cos(lat),
                      levels=np.array([r["level"] for r in rows], dtype=object))


def point_index() -> PointIndex:
    """This worker's index for the current catalogue epoch (built on first use, rebuilt after a bulk load)."""
    epoch = fresh_index().epoch
    current = current_app.extensions.get("service_point_index")
    if current is None or current.epoch != epoch:
        with _lock:
            current = current_app.extensions.get("service_point_index")
            if current is None or current.epoch != epoch:
                current = current_app.extensions["service_point_index"] = _build(epoch)
    return current


@lru_cache(maxsize=1)
def _base_items() -> dict[str, dict]:
    return {item["base_code"]: item for item in seed_data.load_base_items()}


def _offering_mask(index: PointIndex, base_code: str) -> np.ndarray:
    """Which points offer the base item: halls with a published service of it; township points the
    grassroots items (乡镇可办), village points those of them that are fully online (the generator's rule)."""
    def build() -> np.ndarray:
        halls = set(db.session.scalars(select(Service.hall_code).where(Service.base_code == base_code,
                                                                        Service.status == "published").distinct()))
        base = _base_items().get(base_code)
        if not halls and base is None:
            raise ValidationFailed.field("base_code", "没有该基本目录编码的事项")
        mask = np.isin(index.codes, np.array(sorted(halls), dtype=object))
        if base is not None and base.get("grassroots"):
            mask |= index.levels == "township"
            if base.get("online_depth") == FULLY_ONLINE:
                mask |= index.levels == "village"
        return mask

    return fresh_index().cached_response(("service_point_offers", index.epoch, base_code), build)


def nearest(*, lat: float, lon: float, base_code: str | None = None, limit: int = 10) -> list[dict]:
    """The `limit` points nearest to (lat, lon), nearest first, each with `distance_km`; with
    `base_code` only those that offer that item (422 naming `base_code` for an unknown item)."""
    index = point_index()
    positions = np.arange(len(index.rows))
    if base_code:
        positions = positions[_offering_mask(index, base_code)]
    if not len(positions):
        return []
    distances = haversine_km(np.radians(lat), np.radians(lon), index.lat[positions], index.lon[positions],
                             index.cos_lat[positions])
    k = min(limit, len(positions))
    best = np.argpartition(distances, k - 1)[:k]
    best = best[np.lexsort((index.codes[positions[best]].astype(str), distances[best]))]
    return [{**index.rows[positions[i]], "distance_km": round(float(distances[i]), 3)} for i in best]
