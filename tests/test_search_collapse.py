"""Searching by item, not by hall: a collapsed search returns each item once, from the preferred halls,
with the number of halls offering it; checked against a plain Python oracle over a random catalogue.
Through the API, a signed-in caller who names no city gets the city they are registered in."""
from __future__ import annotations

import random

import pytest

from app.catalogue.halls import city_of_division
from app.catalogue.search import SearchIndex
from app.catalogue.search.synonyms import SynonymTable
from tests.support.helpers import (
    API,
    add_registry_entity,
    auth_headers,
    register_person,
    valid_credit_code,
    valid_id_number,
)

HALLS = ["370000", "370100", "370102", "370103", "370200", "370202", "370203"]
NAMES = ["社会保障卡申领", "社会保障卡挂失", "居民身份证换领", "居民身份证补领", "住房公积金租房提取", "食品经营许可",
         "犬类准养证核发", "个体工商户设立登记", "个体工商户注销登记", "普通护照签发"]


@pytest.fixture(scope="module")
def catalogue():
    rnd = random.Random(20)
    items = []
    for number, name in enumerate(NAMES):
        for hall in rnd.sample(HALLS, rnd.randint(1, len(HALLS))):
            items.append({"code": f"{hall}-{number:03d}", "base_code": f"B{number:03d}", "name": name, "aliases": [],
                          "hall_code": hall, "department": "部门", "audience": "person", "item_type": "公共服务",
                          "topics": [], "channels": ["app"] if rnd.random() < 0.3 else ["app", "wechat"],
                          "popularity": rnd.randint(1, 10_000), "instant_approval": number % 3 == 0})
    return items, SearchIndex(items, synonyms=SynonymTable(), topic_names={})


def _oracle(items, matching, prefer, channel=None):
    chosen = {}
    for item in items:
        if item["name"] not in matching or (channel and channel not in item["channels"]):
            continue
        tier = next((rank for rank, halls in enumerate(prefer) if item["hall_code"] in halls), len(prefer))
        key = (tier, -item["popularity"], item["code"])
        best = chosen.get(item["base_code"])
        if best is None or key < best[0]:
            chosen[item["base_code"]] = (key, item["code"], (best[2] if best else 0) + 1)
        else:
            chosen[item["base_code"]] = (best[0], best[1], best[2] + 1)
    return {code: count for _, code, count in chosen.values()}


@pytest.mark.parametrize("query, matching", [
    (None, set(NAMES)), ("社会保障卡", {"社会保障卡申领", "社会保障卡挂失"}), ("个体工商户", {"个体工商户设立登记", "个体工商户注销登记"}),
])
@pytest.mark.parametrize("prefer", [(("370000",),), (("370200",), ("370202", "370203"), ("370000",)), ()])
def test_each_item_once_from_the_preferred_hall(catalogue, query, matching, prefer):
    items, index = catalogue
    result = index.search(query, page_size=100, facet_fields=("hall",), collapse=True, prefer=prefer)
    expected = _oracle(items, matching, prefer)
    assert result.total == len(result.ids) == len(expected)
    assert result.hall_counts == expected
    by_hall = {}
    for item in items:
        if item["name"] in matching:
            by_hall[item["hall_code"]] = by_hall.get(item["hall_code"], 0) + 1
    assert {f["value"]: f["count"] for f in result.facets["hall"]} == by_hall


def test_item_level_filters_apply_before_collapsing(catalogue):
    items, index = catalogue
    result = index.search(None, filters={"channel": "wechat"}, page_size=100, facet_fields=(), collapse=True,
                          prefer=(("370000",),))
    assert result.hall_counts == _oracle(items, set(NAMES), (("370000",),), channel="wechat")
    instant = index.search(None, filters={"instant_approval": True}, page_size=100, facet_fields=(), collapse=True)
    assert {index.get(code)["name"] for code in instant.ids} == {NAMES[i] for i in range(0, len(NAMES), 3)}


def test_ranked_items_keep_their_order_and_pages_do_not_overlap(catalogue):
    _, index = catalogue
    whole = index.search("居民身份证补领", page_size=100, facet_fields=(), collapse=True).ids
    assert index.get(whole[0])["name"] == "居民身份证补领"
    pages = [code for page in (1, 2, 3) for code in
             index.search(None, page=page, page_size=4, facet_fields=(), collapse=True).ids]
    assert pages == index.search(None, page_size=12, facet_fields=(), collapse=True).ids


# ------------------------------------------------------------------ the caller's city when none is named

SEARCH = {"q": "社会保障卡", "page_size": 50}


def _items(client, headers=None, **args):
    response = client.get(f"{API}/services", query_string={**SEARCH, **args}, headers=headers or {})
    assert response.status_code == 200, response.get_json()
    return [(item["base_code"], item["hall_code"], item["hall_count"]) for item in response.get_json()["items"]]


def _person(client, app, region):
    return register_person(client, app, name="李四", id_number=valid_id_number(region=region))


def _company_headers(client, app, representative, region):
    credit_code = valid_credit_code(region=region)
    add_registry_entity(app, credit_code=credit_code, name="青岛测试有限公司",
                        representative_id_number=representative["id_number"])
    claimed = client.post(f"{API}/enterprises", json={"credit_code": credit_code, "name": "青岛测试有限公司"},
                          headers=representative["headers"])
    assert claimed.status_code == 201, claimed.get_json()
    tokens = client.post(f"{API}/auth/act-as", json={"credit_code": credit_code}, headers=representative["headers"])
    assert tokens.status_code == 200, tokens.get_json()
    return auth_headers(tokens.get_json()["access_token"])


@pytest.mark.parametrize("code, city", [("370202", "370200"), ("371702", "371700"), ("371202", "370100"),
                                        ("370000", None), ("110105", None), ("37AB02", None), ("", None)])
def test_division_codes_name_their_shandong_city(app, code, city):
    with app.test_request_context():
        assert city_of_division(code) == city


def test_a_signed_in_person_gets_the_items_of_the_city_of_their_registration(client, app):
    in_qingdao = _person(client, app, "370202")
    found = _items(client, in_qingdao["headers"])
    assert found == _items(client, city="370200") != _items(client)
    widely_offered = [hall for _, hall, count in found if count > 100]
    assert widely_offered and all(hall.startswith("3702") for hall in widely_offered)
    from_laiwu = _person(client, app, "371202")  # 莱芜 numbers belong to 济南 since 2019
    assert _items(client, from_laiwu["headers"]) == _items(client, city="370100")
    from_beijing = _person(client, app, "110105")
    assert _items(client, from_beijing["headers"]) == _items(client)


def test_a_company_token_uses_the_division_of_its_credit_code(client, app):
    in_jinan = _person(client, app, "370102")
    headers = _company_headers(client, app, in_jinan, region="370202")
    assert _items(client, headers) == _items(client, city="370200")
    assert _items(client, in_jinan["headers"]) == _items(client, city="370100")


def test_a_named_city_or_hall_beats_the_inferred_city(client, app):
    in_qingdao = _person(client, app, "370202")
    assert _items(client, in_qingdao["headers"], city="370300") == _items(client, city="370300")
    assert _items(client, in_qingdao["headers"], hall="370102") == _items(client, hall="370102")


def test_one_url_never_answers_not_modified_across_cities(client, app):
    in_qingdao, in_jinan = _person(client, app, "370202"), _person(client, app, "370102")
    first = client.get(f"{API}/services", query_string=SEARCH, headers=in_qingdao["headers"])
    etag = first.headers["ETag"]
    again = client.get(f"{API}/services", query_string=SEARCH, headers={**in_qingdao["headers"], "If-None-Match": etag})
    assert again.status_code == 304
    other = client.get(f"{API}/services", query_string=SEARCH, headers={**in_jinan["headers"], "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    assert [item["hall_code"] for item in other.get_json()["items"]] != [
        item["hall_code"] for item in first.get_json()["items"]]
