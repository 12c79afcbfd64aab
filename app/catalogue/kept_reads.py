"""Catalogue reads (a search, a service's guide, the halls, topics and bundles) answered before the framework
when this worker has already rendered the same URL for the same channel at the catalogue version it serves.

The views key what they render by the raw path and query string and the caller's channel (`url_key`: none
without a token, the token's channel with one) and give it the ETag `etag(tag, channel, path, query)`; the
page server (`page_server.serve_kept`) looks the URL up here after bringing the index up to date, and answers
200 with the kept body, or 304 when If-None-Match names the ETag, with the view's headers. A caller with a
token has it checked as the view checks it (signature and expiry, then its revocation keys in one round trip
of the shared store, which the view reuses when the request goes on to it) and sees the channel the view
would show it; a token the view would refuse goes on to the view, which refuses it. Anything else (a client
id or signature, a body, a URL not rendered yet, another version) goes on to the view, which renders, counts
the search against the rate limit and keeps the answer. Only URLs the view answered are kept, so one the
input guard refuses (U+0000) is never found here. A kept answer cost no search, so it is not counted, as the
view does not count one."""
from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs

from flask import current_app
from werkzeug.http import parse_etags

from ..errors import ApiError
from ..extensions import store
from ..page_server import EARLY_READS, serve_kept
from ..security.rbac import bearer_token, principal_of
from ..security.signed_requests import is_signed
from ..security.tokens import revocation_keys, signed_claims
from . import region
from .index import fresh_index

MAX_AGE = 60
VARY = "Authorization, X-Client-Id"  # what decides the channel (a token, or a signed client's id)
SEARCH = "/api/v1/services"
LISTS = frozenset({SEARCH, "/api/v1/halls", "/api/v1/topics", "/api/v1/bundles"})  # path = rule
FOR_EVERYONE = re.compile(r"/api/v1/bundles(/[^/]+)?")  # reads whose views do not look at the caller
_ONE_OF = re.compile(r"/api/v1/(services|halls|bundles)/[^/]+")  # a service's guide, a hall, a bundle
REFUSED = object()  # a token the view refuses, or a store it reports unavailable: the view answers
_ENDPOINTS = "kept_read_endpoints"  # app.extensions: URL rule -> endpoint of its GET


def url_key(path: str, query: str, channel: str | None, city: str | None = None) -> tuple:
    """Where a body rendered for a caller who sees `channel` is kept (`CatalogueIndex.cached_response`), for a
    search answered for the caller's `city` (`region.search_city`)."""
    return ("url", channel, path, query, city)


def etag(tag: str, channel: str | None, path: str, query: str) -> str:
    """The weak ETag of a catalogue read: the version served, and a digest of the channel and URL."""
    digest = hashlib.blake2b(f"{channel}|{path}?{query}".encode(), digest_size=8).hexdigest()
    return f"{tag}-{digest}"


def for_city(etag_value: str, city: str | None) -> str:
    """The ETag of a search answered for the caller's city: one URL never answers 304 across cities."""
    return f"{etag_value}-{city}" if city else etag_value


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
    """(status line, headers, body) for a read of a path `rule_of` names that this worker has rendered for the
    caller's channel; None otherwise. Runs in the app's context."""
    path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
    if ("HTTP_X_CLIENT_ID" in environ or is_signed(environ)
            or environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ):
        return None  # (a body: the input guard's to check)
    token = bool(environ.get("HTTP_AUTHORIZATION"))  # (an empty header is no token, to the view too)
    caller = _caller(environ, path, query) if token and not FOR_EVERYONE.fullmatch(path) else (None, None)
    if caller is REFUSED:
        return None
    channel, city = caller
    kept = fresh_index().kept_response(url_key(path, query, channel, city))
    if kept is None:
        return None
    body, tag = kept
    etag_value = for_city(etag(tag, channel, path, query), city)
    headers = cache_headers(etag_value, private=token)
    if not_modified(environ.get("HTTP_IF_NONE_MATCH"), etag_value):
        return "304 NOT MODIFIED", headers, b""
    return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers], body


def _caller(environ, path: str, query: str):
    """(channel, city) the view answers the bearer of the request's token for: the token's channel (none for
    a family proxy's, as for no token) and, for a search, `region.search_city`. The token's revocation keys are
    read in one round trip and left in `environ` for the view; REFUSED when the view would refuse the token."""
    try:
        token = bearer_token(environ["HTTP_AUTHORIZATION"])
        wanted = revocation_keys(signed_claims(token))
        reads = environ[EARLY_READS] = dict(zip(wanted, store.get_many(*wanted)))
        principal = principal_of(token, endpoint=(_endpoint(rule_of(path)), "GET"), optional=True, read=reads)
    except ApiError:
        return REFUSED
    city = region.search_city(principal, _first_values(query)) if path == SEARCH else None
    return (principal.claims.get("channel") if principal is not None else None), city


def _first_values(query: str) -> dict[str, str]:
    """Each argument's first value, blank ones included, as the view's argument parser reads a query string."""
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}


def _endpoint(rule: str) -> str | None:
    endpoints = current_app.extensions.get(_ENDPOINTS)
    if endpoints is None:
        endpoints = current_app.extensions[_ENDPOINTS] = {
            item.rule: item.endpoint for item in current_app.url_map.iter_rules() if "GET" in item.methods}
    return endpoints.get(rule)


serve_kept(rule_of, answer)
