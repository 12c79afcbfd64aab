"""The live search index: takes item changes and answers queries from a snapshot frozen after the last one."""
from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping, Sequence

from .build import IndexBuilder
from .columns import ItemColumns, TextTable
from .fields import DEFAULT_FACETS
from .query import QueryEngine, SearchResult
from .synonyms import SynonymTable, load_synonyms
from .terms import load_topic_names
from .text import SEGMENTER

MAX_ALIAS_WORD = 8


class SearchIndex:
    """Searchable, filterable, faceted view of catalogue items keyed by their `code`.

    Changes append to the builder and mark replaced or removed items dead; the query arrays are
    frozen again lazily, on the next search after a change (O(n log n), fine for occasional edits),
    with fresh caches. `rebuild()` also compacts and recomputes idf. `version` increments on every
    change. Thread-safe: searches and changes are serialised by one lock.
    """

    def __init__(
        self,
        items: Iterable[Mapping[str, Any]] = (),
        *,
        synonyms: SynonymTable | None = None,
        topic_names: Mapping[str, str] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._synonyms = synonyms if synonyms is not None else load_synonyms()
        self._topic_names = dict(topic_names) if topic_names is not None else load_topic_names()
        SEGMENTER.add_words(self._synonyms.words())
        self.version = 0
        items = items if isinstance(items, (list, tuple, ItemColumns)) else list(items)
        SEGMENTER.add_words({str(a) for item in items for a in item.get("aliases") or ()
                             if len(str(a)) <= MAX_ALIAS_WORD})
        self._builder = self._build(items)
        # frozen at once, so that an index built in the gunicorn master is shared by its workers
        self._engine: QueryEngine | None = QueryEngine(self._builder.freeze())

    def _build(self, items: Iterable[Mapping[str, Any]]) -> IndexBuilder:
        builder = IndexBuilder(self._synonyms, self._topic_names)
        for item in items:
            builder.add(item)
        builder.finish(with_synonyms=True)
        return builder

    # ----------------------------------------------------------------- changes

    def add_or_replace(self, item: Mapping[str, Any]) -> None:
        """Insert an item, or replace the live item with the same code."""
        with self._lock:
            SEGMENTER.add_words(str(a) for a in item.get("aliases") or () if len(str(a)) <= MAX_ALIAS_WORD)
            self._builder.add(item)
            self._builder.finish()
            self._changed()

    def remove(self, code: str) -> bool:
        """Remove the item with this code; returns whether it existed."""
        with self._lock:
            if not self._builder.remove(code):
                return False
            self._changed()
            return True

    def rebuild(self) -> None:
        """Compact deleted items and recompute all statistics from the live items."""
        with self._lock:
            self._builder = self._build(self._builder.live_items())
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._engine = None

    # ----------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self._builder.live_count

    def __contains__(self, code: object) -> bool:
        return self._builder.codes.row(str(code)) is not None

    def get(self, code: str) -> dict[str, Any] | None:
        """A new dict equal to the item indexed under `code` (items are kept column by column)."""
        return self._builder.get(code)

    def search(
        self,
        q: str | None = None,
        *,
        filters: Mapping[str, Any] | None = None,
        page: int = 1,
        page_size: int = 20,
        facet_fields: Sequence[str] = DEFAULT_FACETS,
        facet_limit: int | None = 50,
        collapse: bool = False,
        prefer: Sequence[Sequence[str]] = (),
    ) -> SearchResult:
        """Rank, filter, facet and paginate; an empty `q` browses in popularity order.

        `collapse`: each item (base service) once, as the doc of the first `prefer` tier of hall codes
        that offers it (else its most popular doc), with `hall_counts`.

        `filters` maps a field (hall, audience, topic, item_type, department, channel,
        high_frequency; also hall_code/topics/channels) to one value or a list of values: values of
        one field are OR-ed, fields are AND-ed. Facets count the whole matched and filtered set,
        sorted by count then value, at most `facet_limit` values per field (None: all).
        """
        with self._lock:
            return self._query_engine().search(q, filters=filters, page=page, page_size=page_size,
                                               facet_fields=facet_fields, facet_limit=facet_limit,
                                               collapse=collapse, prefer=prefer)

    def _query_engine(self) -> QueryEngine:
        with self._lock:
            if self._engine is None:
                self._engine = QueryEngine(self._builder.freeze())
            return self._engine

    # benchmarks/bench_search.py clears the caches to time cold queries and reports the group count
    @property
    def _result_cache(self):
        return self._query_engine().result_cache

    @property
    def _score_cache(self):
        return self._query_engine().score_cache

    @property
    def _group_names(self) -> TextTable:
        return self._query_engine().data.group_names
