"""The app's JSON output (app/json_output.py): orjson where it writes what Flask's standard-library provider
writes, with that provider's conversions, and the standard library for what orjson refuses."""
from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask

from app.json_output import OrjsonProvider, json_bytes, json_read, json_text


@dataclasses.dataclass
class Point:
    x: int
    label: str


SAMPLE = {"名称": "居民身份证", "count": 3, "ok": True, "none": None, "nested": [1, {"b": "ü"}, []],
          "when": datetime(2026, 12, 5, 8, 30, tzinfo=timezone.utc), "day": date(2026, 12, 5),
          "amount": Decimal("12.50"), "id": uuid.UUID(int=7), "point": Point(1, "甲"), 5: "int key",
          "control": "a\u0007\n\"\\/", "tuple": (1, 2)}


def _flask_app(debug: bool = False) -> Flask:
    """A plain Flask app with its standard-library provider set as the app sets ours (the oracle)."""
    plain = Flask("plain")
    plain.debug = debug
    plain.json.sort_keys, plain.json.ensure_ascii = False, False
    return plain


def _our_app(debug: bool = False) -> Flask:
    app = Flask("ours")
    app.json = OrjsonProvider(app)
    app.debug = debug
    return app


def test_compact_output_is_what_flasks_provider_writes_byte_for_byte():
    plain, app = _flask_app(), _our_app()
    theirs, ours = plain.json, app.json
    expected = theirs.dumps(SAMPLE, separators=(",", ":"))
    assert ours.dumps(SAMPLE, separators=(",", ":")) == expected
    assert ours.dumps(SAMPLE, indent=2) == theirs.dumps(SAMPLE, indent=2)
    assert json_bytes(SAMPLE) == expected.encode("utf-8")
    assert '"when":"Sat, 05 Dec 2026 08:30:00 GMT"' in expected and '"amount":"12.50"' in expected
    assert '"名称":"居民身份证"' in expected and '"5":"int key"' in expected


@pytest.mark.parametrize("debug", [False, True])
def test_a_response_is_flasks_response_in_production_and_in_debug(debug):
    ours, theirs = _our_app(debug), _flask_app(debug)
    with ours.app_context():
        mine = ours.json.response(SAMPLE)
    with theirs.app_context():
        reference = theirs.json.response(SAMPLE)
    assert mine.get_data() == reference.get_data() and mine.mimetype == reference.mimetype == "application/json"
    assert mine.get_data().endswith(b"\n") and (b"\n  " in mine.get_data()) is debug


def test_what_orjson_refuses_is_written_by_the_standard_library():
    big = {"n": 2 ** 70, "s": "甲"}
    assert json.loads(json_bytes(big)) == big
    assert json_bytes(big) == b'{"n":1180591620717411303424,"s":"\\u7532"}'
    lone = {"s": "\ud800"}
    assert json_bytes(lone) == b'{"s":"\\ud800"}'
    assert _our_app().json.dumps(big, separators=(",", ":")) == '{"n":1180591620717411303424,"s":"\\u7532"}'


def test_what_the_app_wrote_is_read_back_whichever_library_wrote_it():
    """A journal entry or a JSON column holding a lone surrogate was written by the standard library (orjson
    refuses it), and orjson refuses to read its escape too: the standard library reads it."""
    for value in ({"s": "甲", "at": 1764921600.25, "n": [1, None, True]}, {"s": "\ud800", "n": 1}):
        written = json_text(value, default=None)
        assert json_read(written) == json_read(written.encode()) == value
    with pytest.raises(ValueError):
        json_read("{not json")


def test_what_json_has_no_type_for_is_still_refused():
    with pytest.raises(TypeError):
        json_bytes({"x": object()})
    with pytest.raises(TypeError):
        json_text({"when": datetime(2026, 1, 1)}, default=None)  # journal entries and log lines convert nothing
    assert json_text({"at": 1764921600.25, "n": -1}, default=None) == '{"at":1764921600.25,"n":-1}'


def test_other_arguments_go_to_the_standard_library():
    app = _our_app()
    ours = app.json
    assert ours.dumps({"b": 1, "a": 2}) == '{"b": 1, "a": 2}'  # the standard library's default separators
    assert ours.dumps({"b": 1, "a": 2}, sort_keys=True, separators=(",", ":")) == '{"a":2,"b":1}'
    ours.ensure_ascii = True
    assert ours.dumps({"s": "甲"}, separators=(",", ":")) == '{"s":"\\u7532"}'
