"""An anonymous search, guide, hall tree, hall, topic list or bundle this worker has rendered is answered
before the framework (app/catalogue/anonymous_reads.py) as the view answers it: same body and headers, 304
for the ETag, the same metrics and access log line; a caller with a token or a client id, a body, a URL not rendered yet or a
new catalogue version goes to the view."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app.catalogue import publishing
from app.catalogue.index import catalogue_index
from app.catalogue.models import Bundle
from app.extensions import db
from app.observability import REQUESTS
from tests.support.framework import without_page_server
from tests.support.helpers import API

SEARCH = f"{API}/services?q=%E8%BA%AB%E4%BB%BD%E8%AF%81&page_size=5"


def _answer(response) -> tuple:
    headers = sorted((name, value) for name, value in response.headers.items() if name != "X-Request-ID")
    return response.status_code, headers, response.data


def _served(endpoint: str, status: str) -> float:
    return sum(sample.value for metric in REQUESTS.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels.get("endpoint") == endpoint
               and sample.labels.get("status") == status)


@pytest.fixture
def guide(client) -> str:
    return f"{API}/services/" + client.get(f"{API}/services?page_size=1").get_json()["items"][0]["code"]


def _reads(app, guide: str) -> dict[str, tuple[str, str]]:
    with app.app_context():
        bundle = db.session.scalar(select(Bundle.code).order_by(Bundle.code).limit(1))
    return {"search": (SEARCH, f"{API}/services"), "guide": (guide, f"{API}/services/<string:code>"),
            "halls": (f"{API}/halls", f"{API}/halls"), "hall": (f"{API}/halls/370102", f"{API}/halls/<string:code>"),
            "topics": (f"{API}/topics", f"{API}/topics"), "bundles": (f"{API}/bundles", f"{API}/bundles"),
            "bundle": (f"{API}/bundles/{bundle}?hall=370102", f"{API}/bundles/<string:code>")}


@pytest.mark.parametrize("which", ["search", "guide", "halls", "hall", "topics", "bundles", "bundle"])
def test_a_rendered_read_is_answered_early_as_the_view_answers_it(app, client, guide, entered, caplog, which):
    url, rule = _reads(app, guide)[which]
    by_view = client.get(url)
    assert by_view.status_code == 200 and len(entered) == 1
    counted = _served(rule, "200")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.access"):
        early = client.get(url)
    assert len(entered) == 1  # not entered again
    assert _answer(early) == _answer(by_view)
    assert early.headers["Cache-Control"] == "public, max-age=60" and early.headers["ETag"].startswith('W/"')
    assert _served(rule, "200") == counted + 1  # under the view's rule, as the framework counts it
    assert [record.getMessage() for record in caplog.records if record.name == "app.access"] == [f"GET {url.split('?')[0]} 200"]


def test_the_etag_answers_304_early_as_the_view_does(app, client, guide, entered, monkeypatch):
    etag = client.get(guide).headers["ETag"]
    entered.clear()
    early = client.get(guide, headers={"If-None-Match": etag})
    assert early.status_code == 304 and early.data == b"" and entered == []
    without_page_server(app, monkeypatch)
    by_view = client.get(guide, headers={"If-None-Match": etag})
    assert len(entered) == 1 and _answer(early) == _answer(by_view)
    other = client.get(guide, headers={"If-None-Match": 'W/"0.0-0000000000000000"'})
    assert other.status_code == 200


def test_a_query_string_on_a_read_without_arguments_is_kept_once_not_per_url(app, client, guide):
    index = catalogue_index(app)
    for url in (f"{API}/bundles", f"{API}/topics", guide):
        plain = client.get(url)
        junk = [client.get(f"{url}?junk={n}") for n in range(5)]
        assert all(r.status_code == 200 and r.data == plain.data for r in junk)
        path = url.split("?")[0]
        assert [key for key in index._responses if key[:2] == ("anonymous", path) and key[2]] == []
    search = [client.get(f"{API}/services?q=sfz&page={n}") for n in (1, 2)]  # a read with arguments: by URL
    assert all(r.status_code == 200 for r in search)
    assert {("anonymous", f"{API}/services", f"q=sfz&page={n}") for n in (1, 2)} <= set(index._responses)


def test_callers_bodies_and_urls_not_rendered_go_to_the_view(app, client, guide, entered, alice):
    client.get(guide)
    entered.clear()
    assert client.get(guide, headers=alice["headers"]).headers["Cache-Control"].startswith("private")
    assert client.get(guide, headers={"X-Client-Id": "c_unknown"}).status_code == 401  # unsigned: the view refuses it
    assert client.get(guide, data=b"x", content_type="text/plain").status_code == 200  # the input guard looked
    assert client.get(guide + "?page=1").status_code == 200  # another URL: not rendered yet
    assert client.get(f"{API}/services?q=%00").status_code == 422  # the input guard's
    assert len(entered) == 5


def test_a_new_catalogue_version_is_rendered_again_with_a_new_etag(app, client, guide, entered):
    first = client.get(guide)
    with app.app_context():
        publishing.next_catalogue_version()
        db.session.commit()
        catalogue_index(app).changed()
    entered.clear()
    again = client.get(guide, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and len(entered) == 1 and again.headers["ETag"] != first.headers["ETag"]
    assert client.get(guide).headers["ETag"] == again.headers["ETag"] and len(entered) == 1


def test_a_withdrawn_service_is_not_answered_from_what_was_kept(app, client, guide):
    assert client.get(guide).status_code == 200
    code = guide.rsplit("/", 1)[1]
    _publish(app, code, "withdrawn")
    try:
        assert client.get(guide).status_code == 404
    finally:  # the catalogue is shared by the session's tests
        _publish(app, code, "published")
    assert client.get(guide).status_code == 200


def _publish(app, code: str, status: str) -> None:
    from app.catalogue.models import Service
    with app.app_context():
        db.session.get(Service, code).status = status
        publishing.next_catalogue_version()
        db.session.commit()
        catalogue_index(app).changed()


def test_searches_answered_early_are_not_counted_as_the_view_does_not_count_kept_ones(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SEARCH_RATE_LIMIT", "2/minute")
    assert client.get(SEARCH).status_code == 200  # rendered: counted
    assert [client.get(SEARCH).status_code for _ in range(5)] == [200] * 5
    assert client.get(f"{API}/services?q=hukou").status_code == 200  # rendered: the second count
    assert client.get(f"{API}/services?q=sfz").status_code == 429
