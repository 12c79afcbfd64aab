"""The inbox: unread count, filters, mark one or all read; unknown query parameters are refused
(here and on the other list endpoints) instead of being silently ignored."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.notifications.service import notify
from tests.support.helpers import API
from tests.support.applications import person_in
from tests.support.world import is_problem


def _inbox(client, person, **args):
    response = client.get(f"{API}/inbox", headers=person["headers"], query_string=args)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def alice(client, app):
    person = person_in(client, app, name="张三")
    with app.app_context():
        for index, kind in enumerate(("application_status", "license_access", "application_status")):
            notify(person["subject_id"], kind=kind, title=f"{kind} {index}")
        db.session.commit()
    return person


def test_the_inbox_counts_unread_and_filters_by_state_and_kind(client, app, alice):
    body = _inbox(client, alice)
    assert body["total"] == 3 and body["unread_count"] == 3 and all(item["read_at"] is None for item in body["items"])
    assert [item["title"] for item in body["items"]] == ["application_status 2", "license_access 1",
                                                         "application_status 0"]
    kind = _inbox(client, alice, kind="license_access")
    assert [item["title"] for item in kind["items"]] == ["license_access 1"] and kind["unread_count"] == 3
    first = body["items"][-1]["id"]
    read = client.post(f"{API}/inbox/{first}/read", headers=alice["headers"])
    assert read.status_code == 200 and read.get_json()["read_at"].endswith("Z")
    again = client.post(f"{API}/inbox/{first}/read", headers=alice["headers"]).get_json()
    assert again["read_at"] == read.get_json()["read_at"]  # marking twice keeps the first time
    unread = _inbox(client, alice, unread="true")
    assert unread["total"] == 2 and unread["unread_count"] == 2 and first not in [i["id"] for i in unread["items"]]
    assert [item["id"] for item in _inbox(client, alice, unread="false")["items"]] == [first]
    combined = _inbox(client, alice, unread="true", kind="application_status", page_size=1)
    assert combined["total"] == 1 and combined["page_size"] == 1


def test_mark_all_read_and_nobody_reads_anothers_notice(client, app, alice):
    bob = person_in(client, app, name="李四")
    theirs = _inbox(client, alice)["items"][0]["id"]
    foreign = client.post(f"{API}/inbox/{theirs}/read", headers=bob["headers"])
    assert foreign.status_code == 404 and is_problem(foreign, 404)
    assert client.post(f"{API}/inbox/2147483647/read", headers=alice["headers"]).status_code == 404
    for odd in ("99999999999", "abc", "-1", "1.5", "²"):
        response = client.post(f"{API}/inbox/{odd}/read", headers=alice["headers"])
        assert response.status_code == 404 and is_problem(response, 404), odd
    assert _inbox(client, alice)["unread_count"] == 3  # bob's attempt changed nothing
    with app.app_context():
        notify(bob["subject_id"], kind="application_status", title="bob's")
        db.session.commit()
    done = client.post(f"{API}/inbox/read", headers=alice["headers"])
    assert done.status_code == 200 and done.get_json() == {"updated": 3, "unread_count": 0}
    assert client.post(f"{API}/inbox/read", headers=alice["headers"]).get_json() == {"updated": 0, "unread_count": 0}
    assert _inbox(client, bob)["unread_count"] == 1
    assert client.get(f"{API}/inbox").status_code == 401
    assert client.post(f"{API}/inbox/read").status_code == 401


@pytest.mark.parametrize("query, field", [("unread=maybe", "unread"), ("kind=A%20B", "kind"),
                                          ("page=0", "page"), ("page_size=101", "page_size")])
def test_bad_filters_are_422_naming_the_parameter(client, alice, query, field):
    response = client.get(f"{API}/inbox?{query}", headers=alice["headers"])
    assert response.status_code == 422 and is_problem(response, 422)
    assert list(response.get_json()["errors"]) == [field]


@pytest.mark.parametrize("path", ["/inbox", "/applications", "/wallet/licenses", "/appointments", "/complaints",
                                  "/me/consents"])
def test_unknown_query_parameters_are_refused_on_list_endpoints(client, alice, path):
    response = client.get(f"{API}{path}?page=1&unred=true", headers=alice["headers"])
    assert response.status_code == 422 and is_problem(response, 422), (path, response.get_json())
    assert response.get_json()["errors"] == {"unred": ["不允许的字段"]}
    assert client.get(f"{API}{path}?page=1", headers=alice["headers"]).status_code == 200


def test_the_catalogue_search_keeps_ignoring_what_it_does_not_know(client):
    """/services declares that it ignores unknown arguments (links from other sites carry their own)."""
    assert client.get(f"{API}/services?q=户口&utm_source=wechat").status_code == 200


def test_inbox_operations_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    listed = paths["/api/v1/inbox"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"page", "page_size", "unread", "kind"}
    assert listed["security"] == [{"bearerAuth": []}]
    schema = listed["responses"]["200"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert "unread_count" in client.get("/openapi.json").get_json()["components"]["schemas"][name]["properties"]
    for path in ("/api/v1/inbox/{notification_id}/read", "/api/v1/inbox/read"):
        assert paths[path]["post"]["summary"] and paths[path]["post"]["security"] == [{"bearerAuth": []}]
