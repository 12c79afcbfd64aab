"""Searching by item, not by hall: a collapsed search returns each item once, from the preferred halls,
with the number of halls offering it; checked against a plain Python oracle over a random catalogue."""
from __future__ import annotations

import random

import pytest

from app.catalogue.search import SearchIndex
from app.catalogue.search.synonyms import SynonymTable

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
