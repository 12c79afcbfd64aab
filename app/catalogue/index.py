"""The catalogue's search index in each worker process, kept in step with the database.

One `CatalogueIndex` per app (per worker process) wraps a `SearchIndex` built lazily from the
published services on the first read. Every catalogue write, in its own transaction, increments
`catalogue_state.version` and stamps the changed rows' `change_seq` with it; bulk loads (seed,
`catalogue generate`) increment `epoch` instead. After the commit the writer increments a change
counter in the shared store (`store.incr`) and applies the change to its own index at once.

Before a read a worker compares the store's counter with the one it saw last (one GET, at most
every `CATALOGUE_CHECK_INTERVAL` seconds: 1 by default, 0 for every request; a Redis round trip
costs about as much as a whole cached search, so the default keeps the search path lean); when it
moved (or every `CATALOGUE_SYNC_INTERVAL` seconds at the latest, which also covers a missed or
reset counter), it reads `catalogue_state` and either applies the rows changed since its version
(`change_seq > version`) or, after a bulk load, rebuilds (in the request that notices it: about
1 s per 24,000 services). The worker that wrote follows at once.

When the store cannot be reached the worker logs a warning, stops asking it for
`CATALOGUE_STORE_RETRY` seconds and keeps serving its current index, polling the database at the
sync interval instead; when the database cannot be reached either, it serves what it has.

Channels: a doc's `channels` holds every combination of the channels it is exposed to ("wechat",
"app+wechat", ...), so one OR-filter value of the search engine can require several channels at
once (a WeChat user asking for `channel=alipay` sees services exposed to both); `exposed` keeps the
plain list for output.

List items are served from the index's in-memory docs, so a search costs no database query.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, Iterable

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import Text, cast, select
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db, store
from ..store import StoreUnavailable
from .models import STATE_ID, CatalogueState, Hall, Service
if TYPE_CHECKING:  # the search engine (jieba, pypinyin, numpy) is imported when an index is built
    from .search import SearchIndex, SearchResult

logger = logging.getLogger("app.catalogue.index")

VERSION_KEY = "catalogue:changes"
VERSION_KEY_TTL = 400 * 24 * 3600
CHANNEL_ORDER = ("app", "wechat", "alipay")
FACETS = ("hall", "audience", "topic", "item_type")
FACET_LIMIT = 200  # every one of the 1+16+136 halls; generated service points (thousands) are cut to the top
INCREMENTAL_LIMIT = 5000  # more changed rows than this: rebuild instead
RESPONSE_CACHE_BYTES = 2 * 1024 * 1024  # rendered pages and details a worker keeps per catalogue version
_UNSEEN = object()

# the columns a list item needs (the detail comes from the database); JSON ones are read as text and
# parsed once per distinct value, since hundreds of thousands of rows repeat a few thousand values
_T = Service.__table__.c
_JSON_COLUMNS = ("aliases", "channels", "topics")
DOC_COLUMNS = tuple(cast(_T[name], Text()).label(name) if name in _JSON_COLUMNS else _T[name] for name in (
    "code", "base_code", "name", "aliases", "hall_code", "department", "audience", "item_type", "online_depth",
    "channels", "topics", "high_frequency_rank", "popularity", "promised_limit_days", "instant_approval"))


@dataclass(frozen=True)
class HallInfo:
    code: str
    name: str
    full_name: str
    level: str
    parent_code: str | None
    address: str | None


def channel_token(channels: Iterable[str]) -> str:
    """Filter value meaning "exposed to every one of `channels`" (e.g. "app+wechat")."""
    wanted = set(channels)
    return "+".join(c for c in CHANNEL_ORDER if c in wanted) + "".join(
        sorted("+" + c for c in wanted if c not in CHANNEL_ORDER))


def _channel_tokens(channels: Iterable[str]) -> tuple[str, ...]:
    """Every non-empty combination of a service's channels, so that one OR-filter value can
    require several channels at once (a WeChat user filtering by `channel=alipay`)."""
    present = [c for c in CHANNEL_ORDER if c in set(channels)] + sorted(set(channels) - set(CHANNEL_ORDER))
    return tuple(channel_token(combo) for size in range(1, len(present) + 1)
                 for combo in combinations(present, size))


class _Interner:
    """Parse and share the values docs repeat: JSON lists as tuples, channel combinations, strings."""

    def __init__(self) -> None:
        self._json: dict[str, tuple] = {}
        self._tokens: dict[tuple, tuple] = {}

    def json(self, raw) -> tuple:
        if raw is None:
            return ()
        if not isinstance(raw, str):  # a driver that hands back parsed JSON
            raw = json.dumps(raw, ensure_ascii=False)
        value = self._json.get(raw)
        if value is None:
            parsed = json.loads(raw)
            value = self._json[raw] = tuple(parsed) if isinstance(parsed, list) else ()
        return value

    def tokens(self, channels: tuple) -> tuple:
        value = self._tokens.get(channels)
        if value is None:
            value = self._tokens[channels] = _channel_tokens(channels)
        return value


# List item keys, in output order (ServiceSchema documents them; test_catalogue_service checks they agree).
LIST_KEYS = ("code", "base_code", "name", "hall_code", "hall_name", "department", "audience", "item_type",
             "online_depth", "channels", "high_frequency", "topics", "promised_limit_days", "instant_approval",
             "hall_count")


def list_item(doc: dict, *, hall_count: int | None = None) -> dict:
    """The list representation of one indexed service (see schemas.catalogue.ServiceSchema)."""
    return {"code": doc["code"], "base_code": doc["base_code"], "name": doc["name"], "hall_code": doc["hall_code"],
            "hall_name": doc["hall_name"], "department": doc["department"], "audience": doc["audience"],
            "item_type": doc["item_type"], "online_depth": doc["online_depth"], "channels": doc["exposed"],
            "high_frequency": doc["high_frequency"], "topics": doc["topics"],
            "promised_limit_days": doc["promised_limit_days"], "instant_approval": doc["instant_approval"],
            "hall_count": hall_count}


class CatalogueIndex:
    """One worker's search index, the halls it names, and a small cache of rendered responses."""

    def __init__(self, *, sync_interval: float = 5.0, store_retry: float = 5.0, check_interval: float = 1.0) -> None:
        self.sync_interval = sync_interval
        self.store_retry = store_retry
        self.check_interval = check_interval
        self._checked_store_at = 0.0
        self.search_index: SearchIndex | None = None
        self.halls: dict[str, HallInfo] = {}
        self.epoch: int | None = None
        self.version = -1
        self._build_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._token: Any = _UNSEEN
        self._checked_db_at = 0.0
        self._store_down_until = 0.0
        self._responses: OrderedDict[tuple, bytes] = OrderedDict()  # rendered bodies, least recently used first
        self._response_bytes = 0
        self._derived: dict[tuple, Any] = {}  # a few values per channel (hall tree and counts, topic names)
        self._responses_tag: str | None = None
        self._responses_lock = threading.Lock()

    # ------------------------------------------------------------------ freshness

    @property
    def tag(self) -> str:
        """The catalogue version this worker serves ("epoch.version"), for ETags and caches."""
        return f"{self.epoch}.{self.version}"

    def fresh(self) -> "CatalogueIndex":
        """Make sure the index exists and follows the latest catalogue version; returns self."""
        if self.search_index is None:
            with self._build_lock:
                if self.search_index is None:
                    self._token = self._read_token()
                    self._build()
                    return self
        token = self._read_token()
        now = time.monotonic()
        due = now - self._checked_db_at >= self.sync_interval
        if (token is not _UNSEEN and token != self._token) or due:
            # one thread syncs; the others keep serving the current index meanwhile
            if self._sync_lock.acquire(blocking=False):
                try:
                    self._sync()
                    if token is not _UNSEEN:
                        self._token = token
                finally:
                    self._sync_lock.release()
        return self

    def _read_token(self):
        """The store's change counter; _UNSEEN when not asked this time or the store is down."""
        now = time.monotonic()
        if now < self._store_down_until or now - self._checked_store_at < self.check_interval:
            return _UNSEEN
        self._checked_store_at = now
        try:
            return store.get(VERSION_KEY)
        except StoreUnavailable:
            self._store_down_until = now + self.store_retry
            logger.warning("catalogue: shared store unavailable; serving the current index and polling "
                           "the database every %ss", self.sync_interval)
            return _UNSEEN

    def changed(self) -> None:
        """After a committed catalogue write: tell the other workers, and follow at once here."""
        try:
            self._token = str(store.incr(VERSION_KEY, VERSION_KEY_TTL))
        except StoreUnavailable:
            logger.warning("catalogue: could not signal the change through the shared store; other workers "
                           "will see it within %ss", self.sync_interval)
        if self.search_index is not None:
            with self._sync_lock:
                self._sync()

    def _sync(self) -> None:
        self._checked_db_at = time.monotonic()
        try:
            state = _read_state()
            if state.epoch != self.epoch:
                self._build()
            elif state.version > self.version:
                self._apply_changes(state.version)
        except SQLAlchemyError:
            db.session.rollback()
            logger.warning("catalogue: database unavailable; serving the current index", exc_info=True)

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        from .search import SearchIndex
        from .search.columns import ItemColumns
        started = time.perf_counter()
        try:
            state = _read_state()
            halls = {h.code: HallInfo(h.code, h.name, h.full_name, h.level, h.parent_code, h.address)
                     for h in db.session.execute(select(Hall)).scalars()}
            intern, docs = _Interner(), ItemColumns(searchable=False)  # no dict per service survives the build
            for rows in _published_rows().partitions(5000):
                for row in rows:
                    docs.append(_doc(row, halls, intern))
        except SQLAlchemyError:
            db.session.rollback()
            if self.search_index is not None:
                logger.warning("catalogue: database unavailable; serving the current index", exc_info=True)
                return
            raise
        loaded = time.perf_counter()
        index = SearchIndex(docs)
        self.search_index, self.halls = index, halls
        self.epoch, self.version = state.epoch, state.version
        self._checked_db_at = time.monotonic()
        logger.info("catalogue: index built with %d services in %.2fs (%.2fs loading; version %s)", len(index),
                    time.perf_counter() - started, loaded - started, self.tag)

    def _apply_changes(self, version: int) -> None:
        rows = db.session.connection().execute(
            select(*DOC_COLUMNS, _T.status, _T.change_seq)
            .where(_T.change_seq > self.version).limit(INCREMENTAL_LIMIT + 1)).all()
        if len(rows) > INCREMENTAL_LIMIT:
            self._build()
            return
        index, intern = self.search_index, _Interner()
        for row in rows:
            if row.status == "published":
                index.add_or_replace(_doc(row, self.halls, intern))
            else:
                index.remove(row.code)
        self.version = max([version] + [row.change_seq for row in rows])

    # ------------------------------------------------------------------ reading

    def search(self, *, q: str | None = None, filters: dict | None = None, page: int = 1,
               page_size: int = 20, facets: tuple[str, ...] = FACETS,
               facet_limit: int | None = FACET_LIMIT, collapse: bool = False,
               prefer: tuple[tuple[str, ...], ...] = ()) -> SearchResult:
        return self.search_index.search(q or None, filters=filters or None, page=page, page_size=page_size,
                                        facet_fields=facets, facet_limit=facet_limit, collapse=collapse,
                                        prefer=prefer)

    def doc(self, code: str) -> dict | None:
        return self.search_index.get(code)

    def hall_counts(self, channel: str | None = None) -> dict[str, int]:
        """Published services per hall code (only those exposed to `channel` when given)."""
        def count() -> dict[str, int]:
            filters = {"channel": channel_token([channel])} if channel else None
            result = self.search(filters=filters, page_size=1, facets=("hall",), facet_limit=None)
            return {entry["value"]: entry["count"] for entry in result.facets["hall"]}

        return self.cached_response(("hall_counts", channel), count)

    def cached_response(self, key: tuple, build):
        """A value rendered for this catalogue version, built once per key and version. Rendered bodies
        (bytes) share a budget of `RESPONSE_CACHE_BYTES`, the least recently used leaving first; other
        values (one per channel at most) stay for the version, so a flood of searches cannot evict them."""
        tag = self.tag
        with self._responses_lock:
            if self._responses_tag != tag:
                self._responses.clear()
                self._derived.clear()
                self._response_bytes = 0
                self._responses_tag = tag
            hit = self._derived.get(key)
            if hit is None:
                hit = self._responses.get(key)
                if hit is not None:
                    self._responses.move_to_end(key)
            if hit is not None:
                return hit
        value = build()
        with self._responses_lock:
            if self._responses_tag == tag:
                if isinstance(value, bytes):
                    self._keep_rendered(key, value)
                else:
                    self._derived[key] = value
        return value

    def kept_response(self, key: tuple) -> tuple[bytes, str] | None:
        """The body `cached_response` rendered for `key` at the version this worker serves, if kept, and that
        version's tag."""
        with self._responses_lock:
            tag = self.tag
            body = self._responses.get(key) if self._responses_tag == tag else None
            if body is None:
                return None
            self._responses.move_to_end(key)
            return body, tag

    def _keep_rendered(self, key: tuple, body: bytes) -> None:
        previous = self._responses.pop(key, None)
        self._response_bytes += len(body) - (len(previous) if previous is not None else 0)
        self._responses[key] = body
        while self._response_bytes > RESPONSE_CACHE_BYTES and len(self._responses) > 1:
            self._response_bytes -= len(self._responses.popitem(last=False)[1])


def _read_state() -> CatalogueState:
    state = db.session.execute(
        select(CatalogueState).where(CatalogueState.id == STATE_ID).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return state or CatalogueState(id=STATE_ID, version=0, epoch=0)


def _doc(row, halls: dict[str, HallInfo], intern: _Interner) -> dict:
    """One index doc from a row of DOC_COLUMNS (extra trailing columns are ignored)."""
    (code, base_code, name, aliases, hall_code, department, audience, item_type, online_depth, channels, topics,
     rank, popularity, promised, instant) = row[:15]
    text = sys.intern
    hall = halls.get(hall_code)
    channels = intern.json(channels)
    return {
        "code": code,
        "base_code": text(base_code),
        "name": text(name),
        "aliases": intern.json(aliases),
        "hall_code": text(hall_code),
        "hall_name": hall.full_name if hall else hall_code,
        "department": text(department),
        "audience": text(audience),
        "item_type": text(item_type),
        "online_depth": text(online_depth),
        "exposed": channels,
        "channels": intern.tokens(channels),
        "topics": intern.json(topics),
        "high_frequency_rank": rank,
        "high_frequency": rank is not None,
        "popularity": popularity or 0,
        "promised_limit_days": promised,
        "instant_approval": bool(instant),
    }


def _published_rows():
    """Every published service as a plain row of DOC_COLUMNS (driver-level: no per-value processing)."""
    connection = db.session.connection()
    query = select(*DOC_COLUMNS).where(_T.status == "published")
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    # per statement: Connection.execution_options() would stream every later statement of the session; and
    # stream_results, not yield_per, which held every row at once (about 480 MB for 300,000 services)
    return connection.exec_driver_sql(sql, execution_options={"stream_results": True, "max_row_buffer": 5000})


_managers_lock = threading.Lock()


def catalogue_index(app: Flask | None = None) -> CatalogueIndex:
    """This app's (this worker's) index manager, created on first use; not yet built or synced."""
    app = app or current_app._get_current_object()
    manager = app.extensions.get("catalogue_index")
    if manager is None:
        with _managers_lock:
            manager = app.extensions.get("catalogue_index")
            if manager is None:
                config = app.config
                manager = CatalogueIndex(sync_interval=float(config.get("CATALOGUE_SYNC_INTERVAL", 5.0)),
                                         store_retry=float(config.get("CATALOGUE_STORE_RETRY", 5.0)),
                                         check_interval=float(config.get("CATALOGUE_CHECK_INTERVAL", 1.0)))
                app.extensions["catalogue_index"] = manager
    return manager


def fresh_index() -> CatalogueIndex:
    """The current app's index, built and brought up to date (once per request; call inside an app context)."""
    manager = catalogue_index()
    if not has_request_context():
        return manager.fresh()
    if g.get("_catalogue_index") is not manager:
        manager.fresh()
        g._catalogue_index = manager
    return manager
