"""Shared helpers of the applications and evaluations tests (no tests of its own).

    from tests.support.applications import apply, issue_license, person_in, company, upload
"""
from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from fpdf import FPDF

from app.extensions import db
from app.timeutil import beijing_today
from app.wallet import service as wallet
from app.wallet.holders import person_index
from app.wallet.models import License, LicenseType
from tests.support.helpers import (API, add_registry_entity, auth_headers, register_person, valid_credit_code,
                           valid_id_number)

JINAN_LIXIA = "370102"
JINAN_SHIZHONG = "370103"
JINAN = "370100"
QINGDAO_SHINAN = "370202"
RESIDENCE_PERMIT = "000705015000"  # 居住证签发: instant, produces 居住证
TALENT_CARD = "002022001000"  # 山东惠才卡申领: instant, produces 山东惠才卡 (city level)
HUKOU_MOVE = "000705006000"  # 户口迁移: 10 working days, 容缺 / 告知承诺 materials
HOUSEHOLD_CERTIFICATE = "002005001000"  # 户籍证明开具: several may be in progress at once
ID_CARD_TYPE = "11100000000013100M001"
RESIDENCE_PERMIT_TYPE = "11100000000013100M004"
TALENT_CARD_TYPE = "11370000000004021Y001"
HOUSEHOLD_BOOK_TYPE = "11100000000013100M003"
BUSINESS_LICENSE_TYPE = "11100000000013156D001"


def code(hall: str, base: str) -> str:
    return f"{hall}-{base}"


def new_key() -> str:
    return str(uuid.uuid4())


def apply(client, headers, body, key=None, path="/applications"):
    """POST an application with an Idempotency-Key (a fresh one unless given)."""
    return client.post(f"{API}{path}", json=body, headers={**headers, "Idempotency-Key": key or new_key()})


def person_in(client, app, region=JINAN_LIXIA, name="张三", birth=None, gender=None):
    """A registered adult whose ID number starts with `region` (of `gender` 男 / 女 when given)."""
    while True:
        id_number = valid_id_number(region=region, birth=birth)
        if gender is None or (int(id_number[16]) % 2 == 1) == (gender == "男"):
            return register_person(client, app, name=name, id_number=id_number)


def issue_license(app, license_type, *, holder_id_number=None, holder_credit_code=None, fields=None,
                  valid_from=None, valid_until=None) -> str:
    """Issue a license by the platform issuer into a wallet; returns its license_id."""
    with app.app_context():
        today = beijing_today()
        license = wallet.issue_platform_license(
            license_type=license_type, holder_id_number=holder_id_number, holder_credit_code=holder_credit_code,
            fields=fields or {}, valid_from=valid_from or today - timedelta(days=30),
            valid_until=valid_until or today + timedelta(days=3650))
        db.session.commit()
        return license.license_id


def id_card(app, person, *, address=None) -> str:
    """A 居民身份证 in the person's wallet: the valid one they hold (one per person: a new card
    supersedes the old), else a new one (at `address`)."""
    if address is None:
        with app.app_context():
            held = db.session.scalar(db.select(License.license_id).where(
                License.holder_index == person_index(person["id_number"]), License.license_type_code == ID_CARD_TYPE,
                License.status == "valid"))
        if held:
            return held
    address = address or "山东省济南市历下区泺源大街1号"
    today = beijing_today()
    return issue_license(app, ID_CARD_TYPE, holder_id_number=person["id_number"], fields={
        "name": person["name"], "gender": "男" if int(person["id_number"][16]) % 2 else "女", "ethnicity": "汉",
        "birth_date": f"{person['id_number'][6:10]}-{person['id_number'][10:12]}-{person['id_number'][12:14]}",
        "address": address, "issuing_authority": "济南市公安局历下区分局",
        "valid_from": (today - timedelta(days=30)).isoformat(),
        "valid_until": (today + timedelta(days=3650)).isoformat()},
        valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=3650))


def pdf_scan(text: str) -> bytes:
    """A real one-page PDF (a scanned material stands in for one), different for each text."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


def upload(client, headers, data: bytes | None = None, name: str = "material.pdf") -> str:
    """Upload a file (a fresh PDF unless given) with POST /files; returns its file_id."""
    body = data if data is not None else pdf_scan(f"scan {uuid.uuid4()}")
    response = client.post(f"{API}/files", data={"file": (io.BytesIO(body), name)}, headers=headers,
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["file_id"]


def household_book(app, person) -> str:
    """A 户口簿 in the person's wallet."""
    with app.app_context():
        fields = {f["name"]: "济南市历下区" for f in db.session.get(LicenseType, HOUSEHOLD_BOOK_TYPE).fields
                  if f["type"] == "text"}
        dates = [f["name"] for f in db.session.get(LicenseType, HOUSEHOLD_BOOK_TYPE).fields if f["type"] == "date"]
    fields.update({name: "2020-01-01" for name in dates})
    number = person["id_number"]
    fields.update(name=person["name"], birth_date=f"{number[6:10]}-{number[10:12]}-{number[12:14]}")
    return issue_license(app, HOUSEHOLD_BOOK_TYPE, holder_id_number=person["id_number"], fields=fields)


def residence_body(person, license_id, **form):
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "address": "济南市历下区泺源大街1号", "residence_start": "2024-03-01", "residence_reason": "就业"}
    values.update(form)
    return {"service_code": code(JINAN_LIXIA, RESIDENCE_PERMIT), "form": values,
            "materials": [{"name": "居民身份证", "license_id": license_id}, {"name": "居住证明", "commitment": True}]}


def hukou_body(person, app, **form):
    """户口迁移 (handled by staff) with the ID card and household book as uploaded scans."""
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "move_type": "省内迁移", "move_reason": "购房落户", "move_to_address": "济南市历下区泉城路1号"}
    values.update(form)
    client = app.test_client()
    return {"service_code": code(JINAN_LIXIA, HUKOU_MOVE), "form": values,
            "materials": [{"name": "居民身份证", "file_id": upload(client, person["headers"])},
                          {"name": "户口簿", "file_id": upload(client, person["headers"])},
                          {"name": "合法稳定住所证明", "missing": True}]}


def accept_files(client, staff, application_id) -> None:
    """Staff accept every uploaded file of an application (what approval needs)."""
    detail = client.get(f"{API}/applications/{application_id}", headers=staff).get_json()
    for material in detail["materials"]:
        if material["kind"] == "file":
            response = client.post(f"{API}/applications/{application_id}/materials/{material['name']}/review",
                                   headers=staff, json={"decision": "accepted"})
            assert response.status_code == 200, response.get_json()


def certificate_body(person, app, **form):
    """户籍证明开具 (several may be in progress at once) with scans of the ID card and household book."""
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "certified_matter": "户籍信息证明", "purpose": "办理入学", **form}
    client = app.test_client()
    return {"service_code": code(JINAN_LIXIA, HOUSEHOLD_CERTIFICATE), "form": values,
            "materials": [{"name": "居民身份证", "file_id": upload(client, person["headers"])},
                          {"name": "户口簿", "file_id": upload(client, person["headers"])}]}


def count_rows(app, model) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(model))


@pytest.fixture
def inline_jobs(app, monkeypatch):
    """Jobs (sealing the decision, archiving) run in the request also when the suite runs with
    Redis, as they do without it."""
    monkeypatch.setitem(app.config, "JOBS_INLINE", True)


@pytest.fixture
def company(client, app):
    """(representative person, credit code, company-token headers) for a claimed company in 济南."""
    rep = person_in(client, app, name="法人甲")
    credit_code = valid_credit_code(region="370102")
    add_registry_entity(app, credit_code=credit_code, name="山东齐鲁测试有限公司", representative_id_number=rep["id_number"])
    response = client.post(f"{API}/enterprises", json={"credit_code": credit_code, "name": "山东齐鲁测试有限公司"},
                           headers=rep["headers"])
    assert response.status_code == 201, response.get_json()
    tokens = client.post(f"{API}/auth/act-as", json={"credit_code": credit_code}, headers=rep["headers"])
    assert tokens.status_code == 200, tokens.get_json()
    return rep, credit_code, auth_headers(tokens.get_json()["access_token"])
