"""Input no view can handle, refused before any view runs: app-wide (U+0000, a lone surrogate in JSON, JSON
nested too deeply) or on a blueprint whose ids and query values are never free text (control characters).
Free text in bodies is checked field by field (`schemas.common.printable`)."""
from __future__ import annotations

from flask import Blueprint, Flask, request

from schemas.common import CONTROL_CHARACTERS, CONTROL_MESSAGE

from .errors import BadRequest, NotFound, ValidationFailed

NUL_MESSAGE = "不能包含空字符（U+0000）"
SURROGATE_MESSAGE = "不能包含未配对的 UTF-16 代理字符（\\ud800–\\udfff）"


def _nul_fields(value) -> list[str]:
    return _fields_where(value, lambda text: "\x00" in text)


def _surrogate_fields(value) -> list[str]:
    """Where a parsed JSON document has a lone surrogate (JSON can spell one, UTF-8 cannot hold it)."""
    return _fields_where(value, lambda text: not text.isascii() and not _encodable(text))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fields_where(value, bad) -> list[str]:
    """Where a parsed JSON document has a key or string that is `bad`, as `a.b[0].c` paths (iteratively, so
    that deep nesting cannot exhaust the stack)."""
    found, stack = [], [("", value)]
    while stack and len(found) < 20:
        where, item = stack.pop()
        if isinstance(item, str):
            if bad(item):
                found.append(where or "body")
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if bad(str(key)):
                    found.append(name)
                else:
                    stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return sorted(found)


def init_input_guards(app: Flask) -> None:
    """Input no view can handle, refused before any view runs (each was a 500 before):
    - U+0000, which no field of this API takes and PostgreSQL cannot store in text: 404 in the
      path (no resource is named so), 422 naming the fields in the query, JSON body or form;
    - a lone UTF-16 surrogate spelt in a JSON body (`"\\ud800"`), which UTF-8 cannot hold: 422 naming the fields;
    - JSON nested too deeply for the parser (RecursionError): 400."""

    @app.before_request
    def _refuse_unusable_input():
        environ = request.environ
        if "\x00" in environ.get("PATH_INFO", ""):  # the same character in WSGI's latin-1 spelling of the path
            raise NotFound("请求的地址或资源不存在")
        query = environ.get("QUERY_STRING", "")
        fields, surrogates = [], []
        if "%00" in query or "\x00" in query:
            fields = sorted({key for key, value in request.args.items(multi=True) if "\x00" in key + value})
        if environ.get("CONTENT_LENGTH", "") not in ("", "0") or environ.get("HTTP_TRANSFER_ENCODING"):
            fields += _body_nul_fields()
            surrogates = _body_surrogate_fields() if request.is_json else []
        if fields:
            raise ValidationFailed("请求中包含不允许的空字符（U+0000）",
                                   errors={name.replace("\x00", "\\u0000"): [NUL_MESSAGE] for name in fields})
        if surrogates:
            raise ValidationFailed("请求中包含无法编码的字符",
                                   errors={_printable(name): [SURROGATE_MESSAGE] for name in surrogates})


def _body_nul_fields() -> list[str]:
    if request.is_json:
        try:
            document = request.get_json(silent=True)
        except RecursionError:  # json.loads on "[[[[..." (not a ValueError: it would be a 500)
            raise BadRequest("请求体的 JSON 嵌套层级过深") from None
        raw = request.get_data(cache=True)  # U+0000 is spelt \u0000 in UTF-8 JSON; UTF-16/32 bodies hold NUL bytes
        return _nul_fields(document) if b"\\u0000" in raw or b"\x00" in raw else []
    if request.mimetype == "application/x-www-form-urlencoded":
        return sorted({key for key, value in request.form.items(multi=True) if "\x00" in key + value})
    return []


def _body_surrogate_fields() -> list[str]:
    raw = request.get_data(cache=True)
    if b"\\ud" not in raw and b"\\uD" not in raw:  # JSON spells a surrogate as an escape only
        return []
    return _surrogate_fields(request.get_json(silent=True))


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_control_characters(value) -> bool:
    return isinstance(value, str) and CONTROL_CHARACTERS.search(value) is not None


def refuse_control_characters(blueprint: Blueprint) -> None:
    """On `blueprint`, ids in the path and query values never hold control characters (C0 or
    DEL): such a path names nothing (404), such a query value is invalid (422)."""

    @blueprint.before_request
    def _refuse_control_characters() -> None:
        if any(_has_control_characters(value) for value in (request.view_args or {}).values()):
            raise NotFound("请求的地址或资源不存在")
        bad = sorted({key for key, value in request.args.items(multi=True) if _has_control_characters(value)})
        if bad:
            raise ValidationFailed("查询参数包含不允许的控制字符", errors={key: [CONTROL_MESSAGE] for key in bad})
