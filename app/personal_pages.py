"""A person's first page of a personal list (the wallet, the applications, the inbox) kept rendered in
the shared store while nothing it shows has changed.

Opening the app shows these lists, and most openings find them as they were. A person's own first
page (no query arguments) is kept under `<kind>:page:<subject>`, compressed (the three pages of a
person with 3 licenses, 3 applications and 20 notices: 2.2 KB in Redis for 8.4 KB of JSON) and sealed
like any personal data at rest (AES-GCM bound to the kind, the subject and the tag), tagged with the
person's version of that list, the generation of the reference data it shows (license-type names) and
the day (expiry and overdue flags turn at midnight). `keys(kind, subject)` are read in the round trip
that checks the token (`app.page_server`, else `auth_reading`); a kept page whose tag matches is the
answer, with no database statement.

Versions are random and never reused. After a commit that changed rows a list shows (the domains
`watch` their models: a license, an application, a notice, the person's index or active flag; Core
statements call `changed`) the person's version is deleted; after a commit that changed reference
data, the generation (`watch_reference`). A reader finding no version claims a new one (SET NX)
before it reads the database, so every page is tagged with a version that existed before its rows
were read: a page read before a commit carries a version that commit deleted and is never served
again, whichever of the reader and the writer finishes first. The inbox also shows what the journal
writes behind the answers: its view catches up with the journal's entries that name the person among
their readers (`journal.pending_mark`) before it reads the versions, and the journal deletes a version
(after its commit) before it drops the entries it wrote and their marks. Misses read
the primary, never a replica that may lag behind the version. A version the writer could not delete
(the store unreachable just then) leaves an old page for at most PAGE_TTL.
"""
from __future__ import annotations

import logging
import secrets
import zlib
from dataclasses import dataclass
from itertools import chain

from flask import Response, request
from prometheus_client import Counter
from sqlalchemy import event, inspect

from .db_routing import RoutingSession, read_primary
from .extensions import db, store
from .identity.models import Person
from .json_output import json_text
from .security.ciphers import pii_cipher
from .security.pii import PiiDecryptError
from .store import StoreUnavailable
from .timeutil import beijing_today

logger = logging.getLogger("app.pages")

PAGE_TTL = 3600
VERSION_TTL = 2 * PAGE_TTL  # a version outliving its pages only costs Redis memory
NO_GENERATION = "-"
_CHANGED = "personal_pages_changed"
_PERSON_COLUMNS = ("id_number_index", "active")
_WATCHED: list[tuple[type, tuple[str, ...], object]] = []  # (model, kinds, subjects_of(session, rows))
_GENERATIONS: dict[str, str] = {}  # kind -> key of its reference data's generation
_REFERENCE: dict[type, str] = {}  # model -> kind whose generation it moves
OPENINGS = Counter("personal_page_openings_total", "Openings of a person's first page of a list: the kept page "
                   "answered (no SQL) or the database read", ["kind", "outcome"])


def version_key(kind: str, subject_id: str) -> str:
    return f"{kind}:version:{subject_id}"


def page_key(kind: str, subject_id: str) -> str:
    return f"{kind}:page:{subject_id}"


def keys(kind: str, subject_id: str) -> list[str]:
    """What a person's opening reads with the token: their version, the generation, the kept page."""
    generation = [_GENERATIONS[kind]] if kind in _GENERATIONS else []
    return [version_key(kind, subject_id), *generation, page_key(kind, subject_id)]


def own_list(claims: dict) -> bool:
    """Whether the token is a person's acting for nobody else: the only caller a kept page is for."""
    return claims.get("sub_type", "person") == "person" and not claims.get("act")


def opening_keys(kind: str, claims: dict) -> list[str]:
    """`keys` when the request opens the caller's own first page (`own_list`, no query arguments);
    else none (the page is read the usual way)."""
    if not own_list(claims) or request.args:
        return []
    return keys(kind, claims["sub"])


def watch(model: type, kinds: tuple[str, ...], subjects_of) -> None:
    """Rows of `model` flushed change the `kinds` lists of `subjects_of(session, rows)` (a set of subject ids)."""
    _WATCHED.append((model, kinds, subjects_of))


def watch_reference(model: type, kind: str) -> None:
    """Rows of `model` flushed change every page of `kind` (its generation)."""
    _GENERATIONS[kind] = f"{kind}:generation"
    _REFERENCE[model] = kind


def subjects_in(column: str):
    """`watch`'s `subjects_of` for rows that name their person in `column` (before or after the flush)."""
    return lambda _session, rows: set().union(*(values_of(row, column) for row in rows))


def changed(kind: str, subject_ids) -> None:
    """Rows of `kind` changed by a statement the ORM does not see (a Core insert or update) for these
    persons, in the open transaction: their pages go after it commits."""
    db.session.info.setdefault(_CHANGED, set()).update(
        key for subject in subject_ids for key in (version_key(kind, subject), page_key(kind, subject)))


def values_of(row, name: str) -> set:
    """An attribute's values before and after the flush under way (loaded if it was not)."""
    history = inspect(row).attrs[name].history
    values = set(chain(history.unchanged or (), history.added or (), history.deleted or ()))
    return {value for value in values or {getattr(row, name)} if value}


@dataclass
class Opening:
    """A person opening their first page: the kept body when its tag matches, else how to keep one."""

    kind: str
    subject_id: str
    version: str | None
    generation: str | None
    body: bytes | None = None

    @classmethod
    def read(cls, kind: str, subject_id: str, reads: dict) -> Opening:
        generation = reads.get(_GENERATIONS[kind]) if kind in _GENERATIONS else NO_GENERATION
        opening = cls(kind, subject_id, reads.get(version_key(kind, subject_id)), generation)
        head, _, sealed = (reads.get(page_key(kind, subject_id)) or "").partition("\n")
        if opening.version and opening.generation and head == opening.tag():
            try:
                opening.body = zlib.decompress(pii_cipher().decrypt_bytes(sealed, context=opening._context()))
            except (PiiDecryptError, zlib.error):
                logger.warning("%s page of %s could not be opened: read from the database", kind, subject_id)
        return opening

    def _context(self) -> str:
        return f"{self.kind}-page:{self.subject_id}:{self.tag()}"

    def tag(self) -> str:
        return f"{self.version}|{self.generation}|{beijing_today().isoformat()}"

    def claim(self) -> bool:
        """Before the rows are read: a version and a generation to tag the page with (claimed when
        absent); False when another reader or a writer got there first (nothing is kept this time)."""
        try:
            self.version = self.version or _claimed(version_key(self.kind, self.subject_id))
            self.generation = self.generation or _claimed(_GENERATIONS[self.kind])
        except StoreUnavailable:
            return False
        read_primary(db.session)
        return bool(self.version and self.generation)

    def keep(self, body: str) -> None:
        try:
            sealed = pii_cipher().encrypt_bytes(zlib.compress(body.encode(), 1), context=self._context())
            store.set(page_key(self.kind, self.subject_id), f"{self.tag()}\n{sealed}", PAGE_TTL)
        except StoreUnavailable:
            logger.warning("%s page of %s not kept: shared store unavailable", self.kind, self.subject_id)


def opened(kind: str, subject_id: str, reads: dict, *, read_page, schema, fresh: bool = True):
    """The person's first page: the kept one when its tag matches (and `fresh`: nothing is due that
    would change it), else `read_page()`, kept when a version could be claimed before reading it."""
    opening = Opening.read(kind, subject_id, reads)
    if opening.body is not None and fresh:
        count_opening(kind, "kept")
        return Response(opening.body, status=200, mimetype="application/json")
    count_opening(kind, "read")
    keeping = opening.claim()
    page = read_page()
    if not keeping:
        return page
    body = json_text(schema.dump(page))
    opening.keep(body)
    return Response(body, status=200, mimetype="application/json")


def count_opening(kind: str, outcome: str) -> None:
    """One more opening of `kind` answered from its kept page ("kept") or from the database ("read")."""
    OPENINGS.labels(kind, outcome).inc()


def _claimed(key: str) -> str | None:
    value = secrets.token_hex(8)
    return value if store.set_if_absent(key, value, VERSION_TTL) else None


def _changed_persons(session, persons) -> set[str]:
    return {person.subject_id for person in persons if person in session.new or person in session.deleted or any(
        inspect(person).attrs[name].history.has_changes() for name in _PERSON_COLUMNS)}


@event.listens_for(RoutingSession, "after_flush")
def _flushed(session, _flush_context):
    rows = list(chain(session.new, session.dirty, session.deleted))
    stale = set()
    for model, kinds, subjects_of in _WATCHED:
        flushed = [row for row in rows if isinstance(row, model)]
        if flushed:
            stale.update(key for subject in subjects_of(session, flushed) for kind in kinds
                         for key in (version_key(kind, subject), page_key(kind, subject)))
    stale.update(_GENERATIONS[kind] for model, kind in _REFERENCE.items()
                 if any(isinstance(row, model) for row in rows))
    if stale:
        session.info.setdefault(_CHANGED, set()).update(stale)


@event.listens_for(RoutingSession, "after_commit")
def _committed(session):
    stale = session.info.pop(_CHANGED, None)
    if not stale:
        return
    try:
        store.delete(*stale)
    except StoreUnavailable:
        logger.warning("personal pages may show old rows for up to %d s: shared store unavailable (%d keys)",
                       PAGE_TTL, len(stale))


@event.listens_for(RoutingSession, "after_rollback")
def _rolled_back(session):
    session.info.pop(_CHANGED, None)


watch(Person, ("wallet", "applications", "inbox"), _changed_persons)
