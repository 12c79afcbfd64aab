"""JSON out (responses, kept bodies, log lines, journal entries, JWS payloads, bulk JSON columns) through orjson, with the standard
library's output for what orjson refuses, and Flask's conversions (HTTP dates, Decimal, dataclasses) kept; and the
app's own JSON read back (`json_read`)."""
from __future__ import annotations

import json
from typing import Any, Callable

import orjson
from flask.json.provider import DefaultJSONProvider

# datetimes and dataclasses go to `default` (Flask's conversions), not to orjson's own formats
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_COMPACT = (",", ":")
flask_default: Callable[[Any], Any] = DefaultJSONProvider.default


def json_bytes(obj: Any, *, default: Callable[[Any], Any] | None = flask_default, indent: bool = False) -> bytes:
    """Compact UTF-8 JSON, keys unsorted and non-ASCII kept (`indent`: two spaces); `default` converts what
    JSON has no type for (None: nothing, a TypeError). What orjson refuses (an integer past 64 bits, a lone
    surrogate) is written by the standard library, non-ASCII escaped."""
    try:
        return orjson.dumps(obj, default=default, option=(_OPTIONS | orjson.OPT_INDENT_2) if indent else _OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(obj, default=default, indent=2 if indent else None,
                          separators=None if indent else _COMPACT).encode("ascii")


def json_text(obj: Any, *, default: Callable[[Any], Any] | None = flask_default) -> str:
    """`json_bytes` as text."""
    return json_bytes(obj, default=default).decode("utf-8")


def json_read(text: str | bytes) -> Any:
    """JSON the app wrote itself (journal entries, small JSON columns), read by orjson; by the standard library
    what orjson refuses (the `\\ud800` escape of a lone surrogate, which the standard library writes). Not for
    JSON that may hold integers past 64 bits: orjson reads them as floats."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class OrjsonProvider(DefaultJSONProvider):
    """The app's JSON provider: `json_bytes` for compact or two-space output with keys unsorted and non-ASCII
    kept (every response the app renders); the standard library's for any other arguments."""

    sort_keys = False
    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if self._plain() and kwargs in ({"separators": _COMPACT}, {"indent": 2}):  # what `response` passes
            return json_bytes(obj, default=self.default, indent="indent" in kwargs).decode("utf-8")
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any):
        if not self._plain():
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        pretty = (self.compact is None and self._app.debug) or self.compact is False
        return self._app.response_class(json_bytes(obj, default=self.default, indent=pretty) + b"\n",
                                        mimetype=self.mimetype)

    def _plain(self) -> bool:
        return not self.sort_keys and not self.ensure_ascii
