"""The daily path answered before the framework.

Kept personal pages: a person opening their wallet, applications or inbox with nothing else to do (GET,
no query, no body, a bearer token, no request signature) gets the page kept for them (`personal_pages`)
after the same token checks, from the one round trip that reads the token's revocation keys with the
page. A page not kept or not fresh goes on to Flask with the values already read (`early_reads`, taken by
`rbac.auth_reading` and the inbox view), so a miss costs no second round trip.

Common JSON posts (`EarlyPost`: the token refresh, a code's verification): a small unsigned JSON body of exactly the common form
is answered by the domain's own functions; any other form goes on to Flask untouched, and an error is
answered by the app's error handlers, as the view's would be.

Kept reads (`serve_kept`: a catalogue search or guide this worker has rendered for the caller's channel at
the version it serves) are answered from what the view kept, with its headers, 304 included.

Anything else goes on to Flask, which answers as it always did (a refused token's 401 included)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import orjson
from flask import g

from .errors import ApiError
from .observability import ENDPOINT_KEY, REQUEST_ID_KEY
from .security.signed_requests import is_signed

EARLY_READS = "ias.early_reads"  # WSGI environ key: what the page server read (a client cannot set it)


@dataclass(frozen=True)
class EarlyPage:
    """A personal list whose kept first page may be answered early: its endpoint, its `personal_pages`
    kind, the keys its view reads with the token (`extra_keys(subject)`), whether those values let the
    kept page be shown (`fresh(subject, values)`), and whether the journal must be written first."""

    endpoint: str
    kind: str
    extra_keys: Callable[[str], list[str]] = lambda subject_id: []
    fresh: Callable[[str, dict], bool] = lambda subject_id, reads: True
    after_journal: bool = False


@dataclass(frozen=True)
class EarlyPost:
    """A JSON POST whose common form is answered early: `answer(environ, document)` returns the 200 body
    (sent with `headers`), or None to pass the request on to the view; it returns None only before doing
    anything the view would do again, or after marking in `environ` what it did. An exception it raises
    is answered by the app's error handlers. It runs in the app's context, not a request's (no `request`)."""

    endpoint: str
    answer: Callable[[dict, dict], bytes | None]
    headers: tuple[tuple[str, str], ...] = ()


MAX_EARLY_BODY = 4096
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))  # what a token or a verification answer carries
JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_PAGES: dict[str, EarlyPage] = {}
_POSTS: dict[str, EarlyPost] = {}
_KEPT: list[tuple[Callable[[str], str | None], Callable[[dict], tuple[str, list, bytes] | None]]] = []


def serve_early(page: EarlyPage) -> None:
    """Answer `page.endpoint`'s plain openings from the kept page (the view stays the answer otherwise)."""
    _PAGES[page.endpoint] = page


def answer_early(post: EarlyPost) -> None:
    """Answer `post.endpoint`'s common JSON posts with `post.answer` (the view answers the rest)."""
    _POSTS[post.endpoint] = post


def serve_kept(rule_of: Callable[[str], str | None], answer: Callable[[dict], tuple[str, list, bytes] | None]) -> None:
    """Answer GETs to the paths `rule_of(path)` names a URL rule for (the label metrics count
    them under) with `answer(environ)`, run in the app's context: (status line, headers, body), or None to
    pass the request on."""
    _KEPT.append((rule_of, answer))


def early_reads(environ, wanted: list[str]) -> dict | None:
    """What the page server read for this request, when it holds every key `wanted` (else None). For a
    page read after the journal (the inbox), the values were read once the person's entries were written."""
    reads = environ.get(EARLY_READS)
    return reads if reads is not None and all(key in reads for key in wanted) else None


class PageServer:
    """WSGI middleware between the request finisher (request id, headers, metrics, access log) and Flask."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self._paths: dict[tuple[str, str], EarlyPage | EarlyPost] | None = None  # (method, plain path) -> route

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            answered = self._kept(environ, start_response)
            if answered is not None:
                return answered
        route = self._routes().get((method, environ.get("PATH_INFO", ""))) if method in ("GET", "POST") else None
        if route is None or environ.get("QUERY_STRING") or "HTTP_TRANSFER_ENCODING" in environ or is_signed(environ):
            return self.wsgi_app(environ, start_response)
        if method == "GET":
            body, headers = self._opening(route, environ), ()
        else:
            document = _json_document(environ)
            if document is None:
                return self.wsgi_app(environ, start_response)
            try:
                with self.app.app_context():
                    g.request_id = environ.get(REQUEST_ID_KEY)  # as the framework's first hook sets it
                    body, headers = route.answer(environ, document), route.headers
            except Exception as exc:  # noqa: BLE001 - answered as the framework answers it
                return self._error(environ, start_response, exc)
        if body is None:
            return self.wsgi_app(environ, start_response)
        environ[ENDPOINT_KEY] = environ["PATH_INFO"]  # the rule: these rules have no arguments
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
        return [body]

    def _kept(self, environ, start_response) -> list[bytes] | None:
        """The answer of the first `serve_kept` reader whose rule names the path, or None."""
        for rule_of, answer in _KEPT:
            rule = rule_of(environ.get("PATH_INFO", ""))
            if rule is None:
                continue
            try:
                with self.app.app_context():
                    found = answer(environ)
            except Exception as exc:  # noqa: BLE001 - answered as the framework answers it
                return self._error(environ, start_response, exc)
            if found is None:
                return None
            status, headers, body = found
            environ[ENDPOINT_KEY] = rule
            start_response(status, headers)
            return [body]
        return None

    def _opening(self, page: EarlyPage, environ) -> bytes | None:
        if (environ.get("CONTENT_LENGTH", "0") not in ("", "0")
                or not environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")):
            return None
        with self.app.app_context():
            return self._kept_body(page, environ)

    def _error(self, environ, start_response, exc: Exception):
        """The response the app's error handlers give `exc` (the view's errors are answered so too)."""
        with self.app.request_context(environ):
            g.request_id = environ.get(REQUEST_ID_KEY)
            environ[ENDPOINT_KEY] = environ["PATH_INFO"]
            response = self.app.make_response(self.app.handle_user_exception(exc))
        return response(environ, start_response)

    def _routes(self) -> dict[tuple[str, str], EarlyPage | EarlyPost]:
        if self._paths is None:
            rules = [rule for rule in self.app.url_map.iter_rules() if not rule.arguments]  # finishes the set-up
            self._paths = {("GET", rule.rule): _PAGES[rule.endpoint] for rule in rules
                           if rule.endpoint in _PAGES and "GET" in rule.methods}
            self._paths.update({("POST", rule.rule): _POSTS[rule.endpoint] for rule in rules
                                if rule.endpoint in _POSTS and "POST" in rule.methods})
        return self._paths

    @staticmethod
    def _kept_body(page: EarlyPage, environ) -> bytes | None:
        from . import personal_pages
        from .extensions import store
        from . import journal
        from .security.tokens import revocation_keys, revocation_problem, signed_claims
        try:
            claims = signed_claims(environ["HTTP_AUTHORIZATION"][7:].strip())
            if not personal_pages.own_list(claims):
                return None
            subject = claims["sub"]
            wanted = [*revocation_keys(claims), *page.extra_keys(subject), *personal_pages.keys(page.kind, subject)]
            if page.after_journal:
                written, values = store.get_many_after_journal(journal.lists(rotations=False), wanted,
                                                               mark=journal.pending_mark(subject))
                if not written:
                    return None
            else:
                values = store.get_many(*wanted)
        except ApiError:  # a token the framework will refuse, a store it will report unavailable
            return None
        reads = dict(zip(wanted, values))
        if revocation_problem(claims, reads):
            return None
        environ[EARLY_READS] = reads
        if not page.fresh(subject, reads):
            return None
        body = personal_pages.Opening.read(page.kind, subject, reads).body
        if body is not None:
            personal_pages.count_opening(page.kind, "kept")
        return body


def _json_document(environ) -> dict | None:
    """A small JSON object body, read once and put back for the view; None for any other body."""
    if environ.get("CONTENT_TYPE", "").lower() not in JSON_TYPES:
        return None
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit() or not 0 < int(length) <= MAX_EARLY_BODY:
        return None
    raw = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    if b"\\u0000" in raw or b"\x00" in raw:  # the input guard's to refuse
        return None
    # what orjson refuses (NaN, a lone surrogate) goes to the view's parser; the common forms hold only text
    # and booleans, so a number it reads as a float (past 64 bits) is no common form either
    try:
        document = orjson.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
