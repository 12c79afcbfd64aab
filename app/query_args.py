"""Query-string arguments validated once per worker for each distinct query string (webargs parser)."""
from __future__ import annotations

import copy
import functools

from flask import request
from marshmallow import Schema
from webargs.flaskparser import FlaskParser

QUERY_LOCATIONS = frozenset({"query", "querystring"})
MEMO_ENTRIES = 256  # popular query strings (the search result cache keeps about a hundred pages); under 1 kB each
MEMO_MAX_QUERY_BYTES = 512  # longer query strings are validated every time (and not kept)


class MemoQueryParser(FlaskParser):
    """webargs' Flask parser that remembers what a query string validated to.

    Query arguments are a pure function of the schema and the raw query string (no query schema here
    reads the clock, the caller or the database), so the answer of a popular search or page is
    reused instead of running marshmallow again: the largest part of a cached catalogue read. Bodies,
    schema factories and invalid query strings (the 422 names the field, every time) go the usual way.
    Each call gets its own dict, so a view may change what it is handed.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._validated = functools.lru_cache(maxsize=MEMO_ENTRIES)(self._validate_query)

    def parse(self, argmap, req=None, *, location=None, unknown="_default", **options):
        memo = location in QUERY_LOCATIONS and isinstance(argmap, Schema) and not any(options.values())
        raw = (request if req is None else req).query_string if memo else b""
        if not memo or len(raw) > MEMO_MAX_QUERY_BYTES:
            return super().parse(argmap, req, location=location, unknown=unknown, **options)
        return {name: copy.deepcopy(value) if isinstance(value, (list, dict, set)) else value
                for name, value in self._validated(argmap, location, unknown, raw)}

    def _validate_query(self, schema: Schema, location: str, unknown: str | None, raw: bytes) -> tuple:
        """The validated arguments of the current request's query string `raw` (raises on invalid
        input, which lru_cache does not keep)."""
        return tuple(super().parse(schema, location=location, unknown=unknown).items())
