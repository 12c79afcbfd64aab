"""Demo licenses to try (development only): the built-in license library holds licenses for the
demo residents, and the seeder pulls them into their wallets (归集) as opening the wallet would,
also for those without an account yet (the child 王小明, whose guardian 王芳 sees his 户口簿)."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..identity.models import id_index
from .collection import collect_for
from .device_models import LibraryRecord
from .identifier import build_identifier
from .seed import catalogue

POLICE_BEIJING = ("北京市公安局西城分局", "11110105MB0001234B")
POLICE_JINAN = ("济南市公安局历下区分局", "11370102MB00045679")
HRSS_JINAN = ("济南市人力资源和社会保障局", "11370100MB0002345A")
TRAFFIC_SHANDONG = ("山东省公安厅交通警察总队", "11370000MB00034566")
ID_CARD, HOUSEHOLD_BOOK, DRIVING, SOCIAL_SECURITY = ("11100000000013100M001", "11100000000013100M003",
                                                    "11100000000013100M009", "111000000000131143001")
# (ID number, name, gender, birth date, license type, issuer, serial, validity, extra fields)
DEMO = (
    ("11010519491231002X", "张三", "女", "1949-12-31", ID_CARD, POLICE_BEIJING, "2019000000101",
     ("2019-03-01", "2039-03-01"), {"ethnicity": "汉", "address": "北京市西城区复兴门内大街1号"}),
    ("11010519491231002X", "张三", "女", "1949-12-31", SOCIAL_SECURITY, HRSS_JINAN, "2021000000102",
     ("2021-05-10", "2031-05-09"), {"card_number": "A370100123456", "bank": "中国工商银行"}),
    ("37010219850315123X", "王芳", "男", "1985-03-15", ID_CARD, POLICE_JINAN, "2020000000201",
     ("2020-08-01", "2040-08-01"), {"ethnicity": "汉", "address": "山东省济南市历下区泉城路188号"}),
    ("37010219850315123X", "王芳", "男", "1985-03-15", DRIVING, TRAFFIC_SHANDONG, "2022000000202",
     ("2022-04-01", "2028-04-01"), {"nationality": "中国", "address": "山东省济南市历下区泉城路188号",
                                    "first_issue_date": "2010-04-01", "license_class": "C1",
                                    "file_number": "370100123456"}),
    ("370102201506011237", "王小明", "男", "2015-06-01", HOUSEHOLD_BOOK, POLICE_JINAN, "2015000000301",
     ("2015-06-20", "2045-06-20"), {"household_head": "王芳", "relationship": "子", "household_type": "非农业家庭户",
                                    "household_number": "370102015123", "address": "山东省济南市历下区泉城路188号",
                                    "registration_authority": "济南市公安局历下区分局"}),
    ("370202199007082343", "赵敏", "女", "1990-07-08", ID_CARD, POLICE_JINAN, "2018000000401",
     ("2018-09-01", "2038-09-01"), {"ethnicity": "汉", "address": "山东省青岛市市南区香港中路10号"}),
)


def library_items() -> list[dict]:
    """The demo library's items, in the library's JSON shape (app/wallet/collection.py)."""
    field_names = {item["code"]: {f["name"] for f in item["fields"]} for item in catalogue()}
    items = []
    for id_number, name, gender, birth, type_code, (issuer, issuer_code), serial, (start, end), extra in DEMO:
        fields = {"name": name, "id_number": id_number, "gender": gender, "birth_date": birth,
                  "issuing_authority": issuer, "valid_from": start, "valid_until": end, "issue_date": start, **extra}
        fields = {key: value for key, value in fields.items() if key in field_names[type_code]}
        items.append({"license_identifier": build_identifier(type_code=type_code, issuer_credit_code=issuer_code,
                                                             serial=serial),
                      "license_type_code": type_code, "holder_name": name, "holder_identity_type": "111",
                      "holder_identity_number": id_number, "issuer_name": issuer, "issuer_code": issuer_code,
                      "valid_from": start, "valid_until": end, "status": "valid", "data": fields})
    return items


def seed_demo_licenses() -> str:
    """Fill the development library and pull it into the demo wallets (idempotent; development only)."""
    env = current_app.config.get("APP_ENV")
    if env != "development":
        return f"skipped in {env}"
    added = 0
    for item in library_items():
        if db.session.scalar(select(LibraryRecord.id).where(LibraryRecord.identifier == item["license_identifier"])):
            continue
        record = LibraryRecord(identifier=item["license_identifier"],
                               holder_index=id_index(item["holder_identity_number"]))
        record.record = item
        db.session.add(record)
        added += 1
    db.session.commit()
    collected = sum(collect_for(id_number)["added"] for id_number in sorted({row[0] for row in DEMO}))
    return f"{added} library licenses added, {collected} collected into demo wallets"
