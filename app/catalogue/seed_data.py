"""Catalogue seed data (halls, license types, topics, base items, bundles) and its deterministic per-hall expansion.

Pure module: reads the files in ``app/catalogue/data/`` and never touches Flask or the database.

* ``load_*`` return fresh copies of the shipped reference data (callers may mutate them).
* ``load_base_items()`` is our own catalogue (``base_items.json``, full guides) plus the items imported from a published
  district catalogue (``imported_items.csv``, derived by ``flask catalogue import-items``; see ``importing.py`` and
  ``guides.py``); an imported item that is one of ours keeps our entry.
* ``iter_hall_services()`` expands the base catalogue (基本目录) into the implementation lists (实施清单) of the
  1 + 16 + 136 halls. Every service of one ``base_code`` carries identical ``name``, ``item_type``, ``legal_basis``,
  ``materials`` and ``statutory_limit_days`` (四级六同); only hall-specific fields (department name, promised limit,
  channels, address, popularity) vary, and they vary deterministically (SHA-256 of stable keys, never ``random``).
* ``generate_items(n)`` continues the expansion down to township (乡镇/街道) and village (村/社区) service points for
  benchmarks, so a province-wide list of any size (Shandong publishes about 297,000 items) can be produced.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import guides

DATA_DIR = Path(__file__).resolve().parent / "data"
IMPORTED_FILE = "imported_items.csv"

PROVINCE_CODE = "370000"
CITY_SERVICE_TARGET = 200  # every city hall offers at least this many services, the 50 high-frequency ones included
HIGH_FREQUENCY_COUNT = 50
CHANNELS = ("app", "wechat", "alipay")

# share of the optional county-level items a county hall offers, in tenths (districts offer more than counties)
_DISTRICT_SHARE = 5
_COUNTY_SHARE = 3
# imported county-level items, in hundredths: the share a city hall, a district and a county offers
_IMPORTED_CITY_SHARE = 50
_IMPORTED_DISTRICT_SHARE = 12
_IMPORTED_COUNTY_SHARE = 8


# ---------------------------------------------------------------------------------------------------------- loaders


@lru_cache(maxsize=None)
def _json(name: str) -> Any:
    with open(DATA_DIR / name, encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=None)
def _halls() -> tuple[dict, ...]:
    with open(DATA_DIR / "halls.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = {row["code"]: row["name"] for row in rows}
    halls = []
    for row in rows:
        parent = row["parent_code"] or None
        if row["level"] == "county":
            full_name = names[parent] + row["name"]
        else:
            full_name = row["name"]
        halls.append({"code": row["code"], "name": row["name"], "level": row["level"], "parent_code": parent,
                      "full_name": full_name, "address": _hall_address(row, names)})
    return tuple(halls)


def _hall_address(row: dict, names: dict[str, str]) -> str:
    if row["level"] == "province":
        return "山东省济南市历下区·山东省政务服务中心"
    if row["level"] == "city":
        return f"山东省{row['name']}{_CITY_SEATS[row['code']]}·{row['name']}政务服务中心"
    return f"山东省{names[row['parent_code']]}{row['name']}·{row['name']}政务服务中心"


# seats of the municipal governments (district of the city hall)
_CITY_SEATS = {
    "370100": "历下区", "370200": "市南区", "370300": "张店区", "370400": "薛城区", "370500": "东营区", "370600": "莱山区",
    "370700": "奎文区", "370800": "任城区", "370900": "泰山区", "371000": "环翠区", "371100": "东港区", "371300": "兰山区",
    "371400": "德城区", "371500": "东昌府区", "371600": "滨城区", "371700": "牡丹区",
}


def load_halls() -> list[dict]:
    """The 1 + 16 + 136 halls: ``code`` (GB/T 2260), ``name``, ``level``, ``parent_code``, ``full_name``, ``address``."""
    return [dict(hall) for hall in _halls()]


def load_license_types() -> list[dict]:
    """License types (电子证照目录): code per GB/T 36904, fields, default disclosure, validity."""
    return copy.deepcopy(_json("license_types.json"))


@lru_cache(maxsize=None)
def _license_type_names() -> dict[str, str]:
    return {item["code"]: item["name"] for item in _json("license_types.json")}


def license_type_name(code: str | None) -> str | None:
    """The name of a license type of the catalogue (None when unknown)."""
    return _license_type_names().get(code) if code else None


def load_topics() -> list[dict]:
    """Life-event (person) and enterprise-lifecycle (legal) topics."""
    return copy.deepcopy(_json("topics.json"))


def load_departments() -> list[dict]:
    """Departments with the name templates used at each hall level."""
    return copy.deepcopy(_json("departments.json"))


def load_own_items() -> list[dict]:
    """Our own base items (``base_items.json``), as written."""
    return copy.deepcopy(_json("base_items.json"))


def load_imported_rows() -> list[dict]:
    """The rows of ``imported_items.csv`` (empty when the file is absent)."""
    return [dict(row) for row in _imported_rows()]


@lru_cache(maxsize=None)
def _imported_rows() -> tuple[dict, ...]:
    path = DATA_DIR / IMPORTED_FILE
    if not path.is_file():
        return ()
    with open(path, encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh))


def _own_levels(base: dict) -> list[str]:
    levels = {"province": ["province"], "city": ["city"], "county": ["city", "county"]}[base["level"]]
    return levels + (["township"] if base.get("grassroots") else [])


@lru_cache(maxsize=None)
def _bases() -> tuple[dict, ...]:
    """Our base items (with ``levels``, ``situations``) then the imported ones that are not ours, by base code."""
    bases = []
    situations = _json("situations.json")
    for item in _json("base_items.json"):
        base = dict(item)
        base.setdefault("levels", _own_levels(item))
        base.setdefault("situations", situations.get(item["name"], []))
        base.setdefault("parent_item", None)
        base.setdefault("source_ref", None)
        bases.append(base)
    names = {dept["code"]: dept["name"] for dept in _json("departments.json")}
    bases += [guides.imported_base(row, names[row["department_code"]]) for row in _imported_rows()
              if row["matched"] != "1"]
    return tuple(bases)


def load_base_items() -> list[dict]:
    """The base catalogue (基本目录): one entry per ``base_code`` with the fields shared by every hall."""
    return copy.deepcopy(list(_bases()))


def load_bundles() -> list[dict]:
    """一件事 bundles: ``code``, ``name``, ``audience``, ``description``, ``members`` [{base_code, name, level}]."""
    return copy.deepcopy(_json("bundles.json"))


# ------------------------------------------------------------------------------------------------ per-hall expansion


def _stable_int(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode("utf-8")).digest()[:8], "big")


@lru_cache(maxsize=None)
def _department_templates() -> dict[str, dict]:
    return {dept["code"]: dept for dept in _json("departments.json")}


def _is_district(hall: dict) -> bool:
    return hall["level"] == "county" and hall["name"].endswith("区")


def department_name(department_code: str, hall: dict) -> str:
    """Name of the department that runs a service at ``hall`` (e.g. 济南市公安局历下区分局)."""
    return _department_name(department_code, hall["code"])


@lru_cache(maxsize=None)
def _department_name(department_code: str, hall_code: str) -> str:
    hall = _hall_index()[hall_code]
    templates = _department_templates()[department_code]
    if hall["level"] == "province":
        return templates["province"]
    if hall["level"] == "city":
        return templates["city"].format(city=hall["name"])
    city = _hall_index()[hall["parent_code"]]["name"]
    template = templates["district"] if _is_district(hall) else templates["county"]
    return template.format(city=city, county=hall["name"])


@lru_cache(maxsize=None)
def _hall_index() -> dict[str, dict]:
    return {hall["code"]: hall for hall in _halls()}


def offers(hall: dict, base: dict) -> bool:
    """Whether ``hall`` offers the base item (deterministic): a hall offers the items of its level; of the
    imported county-level items a city offers half and a county hall a small share (SHA-256 of the codes)."""
    level, levels = hall["level"], base["levels"]
    if level == "province":
        return "province" in levels
    imported = base.get("source_ref") is not None
    if level == "city":
        if "city" not in levels:
            return False
        if imported and "county" in levels:
            return _stable_int(hall["code"], base["base_code"], "offer") % 100 < _IMPORTED_CITY_SHARE
        return True
    if "county" not in levels:
        return False
    if imported:
        share = _IMPORTED_DISTRICT_SHARE if _is_district(hall) else _IMPORTED_COUNTY_SHARE
        return _stable_int(hall["code"], base["base_code"], "offer") % 100 < share
    if base["high_frequency_rank"] is not None or base["grassroots"]:
        return True
    share = _DISTRICT_SHARE if _is_district(hall) else _COUNTY_SHARE
    return _stable_int(hall["code"], base["base_code"], "offer") % 10 < share


def _channels(hall_code: str, base_code: str) -> list[str]:
    bucket = _stable_int(hall_code, base_code, "channels") % 20
    if bucket < 2:
        return ["app"]
    if bucket < 4:
        return ["app", "wechat"]
    if bucket == 4:
        return ["app", "alipay"]
    return list(CHANNELS)


def _promised_days(hall_code: str, base: dict) -> int:
    promised = base["promised_limit_days"]
    if promised >= 2 and _stable_int(hall_code, base["base_code"], "promise") % 3 == 0:
        promised -= 1  # this hall commits to a day less (承诺时限再压缩)
    return min(promised, base["statutory_limit_days"])


_LEVEL_WEIGHT = {"province": 6, "city": 10, "county": 4, "township": 2, "village": 1}


def _popularity(hall_code: str, hall_level: str, base: dict) -> int:
    jitter = _stable_int(hall_code, base["base_code"], "popularity") % 1000
    rank = base["high_frequency_rank"]
    score = (20_000 - rank * 300 + jitter * 2) if rank else (100 + jitter * 2)
    return score * _LEVEL_WEIGHT[hall_level] // 10


def _copy_base(base: dict) -> dict:
    service = dict(base)
    service["legal_basis"] = list(base["legal_basis"])
    service["materials"] = [dict(material) for material in base["materials"]]
    service["topics"] = list(base["topics"])
    service["aliases"] = list(base["aliases"])
    service["form"] = [dict(field, options=list(field["options"])) if "options" in field else dict(field)
                       for field in base["form"]]
    return service


def _service(base: dict, hall_code: str, hall_name: str, hall_level: str, department: str, address: str) -> dict:
    service = _copy_base(base)
    service.update({
        "code": f"{hall_code}-{base['base_code']}",
        "hall_code": hall_code,
        "hall_name": hall_name,
        "hall_level": hall_level,
        "department": department,
        "promised_limit_days": _promised_days(hall_code, base),
        "high_frequency": base["high_frequency_rank"] is not None,
        "channels": _channels(hall_code, base["base_code"]),
        "address": address,
        "popularity": _popularity(hall_code, hall_level, base),
    })
    return service


def iter_hall_services(hall_codes: Iterable[str] | None = None) -> Iterator[dict]:
    """Yield every service of every hall (or only of ``hall_codes``), in a stable order.

    Each dict holds the base item's fields plus ``code`` (``{hall_code}-{base_code}``), ``hall_code``,
    ``hall_name``, ``hall_level``, a hall-specific ``department``, ``promised_limit_days`` (<= statutory),
    ``high_frequency``, ``channels``, ``address`` and ``popularity``.
    """
    wanted = None if hall_codes is None else set(hall_codes)
    bases = _bases()
    for hall in _halls():
        if wanted is not None and hall["code"] not in wanted:
            continue
        for base in bases:
            if offers(hall, base):
                yield _service(base, hall["code"], hall["full_name"], hall["level"],
                               department_name(base["department_code"], hall), hall["address"])


# ------------------------------------------------------------------------------------- benchmark-sized catalogue


def _townships() -> list[dict]:
    """Deterministic township/street service centres (8-20 per county), coded like GB/T 10114 (9 digits)."""
    points = []
    for county in (hall for hall in _halls() if hall["level"] == "county"):
        kind = "街道" if _is_district(county) else "镇"
        for number in range(1, 8 + _stable_int(county["code"], "townships") % 13 + 1):
            name = f"{county['full_name']}第{number}{kind}"
            points.append({"code": f"{county['code']}{number:03d}", "name": name, "county": county,
                           "village_kind": "社区" if kind == "街道" else "村",
                           "address": f"{county['address'].split('·')[0]}·{name}便民服务中心"})
    return points


def township_rows() -> int:
    """How many services ``generate_items`` yields at township service centres (before the villages)."""
    return len(_townships()) * sum(1 for base in _bases() if base["grassroots"])


def generate_items(n: int) -> Iterator[dict]:
    """Yield ``n`` distinct services province-wide, deterministically, for benchmarks.

    First the halls' own services (``iter_hall_services()``), then the grassroots items (乡镇可办) at township
    service centres (``hall_level`` "township"), then the fully online grassroots items at village service stations
    (``hall_level`` "village", 12-digit codes), round-robin until ``n`` services have been produced.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    produced = 0
    if n == 0:
        return
    for service in iter_hall_services():
        yield service
        produced += 1
        if produced >= n:
            return
    bases = _bases()
    township_items = [base for base in bases if base["grassroots"]]
    village_items = [base for base in township_items if base["online_depth"] == "全程网办"]
    townships = _townships()
    for township in townships:
        department_hall = township["county"]
        for base in township_items:
            yield _service(base, township["code"], f"{township['name']}便民服务中心", "township",
                           department_name(base["department_code"], department_hall), township["address"])
            produced += 1
            if produced >= n:
                return
    for number in range(1, 1000):
        for township in townships:
            code = f"{township['code']}{number:03d}"
            name = f"{township['name']}第{number}{township['village_kind']}便民服务站"
            address = f"{township['address'].split('·')[0]}·{name}"
            for base in village_items:
                yield _service(base, code, name, "village",
                               department_name(base["department_code"], township["county"]), address)
                produced += 1
                if produced >= n:
                    return
    raise ValueError(f"cannot generate {n} distinct services")
