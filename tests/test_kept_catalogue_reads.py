"""A search, guide, hall tree, hall, topic list or bundle this worker has rendered for the caller's channel is
answered before the framework (app/catalogue/kept_reads.py) as the view answers it, anonymous or signed in:
same body and headers, 304 for the ETag, the same metrics and access log line. A token is checked as the view
checks it (a refused one goes to the view, which refuses it) and decides the channel; a caller with a client
id, a body, a URL not rendered yet for that channel or a new catalogue version goes to the view."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app.catalogue import publishing
from app.catalogue.index import catalogue_index
from app.catalogue.kept_reads import url_key
from app.catalogue.models import Bundle
from app.extensions import db
from app.observability import REQUESTS
from tests.support.catalogue import channel_headers
from tests.support.framework import without_page_server
from tests.support.helpers import API, register_person
from tests.support.wallet import person_id_number

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


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
@pytest.mark.parametrize("which", ["search", "guide", "halls", "hall", "topics", "bundles", "bundle"])
def test_a_rendered_read_is_answered_early_as_the_view_answers_it(app, client, guide, entered, caplog, alice, which,
                                                                  signed_in, monkeypatch):
    url, rule = _reads(app, guide)[which]
    headers = alice["headers"] if signed_in else {}
    entered.clear()  # (alice's registration and sign-in)
    without_page_server(app, monkeypatch)
    by_view = client.get(url, headers=headers)
    monkeypatch.undo()
    assert by_view.status_code == 200 and len(entered) == 1
    counted = _served(rule, "200")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.access"):
        early = client.get(url, headers=headers)
    assert len(entered) == 1  # not entered again
    assert _answer(early) == _answer(by_view)
    assert early.headers["Cache-Control"] == f"{'private' if signed_in else 'public'}, max-age=60"
    assert early.headers["ETag"].startswith('W/"')
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
        assert [key for key in index._responses if key[:3] == ("url", None, path) and key[3]] == []
    search = [client.get(f"{API}/services?q=sfz&page={n}") for n in (1, 2)]  # a read with arguments: by URL
    assert all(r.status_code == 200 for r in search)
    assert {url_key(f"{API}/services", f"q=sfz&page={n}", None) for n in (1, 2)} <= set(index._responses)


def test_callers_bodies_and_urls_not_rendered_go_to_the_view(app, client, guide, entered, alice):
    client.get(guide)
    assert client.get(guide, headers=alice["headers"]).headers["Cache-Control"].startswith("private")
    entered.clear()
    assert client.get(guide, headers={"X-Client-Id": "c_unknown"}).status_code == 401  # unsigned: the view refuses it
    assert client.get(guide, data=b"x", content_type="text/plain").status_code == 200  # the input guard looked
    assert client.get(guide + "?page=1").status_code == 200  # another URL: not rendered yet
    assert client.get(f"{API}/services?q=%00").status_code == 422  # the input guard's
    assert len(entered) == 4


def test_each_channel_is_answered_its_own_render(app, client, entered):
    hall = f"{API}/halls/370100"
    wechat, alipay = channel_headers(app, "wechat"), channel_headers(app, "alipay")
    by_view = {name: client.get(hall, headers=headers) for name, headers in (("wechat", wechat), ("alipay", alipay))}
    assert len(entered) == 2 and by_view["wechat"].headers["ETag"] != by_view["alipay"].headers["ETag"]
    assert by_view["wechat"].data != client.get(hall).data  # the wechat channel shows fewer services
    entered.clear()
    assert client.get(hall, headers=wechat).data == by_view["wechat"].data
    assert client.get(hall, headers=alipay).data == by_view["alipay"].data and entered == []


def test_a_refused_token_is_refused_by_the_view_after_one_round_trip(app, client, guide, entered, alice, monkeypatch):
    assert client.get(guide, headers=alice["headers"]).status_code == 200  # kept for the app channel
    entered.clear()
    shared, reads = app.extensions["shared_store"], []
    monkeypatch.setattr(shared, "get_many", lambda *keys, _real=shared.get_many: reads.append(keys) or _real(*keys))
    assert client.post(f"{API}/auth/logout", json={"refresh_token": alice["refresh_token"]},
                       headers=alice["headers"]).status_code == 204
    reads.clear()
    refused = client.get(guide, headers=alice["headers"])
    assert refused.status_code == 401 and len(entered) == 2 and len(reads) == 1  # the view used what was read
    for header in ("Basic dXNlcjpwYXNz", "Bearer not-a-token"):
        assert client.get(guide, headers={"Authorization": header}).status_code == 401
    assert len(entered) == 4


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


def test_a_search_is_answered_for_the_signed_in_callers_own_city(app, client, alice, entered):
    qingdao = register_person(client, app, name="李四", id_number=person_id_number(region="370202"))
    entered.clear()
    first = {name: client.get(SEARCH, headers=person["headers"]) for name, person in (("jinan", alice),
                                                                                     ("qingdao", qingdao))}
    assert len(entered) == 2  # the same URL and channel, another city: rendered again
    assert first["jinan"].headers["ETag"].endswith("-370100\"") and first["qingdao"].headers["ETag"].endswith("-370200\"")
    assert first["jinan"].data != first["qingdao"].data
    entered.clear()
    for name, person in (("jinan", alice), ("qingdao", qingdao)):
        assert _answer(client.get(SEARCH, headers=person["headers"])) == _answer(first[name])
    hall = client.get(f"{API}/services?q=%E8%BA%AB%E4%BB%BD%E8%AF%81&page_size=5&hall=370102", headers=qingdao["headers"])
    assert hall.status_code == 200 and not hall.headers["ETag"].endswith("-370200\"")  # a hall named: no city of theirs
    assert len(entered) == 1


def test_bundles_do_not_look_at_the_token_early_or_in_the_view(app, client, entered):
    kept = client.get(f"{API}/bundles")
    entered.clear()
    refused_elsewhere = {"Authorization": "Bearer not-a-token"}
    early = client.get(f"{API}/bundles", headers=refused_elsewhere)
    assert early.status_code == 200 and early.data == kept.data and entered == []
    assert early.headers["Cache-Control"] == "private, max-age=60"
    assert client.get(f"{API}/topics", headers=refused_elsewhere).status_code == 401


def test_a_repeated_argument_is_read_as_the_view_reads_it(app, client, alice, entered):
    assert client.get(f"{API}/services?q=sfz&hall=&hall=370102").status_code == 422  # a blank hall: never kept
    url = f"{API}/services?q=sfz&hall=370102&hall="  # the view's parser takes the first value: a hall named
    by_view = client.get(url, headers=alice["headers"])
    assert by_view.status_code == 200 and not by_view.headers["ETag"].endswith("-370100\"")  # not for her city
    entered.clear()
    assert _answer(client.get(url, headers=alice["headers"])) == _answer(by_view) and entered == []
