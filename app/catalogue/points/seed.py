"""Seed 就近办 data: the halls' coordinates, opening hours, phones and windows, and the generated
township/village service points (see data/README.md for where each value comes from)."""
from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from ...bulk import insert_rows
from ...extensions import db
from .. import seed_data
from ..models import Hall, ServicePoint

DATA = Path(__file__).resolve().parent / "data" / "hall_locations.csv"
EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
HALL_HOURS = "09:00-12:00,13:00-17:00"
TOWNSHIP_HOURS = "08:30-12:00,14:00-17:30"
VILLAGE_HOURS = "09:00-11:30,14:30-17:00"
HALL_WINDOWS = {"province": 20, "city": 24}  # county halls: 8..12
TOWNSHIP_RADIUS_KM = {"district": 5.0, "county": 18.0}
VILLAGE_RADIUS_KM = 3.0
VILLAGES_PER_TOWNSHIP = (3, 8)
AREA_CODES = {"3701": "0531", "3702": "0532", "3703": "0533", "3704": "0632", "3705": "0546", "3706": "0535",
              "3707": "0536", "3708": "0537", "3709": "0538", "3710": "0631", "3711": "0633", "3713": "0539",
              "3714": "0534", "3715": "0635", "3716": "0543", "3717": "0530"}


_stable = seed_data._stable_int  # noqa: SLF001 - the generator's SHA-256 numbers, reused


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1)."""
    return _stable(*parts) / 2 ** 64


@lru_cache(maxsize=1)
def hall_locations() -> dict[str, tuple[float, float]]:
    """hall code -> (lat, lon) of its government seat."""
    with open(DATA, encoding="utf-8", newline="") as fh:
        return {row["code"]: (float(row["lat"]), float(row["lon"])) for row in csv.DictReader(fh)}


def offset(lat: float, lon: float, *, radius_km: float, key: str) -> tuple[float, float]:
    """A point uniformly spread over the disc of `radius_km` around (lat, lon), chosen by `key`."""
    distance = radius_km * math.sqrt(_unit(key, "r"))
    bearing = 2 * math.pi * _unit(key, "a")
    dlat = distance * math.cos(bearing) / EARTH_RADIUS_KM
    dlon = distance * math.sin(bearing) / (EARTH_RADIUS_KM * math.cos(math.radians(lat)))
    return round(lat + math.degrees(dlat), 6), round(lon + math.degrees(dlon), 6)


def phone_for(code: str) -> str:
    """A placeholder number: the city's real area code and a derived 8-digit subscriber number."""
    area = AREA_CODES.get(code[:4], "0531")
    return f"{area}-{6 + _stable(code, 'phone') % 3}{_stable(code, 'line') % 10 ** 7:07d}"


def hall_windows(code: str, level: str) -> int:
    return HALL_WINDOWS.get(level) or 8 + _stable(code, "windows") % 5


def village_name(township: dict, number: int) -> str:
    """The generator's name of a village service station (as `seed_data.generate_items` names it)."""
    return f"{township['name']}第{number}{township['village_kind']}便民服务站"


def iter_points():
    """Every generated township and village point as a `service_points` row, in a stable order."""
    seats = hall_locations()
    for township in seed_data._townships():  # noqa: SLF001 - the generator's codes and names, reused
        county = township["county"]
        kind = "district" if county["name"].endswith("区") else "county"
        lat, lon = offset(*seats[county["code"]], radius_km=TOWNSHIP_RADIUS_KM[kind], key=township["code"])
        yield {"code": township["code"], "name": f"{township['name']}便民服务中心", "level": "township",
               "county_code": county["code"], "address": township["address"], "lat": lat, "lon": lon,
               "open_hours": TOWNSHIP_HOURS, "phone": phone_for(township["code"])}
        low, high = VILLAGES_PER_TOWNSHIP
        for number in range(1, low + _stable(township["code"], "villages") % (high - low + 1) + 1):
            code = f"{township['code']}{number:03d}"
            name = village_name(township, number)
            v_lat, v_lon = offset(lat, lon, radius_km=VILLAGE_RADIUS_KM, key=code)
            yield {"code": code, "name": name, "level": "village", "county_code": county["code"],
                   "address": f"{township['address'].split('·')[0]}·{name}", "lat": v_lat, "lon": v_lon,
                   "open_hours": VILLAGE_HOURS, "phone": phone_for(code)}


def seed_service_points() -> str:
    """Fill what the halls lack (coordinates, hours, phone, windows) and add missing service points;
    values already set (by an operator) are kept. Idempotent."""
    seats = hall_locations()
    updated = 0
    for hall in db.session.scalars(select(Hall).where(Hall.level.in_(("province", "city", "county")))):
        values = {"open_hours": HALL_HOURS, "phone": phone_for(hall.code),
                  "windows": hall_windows(hall.code, hall.level)}
        if hall.code in seats:
            values["lat"], values["lon"] = seats[hall.code]
        changed = False
        for name, value in values.items():
            if getattr(hall, name) is None:
                setattr(hall, name, value)
                changed = True
        updated += changed
    existing = set(db.session.scalars(select(ServicePoint.code)))
    halls = set(db.session.scalars(select(Hall.code)))
    rows = [row for row in iter_points() if row["code"] not in existing and row["county_code"] in halls]
    for start in range(0, len(rows), 5000):
        insert_rows(ServicePoint.__table__, rows[start:start + 5000])
    if updated or rows:  # a bulk change: every worker rebuilds its indexes (the points' one included)
        from ..publishing import next_catalogue_version
        next_catalogue_version(bulk=True)
    db.session.commit()
    if updated or rows:
        from ..index import catalogue_index
        catalogue_index(current_app._get_current_object()).changed()
    return f"{updated} halls located, {len(rows)} service points added"
