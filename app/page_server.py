"""Kept personal pages answered before the framework: a person opening their wallet, applications or
inbox with nothing else to do (GET, no query, no body, a bearer token, no request signature) gets
the page kept for them (`personal_pages`) after the same token checks, from the one round trip that
reads the token's revocation keys with the page. Anything else goes on to Flask, which answers as it
always did (a refused token's 401 included); a page not kept or not fresh goes on with the values
already read (`early_reads`, taken by `rbac.auth_reading` and the inbox view), so a miss costs no second
round trip."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import ApiError
from .observability import ENDPOINT_KEY
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


_PAGES: dict[str, EarlyPage] = {}


def serve_early(page: EarlyPage) -> None:
    """Answer `page.endpoint`'s plain openings from the kept page (the view stays the answer otherwise)."""
    _PAGES[page.endpoint] = page


def early_reads(environ, wanted: list[str]) -> dict | None:
    """What the page server read for this request, when it holds every key `wanted` (else None). For a
    page read after the journal (the inbox), the values were read after it was found empty."""
    reads = environ.get(EARLY_READS)
    return reads if reads is not None and all(key in reads for key in wanted) else None


class PageServer:
    """WSGI middleware between the request finisher (request id, headers, metrics, access log) and Flask."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self._paths: dict[str, EarlyPage] | None = None  # rule (a plain path) -> page

    def __call__(self, environ, start_response):
        page = self._plain_opening(environ)
        if page is not None:
            with self.app.app_context():
                body = self._kept_body(page, environ)
            if body is not None:
                environ[ENDPOINT_KEY] = environ["PATH_INFO"]  # the rule: these rules have no arguments
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
        return self.wsgi_app(environ, start_response)

    def _plain_opening(self, environ) -> EarlyPage | None:
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING")
                or environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ
                or not environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")
                or is_signed(environ)):
            return None
        return self._routes().get(environ.get("PATH_INFO", ""))

    def _routes(self) -> dict[str, EarlyPage]:
        if self._paths is None:
            rules = self.app.url_map.iter_rules()  # finishes the deferred blueprint set-up first
            self._paths = {rule.rule: _PAGES[rule.endpoint] for rule in rules
                           if rule.endpoint in _PAGES and "GET" in rule.methods and not rule.arguments}
        return self._paths

    @staticmethod
    def _kept_body(page: EarlyPage, environ) -> bytes | None:
        from . import personal_pages
        from .extensions import store
        from .journal import JOURNAL
        from .security.tokens import revocation_keys, revocation_problem, signed_claims
        try:
            claims = signed_claims(environ["HTTP_AUTHORIZATION"][7:].strip())
            if not personal_pages.own_list(claims):
                return None
            subject = claims["sub"]
            wanted = [*revocation_keys(claims), *page.extra_keys(subject), *personal_pages.keys(page.kind, subject)]
            if page.after_journal:
                written, values = store.get_many_after_journal(JOURNAL, wanted)
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
