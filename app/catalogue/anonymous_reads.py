"""Anonymous catalogue reads (a search, a service's guide, the halls, topics and bundles) answered before the
framework when this worker has already rendered the same URL at the catalogue version it serves.

The views key what they render for an anonymous caller by the raw path and query string (`url_key`) and
give it the ETag `etag(tag, None, path, query)`; the page server (`page_server.serve_anonymous`) looks the
URL up here after bringing the index up to date, and answers 200 with the kept body, or 304 when
If-None-Match names the ETag, with the view's headers. Anything else (a token, a client id or signature,
a body, a URL not rendered yet, another version) goes on to the view, which renders, counts the search
against the rate limit and keeps the answer. Only URLs the view answered are kept, so one the input guard
refuses (U+0000) is never found here. A kept answer cost no search, so it is not counted, as the view does
not count one."""
from __future__ import annotations

import hashlib
import re

from werkzeug.http import parse_etags

from ..page_server import serve_anonymous
from ..security.signed_requests import is_signed
from .index import fresh_index

MAX_AGE = 60
VARY = "Authorization, X-Client-Id"  # what decides the channel (a token, or a signed client's id)
LISTS = frozenset({"/api/v1/services", "/api/v1/halls", "/api/v1/topics", "/api/v1/bundles"})  # path = rule
_ONE_OF = re.compile(r"/api/v1/(services|halls|bundles)/[^/]+")  # a service's guide, a hall, a bundle
ASKED_BY_SOMEONE = ("HTTP_AUTHORIZATION", "HTTP_X_CLIENT_ID")  # with a signature's headers (`is_signed`)


def url_key(path: str, query: str) -> tuple:
    """Where a body rendered for an anonymous caller is kept (`CatalogueIndex.cached_response`)."""
    return ("anonymous", path, query)


def etag(tag: str, channel: str | None, path: str, query: str) -> str:
    """The weak ETag of a catalogue read: the version served, and a digest of the channel and URL."""
    digest = hashlib.blake2b(f"{channel}|{path}?{query}".encode(), digest_size=8).hexdigest()
    return f"{tag}-{digest}"


def cache_headers(etag_value: str, *, private: bool) -> list[tuple[str, str]]:
    """Anonymous answers are the same for everyone: a CDN may keep them (`public`) for MAX_AGE and then
    revalidate with the ETag; a token's or a signed client's answer depends on its channel."""
    return [("ETag", f'W/"{etag_value}"'), ("Cache-Control", f"{'private' if private else 'public'}, max-age={MAX_AGE}"),
            ("Vary", VARY)]


def not_modified(condition: str | None, etag_value: str) -> bool:
    """Whether an If-None-Match header value names this ETag (weakly) or is `*`."""
    if not condition:
        return False
    tags = parse_etags(condition)
    return tags.star_tag or tags.contains_weak(etag_value)


def rule_of(path: str) -> str | None:
    """The URL rule of a catalogue read answered here (for metrics), or None for any other path."""
    if path in LISTS:
        return path
    one = _ONE_OF.fullmatch(path)
    return f"/api/v1/{one.group(1)}/<string:code>" if one else None


def answer(environ) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """(status line, headers, body) for an anonymous read of a path `rule_of` names that this worker has
    rendered; None otherwise. Runs in the app's context."""
    path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
    if (any(name in environ for name in ASKED_BY_SOMEONE) or is_signed(environ)
            or environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ):
        return None  # (a body: the input guard's to check)
    kept = fresh_index().kept_response(url_key(path, query))
    if kept is None:
        return None
    body, tag = kept
    etag_value = etag(tag, None, path, query)
    headers = cache_headers(etag_value, private=False)
    if not_modified(environ.get("HTTP_IF_NONE_MATCH"), etag_value):
        return "304 NOT MODIFIED", headers, b""
    return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers], body


serve_anonymous(rule_of, answer)
