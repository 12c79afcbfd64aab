"""Catalogue reads through the API: halls tree, coverage, search relevance, filters and facets,
pagination, channel exposure, ETag/304 and Cache-Control, topics, bundles, bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from app.catalogue.models import Service
from app.extensions import db
from tests.support.catalogue import API, channel_headers, signed_headers
from tests.support.helpers import create_client

PROBLEM = "application/problem+json"
RELEVANCE_CSV = Path(__file__).resolve().parent / "data" / "search_relevance.csv"
CITY_CODES = ["370100", "370200", "370300", "370400", "370500", "370600", "370700", "370800", "370900",
              "371000", "371100", "371300", "371400", "371500", "371600", "371700"]
LIST_FIELDS = {"code", "name", "hall_code", "department", "audience", "item_type", "online_depth", "channels",
               "high_frequency"}
DETAIL_FIELDS = {"code", "base_code", "name", "item_type", "department", "hall_code", "level", "legal_basis",
                 "materials", "statutory_limit_days", "promised_limit_days", "fee", "online_depth", "channels",
                 "audience", "topics", "high_frequency", "instant_approval"}


def problem(response, status):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    return body


def search(client, headers=None, **args):
    response = client.get(f"{API}/services", query_string=args, headers=headers or {})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ---------------------------------------------------------------------------------------------- halls


def test_halls_tree_is_province_cities_counties(client):
    response = client.get(f"{API}/halls")
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 1
    province = items[0]
    assert (province["code"], province["name"], province["level"]) == ("370000", "山东省", "province")
    cities = province["children"]
    assert [c["code"] for c in cities] == CITY_CODES
    assert cities[0]["name"] == "济南市" and cities[-1]["name"] == "菏泽市"
    assert all(c["level"] == "city" and c["parent_code"] == "370000" for c in cities)
    counties = [county for city in cities for county in city["children"]]
    assert len(counties) == 136
    for city in cities:
        assert city["children"], city["code"]
        for county in city["children"]:
            assert county["level"] == "county" and county["parent_code"] == city["code"]
            assert county["code"][:4] == city["code"][:4] or city["code"] == "370100"  # 莱芜 merged into 济南
            assert county["children"] == []
    laiwu = {c["code"] for c in cities[0]["children"]}
    assert {"370116", "370117"} <= laiwu
    assert all(c["service_count"] >= 200 for c in cities)
    assert province["service_count"] > 0


def test_hall_detail_counts_published_services(client):
    body = client.get(f"{API}/halls/370100").get_json()
    assert body["code"] == "370100" and body["level"] == "city" and body["parent_code"] == "370000"
    assert body["service_count"] == search(client, hall="370100", page_size=1)["total"]
    assert body["service_count"] >= 200
    assert {c["code"] for c in body["children"]} >= {"370102", "370116"}
    county = client.get(f"{API}/halls/370102").get_json()
    assert county["level"] == "county" and county["parent_name"] == "济南市"


def test_unknown_hall_is_404(client):
    problem(client.get(f"{API}/halls/379999"), 404)
    problem(client.get(f"{API}/halls/379999/coverage"), 404)


def test_every_city_hall_meets_the_coverage_target(client):
    for code in CITY_CODES:
        body = client.get(f"{API}/halls/{code}/coverage").get_json()
        assert body["hall_code"] == code
        assert body["service_count"] >= 200, code
        assert body["high_frequency_present"] == 50 and body["high_frequency_missing"] == [], code
        assert body["meets_target"] is True
        assert body["service_count"] == client.get(f"{API}/halls/{code}").get_json()["service_count"]


def test_coverage_names_missing_high_frequency_items(client):
    province = client.get(f"{API}/halls/370000/coverage").get_json()
    assert province["meets_target"] is False
    assert province["high_frequency_present"] + len(province["high_frequency_missing"]) == 50
    assert all(isinstance(name, str) and name for name in province["high_frequency_missing"])


# ------------------------------------------------------------------------------------------- search


@pytest.mark.parametrize("query, expected", [
    ("户口本丢了怎么办", {"户口迁移", "户口簿换领补领"}),
    ("yibao", {"医保异地就医备案", "城乡居民医疗保险参保登记"}),
    ("yb", {"医保异地就医备案", "城乡居民医疗保险参保登记"}),
    ("sfz", {"居民身份证换领", "居民身份证补领"}),
    ("公积金提取", {"住房公积金租房提取", "住房公积金购房提取"}),
    ("开公司", {"企业设立登记"}),
])
def test_search_finds_expected_items_in_top_five(client, query, expected):
    body = search(client, q=query, hall="370100", page_size=5)
    names = [item["name"] for item in body["items"]]
    assert expected & set(names), (query, names)


def _relevance_rows():
    with RELEVANCE_CSV.open(encoding="utf-8") as handle:
        return [(row["query"], row["expected_name"].split("|")) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("hall", ["370100", "370102"])
def test_search_relevance_table_through_the_api(client, app, hall):
    with app.app_context():
        offered = set(db.session.scalars(select(Service.name).where(Service.hall_code == hall)))
    misses, checked = [], 0
    for query, expected in _relevance_rows():
        expected = set(expected) & offered
        if not expected:
            continue  # a county does not offer every city-level item
        checked += 1
        names = [item["name"] for item in search(client, q=query, hall=hall, page_size=5)["items"]]
        if not expected & set(names):
            misses.append((query, expected, names))
    assert checked >= 40
    assert not misses


def test_list_items_carry_the_contract_fields(client):
    body = search(client, q="社保", page_size=3)
    assert body["total"] > 0 and body["page"] == 1 and body["page_size"] == 3
    for item in body["items"]:
        assert LIST_FIELDS <= set(item)
        assert isinstance(item["high_frequency"], bool)
        assert set(item["channels"]) <= {"app", "wechat", "alipay"}
    assert set(body["facets"]) == {"hall", "audience", "topic", "item_type"}


def test_browse_puts_high_frequency_items_first(client):
    body = search(client, hall="370100", page_size=50)
    assert all(item["high_frequency"] for item in body["items"])
    hf = search(client, hall="370100", high_frequency="true", page_size=100)
    assert hf["total"] == 50
    assert search(client, hall="370100", high_frequency="false", page_size=1)["total"] == \
        search(client, hall="370100", page_size=1)["total"] - 50


def test_filters_and_facets_agree(client):
    everything = search(client, hall="370100", page_size=1)
    total = everything["total"]
    facets = everything["facets"]
    assert facets["hall"] == [{"value": "370100", "label": "济南市", "count": total}]
    assert sum(f["count"] for f in facets["audience"]) == total
    assert sum(f["count"] for f in facets["item_type"]) == total
    assert {f["value"] for f in facets["audience"]} == {"person", "legal"}
    for facet in ("audience", "item_type", "topic"):
        for entry in facets[facet][:4]:
            filtered = search(client, hall="370100", page_size=100, **{facet: entry["value"]})
            assert filtered["total"] == entry["count"], (facet, entry)
            for item in filtered["items"]:
                if facet == "topic":
                    assert entry["value"] in item["topics"]
                else:
                    assert item[facet] == entry["value"]
    # facet counts cover the whole result, not just the page
    legal = search(client, q="许可", audience="legal", page_size=2)
    assert legal["facets"]["audience"] == [{"value": "legal", "label": "法人", "count": legal["total"]}]
    # without a hall each item comes once; the hall facet counts the matched items each hall offers
    for entry in legal["facets"]["hall"][:3]:
        assert search(client, q="许可", audience="legal", hall=entry["value"], page_size=1)["total"] == entry["count"]
    assert max(f["count"] for f in legal["facets"]["hall"]) <= legal["total"]


def test_pagination_is_consistent(client):
    total = search(client, hall="370102", page_size=1)["total"]
    seen = []
    page = 1
    while True:
        body = search(client, hall="370102", page=page, page_size=37)
        assert body["total"] == total
        if not body["items"]:
            break
        seen += [item["code"] for item in body["items"]]
        page += 1
    assert len(seen) == total == len(set(seen))
    beyond = search(client, hall="370102", page=1000, page_size=20)
    assert beyond["items"] == [] and beyond["total"] == total
    ranked_all = [i["code"] for i in search(client, q="公积金", hall="370100", page_size=30)["items"]]
    ranked_pages = [i["code"] for p in (1, 2, 3) for i in search(client, q="公积金", hall="370100", page=p,
                                                                  page_size=10)["items"]]
    assert ranked_pages == ranked_all


def test_bad_search_arguments_are_422_naming_the_field(client):
    body = problem(client.get(f"{API}/services", query_string={"page_size": 101}), 422)
    assert "page_size" in body["errors"]
    body = problem(client.get(f"{API}/services", query_string={"q": "查" * 101}), 422)
    assert "q" in body["errors"]
    assert search(client, q="查" * 100, page_size=1)["page_size"] == 1
    for name, value in (("page", 0), ("audience", "alien"), ("channel", "fax"), ("high_frequency", "maybe"),
                        ("item_type", "许可"), ("page_size", "x")):
        body = problem(client.get(f"{API}/services", query_string={name: value}), 422)
        assert name in body["errors"], name
    assert search(client, hall="379999")["total"] == 0


# ---------------------------------------------------------------------------------------------- detail


def test_service_detail_has_the_contract_fields(client):
    code = search(client, q="居民身份证换领", hall="370102", page_size=1)["items"][0]["code"]
    body = client.get(f"{API}/services/{code}").get_json()
    assert DETAIL_FIELDS <= set(body)
    assert body["code"] == code and body["hall_code"] == "370102" and body["level"] == "county"
    assert body["base_code"] and len(body["base_code"]) == 12
    assert body["promised_limit_days"] <= body["statutory_limit_days"]
    for material in body["materials"]:
        assert {"name", "required", "license_type_code"} <= set(material)
    assert body["high_frequency"] is True and body["status"] == "published" and body["version"] >= 1


def test_unknown_service_is_404(client):
    problem(client.get(f"{API}/services/370100-999999999999"), 404)


# ------------------------------------------------------------------------------------------- channels


def _service_without(app, channel: str, hall: str = "370100") -> Service:
    with app.app_context():
        rows = db.session.scalars(select(Service).where(Service.hall_code == hall, Service.status == "published")
                                  .order_by(Service.code)).all()
        row = next(r for r in rows if channel not in r.channels)
        db.session.expunge(row)
        return row


def test_wechat_token_sees_only_services_exposed_to_wechat(client, app):
    hidden = _service_without(app, "wechat")
    wechat = channel_headers(app, "wechat")
    anonymous = search(client, q=hidden.name, hall="370100", page_size=100)
    assert hidden.code in [i["code"] for i in anonymous["items"]]
    through_wechat = search(client, wechat, q=hidden.name, hall="370100", page_size=100)
    assert hidden.code not in [i["code"] for i in through_wechat["items"]]
    assert all("wechat" in i["channels"] for i in through_wechat["items"])
    assert client.get(f"{API}/services/{hidden.code}").status_code == 200
    problem(client.get(f"{API}/services/{hidden.code}", headers=wechat), 404)
    # counts and facets follow the channel: the same as an anonymous channel=wechat filter
    browse = search(client, wechat, hall="370100", page_size=1)
    assert browse["total"] == search(client, hall="370100", channel="wechat", page_size=1)["total"]
    assert browse["total"] < search(client, hall="370100", page_size=1)["total"]
    assert sum(f["count"] for f in browse["facets"]["audience"]) == browse["total"]
    hall = client.get(f"{API}/halls/370100", headers=wechat).get_json()
    assert hall["service_count"] == browse["total"]


def test_explicit_channel_filters_further(client, app):
    wechat = channel_headers(app, "wechat")
    both = search(client, wechat, hall="370100", channel="alipay", page_size=100)
    assert both["total"] > 0
    assert all({"wechat", "alipay"} <= set(i["channels"]) for i in both["items"])
    assert both["total"] <= search(client, wechat, hall="370100", page_size=1)["total"]
    alipay_only = search(client, hall="370100", channel="alipay", page_size=1)["total"]
    assert both["total"] <= alipay_only
    plain = search(client, hall="370100", channel="wechat", page_size=100)
    assert all("wechat" in i["channels"] for i in plain["items"])


def test_alipay_token_detail_of_wechat_only_service(client, app):
    hidden = _service_without(app, "alipay")
    problem(client.get(f"{API}/services/{hidden.code}", headers=channel_headers(app, "alipay")), 404)


def test_signed_third_party_client_sees_its_channel(client, app):
    hidden = _service_without(app, "alipay")
    client_id, secret = create_client(app, "third_party", scopes=["catalogue:read"], channel="alipay")
    target = f"{API}/services/{hidden.code}"
    problem(client.get(target, headers=signed_headers(client_id, secret, target)), 404)
    target = f"{API}/services?hall=370100&page_size=100"
    response = client.get(target, headers=signed_headers(client_id, secret, target))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, max-age=60"
    body = response.get_json()
    assert body["total"] == search(client, hall="370100", channel="alipay", page_size=1)["total"]
    assert all("alipay" in item["channels"] for item in body["items"])
    # without the catalogue:read scope the open API may not read the catalogue
    other_id, other_secret = create_client(app, "third_party", scopes=["licenses:verify"], channel="app")
    target = f"{API}/halls"
    problem(client.get(target, headers=signed_headers(other_id, other_secret, target)), 403)


# ---------------------------------------------------------------------------------------- ETag, caching


@pytest.mark.parametrize("path", ["/halls", "/halls/370100", "/services?q=社保&hall=370100", "/topics",
                                  "/services/370100-000705012000"])
def test_reads_carry_etag_and_answer_304(client, path):
    first = client.get(API + path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["Cache-Control"] == "public, max-age=60"
    again = client.get(API + path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    other = client.get(API + path, headers={"If-None-Match": 'W/"0.0-0000000000000000"'})
    assert other.status_code == 200


def test_etag_depends_on_url_and_channel(client, app):
    one = client.get(f"{API}/services?q=社保").headers["ETag"]
    two = client.get(f"{API}/services?q=医保").headers["ETag"]
    assert one != two
    wechat = client.get(f"{API}/services?q=社保", headers=channel_headers(app, "wechat"))
    assert wechat.headers["ETag"] != one
    assert wechat.headers["Cache-Control"] == "private, max-age=60"
    assert client.get(f"{API}/services?q=社保", headers={**channel_headers(app, "wechat"),
                                                        "If-None-Match": one}).status_code == 200


# ---------------------------------------------------------------------------------------- topics, bundles


def test_topics(client):
    items = client.get(f"{API}/topics").get_json()["items"]
    codes = {t["code"] for t in items}
    assert any(c.startswith("person-") for c in codes) and any(c.startswith("legal-") for c in codes)
    assert all(t["audience"] in ("person", "legal") and t["name"] for t in items)
    facet = search(client, hall="370100", page_size=1)["facets"]["topic"]
    assert {f["value"] for f in facet} <= codes


def test_bundles_list_and_detail(client):
    items = client.get(f"{API}/bundles").get_json()["items"]
    codes = {b["code"] for b in items}
    assert {"enterprise-opening", "newborn"} <= codes
    body = client.get(f"{API}/bundles/enterprise-opening").get_json()
    assert body["audience"] == "legal"
    assert [m["name"] for m in body["members"]][0] == "企业设立登记"
    assert all(m["available"] and m["item_type"] for m in body["members"])
    resolved = client.get(f"{API}/bundles/enterprise-opening", query_string={"hall": "370102"}).get_json()
    for member in resolved["members"]:
        assert member["service_code"] and member["hall_code"] in ("370102", "370100", "370000")
        detail = client.get(f"{API}/services/{member['service_code']}").get_json()
        assert detail["base_code"] == member["base_code"]
    problem(client.get(f"{API}/bundles/no-such-bundle"), 404)
    problem(client.get(f"{API}/bundles/newborn", query_string={"hall": "379999"}), 404)


def test_openapi_documents_the_catalogue(client):
    spec = client.get("/openapi.json").get_json()
    services = spec["paths"]["/api/v1/services"]["get"]
    assert services["summary"] == "检索政务服务事项"
    assert "422" in services["responses"]
    post = spec["paths"]["/api/v1/halls/{code}/services"]["post"]
    assert {"201", "403", "404", "422"} <= set(post["responses"])
    assert "404" in spec["paths"]["/api/v1/services/{code}"]["get"]["responses"]
