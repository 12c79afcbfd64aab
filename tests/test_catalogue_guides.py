"""办事指南 through the API: conditions, process, situations, legal basis honesty, the hotline, license
names for materials, downloadable forms of the high-frequency items, and searching by item, not by hall."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy import func, select

from app.catalogue.models import Service, ServiceSituation
from app.extensions import db
from tests.support.catalogue import API

PDFTOTEXT = shutil.which("pdftotext")


def _service_code(app, name: str, hall: str | None = None) -> str:
    with app.app_context():
        query = select(Service.code).where(Service.name == name, Service.status == "published")
        if hall:
            query = query.where(Service.hall_code == hall)
        return db.session.scalars(query.order_by(Service.code)).first()


def _detail(client, code: str) -> dict:
    response = client.get(f"{API}/services/{code}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _search(client, **args) -> dict:
    response = client.get(f"{API}/services", query_string=args)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_imported_item_guide_says_where_it_comes_from_and_invents_no_legal_basis(client, app):
    body = _detail(client, _service_code(app, "犬类准养证核发"))
    assert body["legal_basis"] is None and body["legal_basis_note"] == "来源目录未载明设定依据"
    assert body["source_ref"].startswith("v-luobo/zwfw#")
    assert "v-luobo/zwfw" in body["guide_note"] and body["source_ref"].split("#")[1] in body["guide_note"]
    assert body["phone"] == "12345" and "12345" in body["phone_note"]
    assert body["conditions"] and all(isinstance(text, str) and text for text in body["conditions"])
    assert [step["step"] for step in body["process"]] == list(range(1, len(body["process"]) + 1))
    assert "二十" in body["limit_note"] and body["statutory_limit_days"] == 20
    assert body["fee"].startswith("来源目录未载明")
    id_card = next(m for m in body["materials"] if m["name"] == "居民身份证")
    assert id_card["license_type_name"] == "居民身份证"
    assert body["situations"] == [] and body["form_templates"] is None


def test_own_item_guide_has_situations_with_their_own_materials(client, app):
    body = _detail(client, _service_code(app, "居民身份证换领", "370102"))
    assert body["legal_basis"] and body["legal_basis_note"] is None and body["source_ref"] is None
    assert any("居民身份证法" in text for text in body["conditions"])
    situations = {s["code"]: s for s in body["situations"]}
    assert list(situations) == ["expiry", "damaged", "change"]
    assert situations["expiry"]["name"] == "有效期满换领"
    assert {m["name"] for m in situations["damaged"]["materials"]} == {"损坏的居民身份证", "居民户口簿"}
    household = next(m for m in situations["change"]["materials"] if m["name"].startswith("居民户口簿"))
    assert household["license_type_name"] == "户口簿"
    with app.app_context():
        base_code = db.session.get(Service, body["code"]).base_code
        assert db.session.scalar(select(func.count()).select_from(ServiceSituation)
                                 .where(ServiceSituation.base_code == base_code)) == 3


def test_high_frequency_items_offer_a_blank_form_and_a_filled_sample(client, app, tmp_path):
    assert PDFTOTEXT, "pdftotext (poppler-utils, installed by scripts/services.sh) reads the PDFs"
    code = _service_code(app, "居民身份证换领", "370102")
    links = _detail(client, code)["form_templates"]
    assert links == {"blank": f"{API}/services/{code}/form-templates/blank",
                     "sample": f"{API}/services/{code}/form-templates/sample"}
    texts = {}
    for kind in ("blank", "sample"):
        response = client.get(links[kind])
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF-") and f"{code}-{kind}.pdf" in response.headers["Content-Disposition"]
        path = tmp_path / f"{kind}.pdf"
        path.write_bytes(response.data)
        texts[kind] = subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "居民身份证换领申请表" in texts["blank"] and "样例" not in texts["blank"]
    assert "申请人姓名" in texts["blank"] and "户口簿" in texts["blank"]
    assert "填写样例" in texts["sample"] and "11010519491231002X" in texts["sample"]


def test_form_templates_exist_only_for_high_frequency_items(client, app):
    ordinary = _service_code(app, "犬类准养证核发")
    assert client.get(f"{API}/services/{ordinary}/form-templates/blank").status_code == 404
    frequent = _service_code(app, "居民身份证换领", "370102")
    response = client.get(f"{API}/services/{frequent}/form-templates/filled")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_search_without_a_hall_returns_each_item_once_with_its_hall_count(client, app):
    body = _search(client, q="社会保障卡", page_size=100)
    base_codes = [item["base_code"] for item in body["items"]]
    assert len(base_codes) == len(set(base_codes)) == body["total"] >= 10
    card = next(item for item in body["items"] if item["name"] == "社会保障卡申领")
    with app.app_context():
        offered = db.session.scalar(select(func.count()).select_from(Service).where(
            Service.base_code == card["base_code"], Service.status == "published"))
    assert card["hall_count"] == offered > 100
    in_jinan = _search(client, q="社会保障卡申领", city="370100", page_size=5)["items"][0]
    assert in_jinan["base_code"] == card["base_code"] and in_jinan["hall_code"] == "370100"
    provincial = _search(client, q="爆破作业单位许可", page_size=1)["items"][0]
    assert provincial["hall_code"] == "370000" and provincial["hall_count"] == 1
    within_hall = _search(client, q="社会保障卡申领", hall="370102", page_size=3)["items"]
    assert within_hall and all(item["hall_count"] is None and item["hall_code"] == "370102" for item in within_hall)


def test_city_must_be_one_of_the_sixteen(client):
    for city in ("370102", "110000", "abc"):
        response = client.get(f"{API}/services", query_string={"q": "社保", "city": city})
        assert response.status_code == 422 and "city" in response.get_json()["errors"], city


def test_instant_approval_filter(client):
    instant = _search(client, instant_approval="true", page_size=100)
    assert instant["total"] > 0 and all(item["instant_approval"] for item in instant["items"])
    others = _search(client, instant_approval="false", page_size=100)
    assert all(not item["instant_approval"] for item in others["items"])
    assert instant["total"] + others["total"] == _search(client, page_size=1)["total"]


@pytest.mark.parametrize("query, expected", [
    ("犬类准养证", "犬类准养证核发"), ("旅馆业特种行业许可证", "旅馆业特种行业许可证核发"), ("教师资格认定", "教师资格认定"),
    ("零时牌", "临时行驶车号牌核发"), ("开KTV需要什么手续", "娱乐场所经营许可"),
    ("个人营业执照如何注销", "个体工商户注销登记"), ("小孩预防针本丢了怎么补办", "预防接种证办理"),
])
def test_the_issues_questions_find_their_items(client, query, expected):
    names = [item["name"] for item in _search(client, q=query, page_size=3)["items"]]
    assert expected in names, names


def test_bundles_carry_the_national_key_items(client):
    bundles = client.get(f"{API}/bundles").get_json()["items"]
    assert len(bundles) >= 15
    for bundle in bundles:
        assert bundle["members"] and all(member["available"] for member in bundle["members"]), bundle["code"]
    restaurant = client.get(f"{API}/bundles/restaurant-opening", query_string={"hall": "370102"}).get_json()
    assert all(member["service_code"] for member in restaurant["members"])
