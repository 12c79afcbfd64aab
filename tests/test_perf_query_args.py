"""Query arguments are validated once per worker for each distinct query string, and only where that
is the same answer: invalid input is refused every time, a view's changes do not leak into the next
request, and no query schema takes a default that changes with time."""
from __future__ import annotations

from urllib.parse import quote

from marshmallow import Schema, fields

from app.catalogue.views import SERVICE_QUERY_ARGS
from app.extensions import ApiBlueprint
from app.query_args import MEMO_MAX_QUERY_BYTES, MemoQueryParser, QUERY_LOCATIONS
from tests.support.framework import without_page_server
from tests.support.helpers import API


def _counting_loads(monkeypatch, schema) -> list[dict]:
    seen = []
    real = schema.load

    def load(data, *args, **kwargs):
        seen.append(dict(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(schema, "load", load)
    ApiBlueprint.ARGUMENTS_PARSER._validated.cache_clear()  # what earlier tests asked is not counted
    return seen


def test_a_repeated_search_is_validated_once_and_answers_the_same(client, monkeypatch):
    loads = _counting_loads(monkeypatch, SERVICE_QUERY_ARGS)
    first = client.get(f"{API}/services?q=%E7%A4%BE%E4%BF%9D%E5%8D%A1&page_size=3&hall=370102")
    again = client.get(f"{API}/services?q=%E7%A4%BE%E4%BF%9D%E5%8D%A1&page_size=3&hall=370102")
    assert first.status_code == again.status_code == 200 and first.get_json() == again.get_json()
    other = client.get(f"{API}/services?q=%E7%A4%BE%E4%BF%9D%E5%8D%A1&page_size=4&hall=370102")
    assert other.get_json()["page_size"] == 4
    assert [seen.get("page_size") for seen in loads] == ["3", "4"]


def test_invalid_query_strings_are_refused_every_time_naming_the_field(client, monkeypatch):
    loads = _counting_loads(monkeypatch, SERVICE_QUERY_ARGS)
    for _ in range(2):
        answer = client.get(f"{API}/services?page_size=101")
        assert answer.status_code == 422 and "page_size" in answer.get_json()["errors"]
    assert len(loads) == 2


def test_a_long_query_string_is_validated_every_time_and_not_kept(app, client, monkeypatch):
    without_page_server(app, monkeypatch)  # which would answer the second search from the body it kept
    loads = _counting_loads(monkeypatch, SERVICE_QUERY_ARGS)
    long_query = "q=" + quote("社保" * 50)  # 100 characters, the most q takes: 902 bytes once encoded
    assert len(long_query) > MEMO_MAX_QUERY_BYTES
    for _ in range(2):
        assert client.get(f"{API}/services?{long_query}&page_size=1").status_code == 200
    assert len(loads) == 2


def test_each_call_gets_its_own_arguments(app):
    class Tags(Schema):
        tag = fields.List(fields.String())
        page = fields.Integer()

    parser, schema = MemoQueryParser(), Tags()
    with app.test_request_context("/?tag=a&tag=b&page=2"):
        first = parser.parse(schema, location="query", unknown=None)
        first["tag"].append("changed")
        first["page"] = 99
        again = parser.parse(schema, location="query", unknown=None)
    assert again == {"tag": ["a", "b"], "page": 2}
    assert parser._validated.cache_info().hits == 1
    with app.test_request_context("/?tag=c"):
        assert parser.parse(schema, location="query", unknown=None) == {"tag": ["c"]}


def test_the_api_blueprints_use_the_memo_and_no_query_schema_has_a_default_that_changes(app):
    assert isinstance(ApiBlueprint.ARGUMENTS_PARSER, MemoQueryParser)
    app.finish_setup()  # registers every view
    query_schemas = set()
    for view in app.view_functions.values():
        methods = getattr(getattr(view, "view_class", None), "methods", None) or ()
        for method in methods:
            handler = getattr(view.view_class, method.lower(), None)
            arguments = getattr(handler, "_apidoc", {}).get("arguments", {})
            query_schemas.update(p["schema"] for p in arguments.get("parameters", ()) if p["in"] in QUERY_LOCATIONS)
    assert SERVICE_QUERY_ARGS in query_schemas and len(query_schemas) >= 20
    changing = [f"{type(schema).__name__}.{name}" for schema in query_schemas
                for name, field in schema.fields.items()
                if callable(field.load_default) and field.load_default not in (list, dict, set)]
    assert changing == []
