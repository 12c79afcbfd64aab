"""In-memory search index for the service catalogue (Chinese, pinyin, synonyms, filters, facets).

Design notes:
- The catalogue is a few hundred base services (基本目录) replicated across up to ~10^4 halls and
  service points, and every copy of a base service has the same name, aliases, item type,
  audience and topics (四级六同). Items sharing those fields (and `base_code`) form one "group";
  text analysis, postings and scoring run per group, so relevance cost depends on the number of
  distinct services, not on the number of items. Hall, department, channels, high-frequency flag
  and popularity stay per item.
- Postings are numpy arrays (group id int32, weight float32 = field weight x BM25 idf). A query
  concept scores the best of its alternatives (see textproc); the query score is the sum over
  concepts times the fraction of concepts matched (coordination), scaled by a mild name-length
  norm, plus exact-name and phrase boosts. Near-ties (scores quantised to 0.01) fall back to the
  browse order: high-frequency rank, then popularity, then code.
- Item data are numpy arrays. Items are kept in CSR lists per group and per hall/department,
  pre-sorted by browse rank: a hall browse is a slice, and a query takes at most k items from
  each of its best groups before the top-k argpartition. Without item-level filters, totals and
  facets come from per-group counts instead of touching every matched item; halls offering the
  same services share a "profile", so the hall facet costs O(profiles x groups), not O(halls).
- Results (ordered prefix, total, facets) and per-query group scores sit in LRU caches that are
  dropped whenever the index changes (`version` increments on every mutation).
- Updates append new items and mark replaced/removed ones dead; derived arrays are rebuilt lazily
  on the next search (O(n log n), fine for occasional edits). `rebuild()` also compacts and
  recomputes idf.
"""
from __future__ import annotations

import math
import threading
import unicodedata
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .textproc import (
    SEGMENTER,
    PinyinLexicon,
    QueryAnalyzer,
    SynonymTable,
    is_cjk,
    item_terms,
    item_words,
    load_synonyms,
    load_topic_names,
    normalize,
    strip_place_names,
)

DEFAULT_FACETS: tuple[str, ...] = ("hall", "audience", "topic", "item_type")
GROUP_FIELDS: dict[str, str] = {"audience": "audience", "item_type": "item_type", "topic": "topics"}
DOC_FIELDS: dict[str, str] = {"hall": "hall_code", "department": "department"}
MULTI_DOC_FIELDS: dict[str, str] = {"channel": "channels"}
FLAG_FIELD = "high_frequency"
FIELDS: tuple[str, ...] = (*GROUP_FIELDS, *DOC_FIELDS, *MULTI_DOC_FIELDS, FLAG_FIELD)
FIELD_ALIASES: dict[str, str] = {
    "hall_code": "hall",
    "topics": "topic",
    "channels": "channel",
    "hf": FLAG_FIELD,
    "type": "item_type",
}
EXACT_BONUS = 20.0
PHRASE_BONUS = 4.0
PHRASE_CHECK_TOP = 64
SCORE_QUANTUM = 100.0
MIN_CACHED_PREFIX = 100
RESULT_CACHE_SIZE = 2048
SCORE_CACHE_SIZE = 512
SMALL_FACET = 64
MAX_CHANNELS = 63
PROFILE_CELLS = 2_000_000
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class SearchResult:
    """One page of results; `facets` lists are shared with the cache and must not be mutated."""

    ids: list[str]
    total: int
    facets: dict[str, list[dict[str, Any]]]
    page: int
    page_size: int


@dataclass
class _CacheEntry:
    ordered: np.ndarray
    complete: bool
    total: int
    facets: dict[str, list[dict[str, Any]]]


class _Values:
    """Bidirectional mapping between facet value strings and dense integer ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.values: list[str] = []

    def id(self, value: str) -> int:
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = len(self.values)
            self.values.append(value)
        return found

    def sort_ranks(self) -> np.ndarray:
        ranks = np.empty(len(self.values), dtype=np.int64)
        ranks[np.argsort(np.array(self.values, dtype=object))] = np.arange(len(self.values))
        return ranks


def _as_values(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, (list, tuple, set, frozenset)):
        return tuple(sorted({str(v) for v in raw if v is not None and v != ""}))
    return (str(raw),)


def _hf_rank(item: Mapping[str, Any]) -> int:
    rank = item.get("high_frequency_rank")
    try:
        return int(rank) if rank is not None and int(rank) > 0 else 0
    except (TypeError, ValueError):
        return 0


def _as_flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean filter value: {raw!r}")


def canonical_field(field: str) -> str:
    """Map accepted spellings (hall_code, topics, ...) to facet/filter field names."""
    name = FIELD_ALIASES.get(field, field)
    if name not in FIELDS:
        raise ValueError(f"unknown search field: {field!r}")
    return name


def _top_k(candidates: np.ndarray, keys: np.ndarray, need: int) -> np.ndarray:
    """Candidates ordered by ascending (unique) key, only the first `need` of them."""
    if need < candidates.size:
        part = np.argpartition(keys, need - 1)[:need]
        return candidates[part[np.argsort(keys[part])]]
    return candidates[np.argsort(keys)]


def _csr(rows: np.ndarray, order_keys: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by `rows`, each row ordered by `order_keys`; returns (indptr, flat)."""
    flat = np.lexsort((order_keys, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, flat


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort; radix sort when the keys fit 16 bits (group, hall and rank ids usually do)."""
    if keys.size and 0 <= keys.min() and keys.max() < 2**16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _rows_in_order(rows: np.ndarray, ordered_docs: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, docs) of `ordered_docs` grouped by `rows[doc]`, keeping their order in each row."""
    doc_rows = rows[ordered_docs]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc_rows, minlength=n_rows), out=indptr[1:])
    return indptr, ordered_docs[_stable_argsort(doc_rows)]


def _gather_rows(indptr: np.ndarray, flat: np.ndarray, rows: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Concatenate the CSR rows `rows` (each cut to its first `limit` entries) without a Python loop."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    if limit is not None:
        lengths = np.minimum(lengths, limit)
    total = int(lengths.sum())
    if total == 0:
        return flat[:0]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return flat[offsets + np.arange(total)]


class SearchIndex:
    """Searchable, filterable, faceted view of catalogue items keyed by their `code`.

    Thread-safe: searches and mutations are serialised by one lock.
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
        self._reset()
        items = items if isinstance(items, (list, tuple)) else list(items)
        SEGMENTER.add_words({str(a) for item in items for a in item.get("aliases") or () if len(str(a)) <= 8})
        for item in items:
            self._append(item)
        self._finalize_postings(with_synonyms=True)
        self._dirty = True

    def _reset(self) -> None:
        self._items: list[Mapping[str, Any] | None] = []
        self._codes: list[str] = []
        self._code_to_doc: dict[str, int] = {}
        self._doc_group_list = array("i")
        self._doc_value_lists = {field: array("i") for field in DOC_FIELDS}
        self._doc_bit_lists = {field: array("q") for field in MULTI_DOC_FIELDS}
        self._doc_hf_list = array("q")
        self._doc_pop_list = array("d")
        self._alive_list = array("b")
        self._values = {field: _Values() for field in (*GROUP_FIELDS, *DOC_FIELDS, *MULTI_DOC_FIELDS)}
        self._group_of: dict[tuple, int] = {}
        self._group_names: list[str] = []
        self._group_name_len: list[int] = []
        self._group_values: dict[str, list[tuple[int, ...]]] = {field: [] for field in GROUP_FIELDS}
        self._exact: dict[str, list[int]] = {}
        self._pending_terms: dict[str, tuple[list[int], list[float]]] = {}
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lexicon = PinyinLexicon()
        self._lexicon_words: set[str] = set()
        self._analyzer = QueryAnalyzer(self._postings, self._synonyms, self._lexicon, self._frequency)
        self._result_cache: OrderedDict[tuple, _CacheEntry] = OrderedDict()
        self._score_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._live_count = 0

    # ----------------------------------------------------------------- building

    def _frequency(self, term: str) -> int:
        posting = self._postings.get(term)
        return 0 if posting is None else int(posting[0].size)

    def _group_for(self, item: Mapping[str, Any]) -> int:
        name = str(item.get("name") or "")
        aliases = tuple(str(a) for a in item.get("aliases") or ())
        values = {field: _as_values(item.get(source)) for field, source in GROUP_FIELDS.items()}
        signature = (str(item.get("base_code") or ""), name, aliases, tuple(values[f] for f in GROUP_FIELDS))
        gid = self._group_of.get(signature)
        if gid is not None:
            return gid
        gid = self._group_of[signature] = len(self._group_names)
        self._group_names.append(normalize(name).replace(" ", ""))
        self._group_name_len.append(len(name))
        for field in GROUP_FIELDS:
            self._group_values[field].append(tuple(self._values[field].id(v) for v in values[field]))
        for text in (name, *aliases):
            compact = normalize(text).replace(" ", "")
            if compact:
                self._exact.setdefault(compact, []).append(gid)
        topics = [self._topic_names.get(t, t) for t in values["topic"]]
        topics = [t for t in topics if is_cjk(normalize(t).replace(" ", ""))]
        department = strip_place_names(str(item.get("department") or ""), str(item.get("hall_name") or ""))
        for term, weight in item_terms(name, aliases, department, topics).items():
            gids, weights = self._pending_terms.setdefault(term, ([], []))
            gids.append(gid)
            weights.append(weight)
        self._lexicon_words.update(item_words(name, aliases, department, topics))
        return gid

    def _append(self, item: Mapping[str, Any]) -> None:
        code = str(item["code"])
        previous = self._code_to_doc.get(code)
        if previous is not None:
            self._kill(previous)
        doc = len(self._items)
        self._items.append(item)
        self._codes.append(code)
        self._code_to_doc[code] = doc
        self._doc_group_list.append(self._group_for(item))
        for field, source in DOC_FIELDS.items():
            self._doc_value_lists[field].append(self._values[field].id(str(item.get(source) or "")))
        for field, source in MULTI_DOC_FIELDS.items():
            bits = 0
            for value in _as_values(item.get(source)):
                bit = self._values[field].id(value)
                if bit >= MAX_CHANNELS:
                    raise ValueError(f"more than {MAX_CHANNELS} distinct values of {source}")
                bits |= 1 << bit
            self._doc_bit_lists[field].append(bits)
        self._doc_hf_list.append(_hf_rank(item))
        popularity = item.get("popularity") or 0
        self._doc_pop_list.append(float(popularity) if isinstance(popularity, (int, float)) else 0.0)
        self._alive_list.append(1)
        self._live_count += 1

    def _kill(self, doc: int) -> None:
        if self._alive_list[doc]:
            self._alive_list[doc] = 0
            self._items[doc] = None
            self._live_count -= 1

    def _finalize_postings(self, with_synonyms: bool = False) -> None:
        """Merge pending term postings into numpy postings, weighting by the current idf, and
        feed new words (and, on a full build, the synonym words) to the pinyin lexicon."""
        n_groups = max(len(self._group_names), 1)
        for term, (gids, weights) in self._pending_terms.items():
            old = self._postings.get(term)
            new_gids = np.asarray(gids, dtype=np.int32)
            df = new_gids.size + (0 if old is None else old[0].size)
            idf = math.log(1.0 + (n_groups - df + 0.5) / (df + 0.5))
            scaled = np.asarray(weights, dtype=np.float32) * np.float32(idf)
            if old is not None:
                new_gids = np.concatenate([old[0], new_gids])
                scaled = np.concatenate([old[1], scaled])
            self._postings[term] = (new_gids, scaled)
        self._pending_terms.clear()
        synonym_words = self._synonyms.words()
        for word in self._lexicon_words:
            posting = self._postings.get(word)
            priority = (0 if posting is None else posting[0].size) + (1000 if word in synonym_words else 0)
            self._lexicon.add(word, priority)
        if with_synonyms:
            for word in synonym_words - self._lexicon_words:
                if is_cjk(word):
                    self._lexicon.add(word, 1000.0)
        self._lexicon_words = set()

    def _refresh(self) -> None:
        """Rebuild the numpy views of item data after a change."""
        n = len(self._items)
        n_groups = len(self._group_names)
        self._doc_group = np.array(self._doc_group_list, dtype=np.int32)
        self._doc_values = {f: np.array(v, dtype=np.int32) for f, v in self._doc_value_lists.items()}
        self._doc_bits = {f: np.array(v, dtype=np.int64) for f, v in self._doc_bit_lists.items()}
        hf_rank = np.array(self._doc_hf_list, dtype=np.int64)
        self._doc_hf = hf_rank > 0
        alive = np.array(self._alive_list, dtype=bool)
        popularity = np.array(self._doc_pop_list, dtype=np.float64)
        order = np.asarray(sorted(range(n), key=self._codes.__getitem__), dtype=np.int64)
        order = order[np.argsort(-popularity[order], kind="stable")]
        hf_key = np.where(self._doc_hf, hf_rank, hf_rank.max(initial=0) + 1)
        order = order[_stable_argsort(hf_key[order])]
        self._pop_rank = np.empty(n, dtype=np.int64)
        self._pop_rank[order] = np.arange(n)
        self._browse_order = order[alive[order]].astype(np.int32)
        self._hf_docs = self._browse_order[self._doc_hf[self._browse_order]]
        self._other_docs = self._browse_order[~self._doc_hf[self._browse_order]]
        self._score_key_scale = n + 1
        live = np.flatnonzero(alive).astype(np.int32)
        live_groups = self._doc_group[live]
        self._group_indptr, self._group_docs = _rows_in_order(self._doc_group, self._browse_order, n_groups)
        self._group_live = np.diff(self._group_indptr)
        self._group_hf_live = np.bincount(live_groups[self._doc_hf[live]], minlength=n_groups)
        self._hf_by_group = bool(np.all((self._group_hf_live == 0) | (self._group_hf_live == self._group_live)))
        self._hf_total = int(self._hf_docs.size)
        self._value_docs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._group_value_counts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._value_totals: dict[str, np.ndarray] = {}
        self._profiles: dict[str, tuple[np.ndarray, ...] | None] = {}
        for field, values in self._doc_values.items():
            n_values = len(self._values[field].values)
            self._value_docs[field] = _rows_in_order(values, self._browse_order, n_values)
            pairs, counts = np.unique(live_groups.astype(np.int64) * n_values + values[live], return_counts=True)
            rows = pairs // max(n_values, 1)
            row_ptr = np.zeros(n_groups + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n_groups), out=row_ptr[1:])
            self._group_value_counts[field] = (row_ptr, (pairs % max(n_values, 1)).astype(np.int32), counts)
            self._value_totals[field] = np.bincount(values[live], minlength=n_values)
            self._profiles[field] = self._value_profiles(field, n_groups, n_values)
        self._group_bit_counts: dict[str, np.ndarray] = {}
        for field, bits in self._doc_bits.items():
            n_values = len(self._values[field].values)
            matrix = np.zeros((n_groups, n_values), dtype=np.int64)
            for bit in range(n_values):
                has = (bits[live] >> bit) & 1 == 1
                matrix[:, bit] = np.bincount(live_groups[has], minlength=n_groups)
            self._group_bit_counts[field] = matrix
        names_len = np.asarray(self._group_name_len, dtype=np.float32)
        mean_len = float(names_len.mean()) if n_groups else 1.0
        self._group_norm = (1.0 / (0.8 + 0.2 * names_len / max(mean_len, 1.0))).astype(np.float32)
        self._group_flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for field in GROUP_FIELDS:
            rows = self._group_values[field]
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            flat_values = np.fromiter((v for r in rows for v in r), dtype=np.int32, count=int(lengths.sum()))
            self._group_flat[field] = (np.repeat(np.arange(len(rows), dtype=np.int32), lengths), flat_values)
        self._value_ranks = {field: values.sort_ranks() for field, values in self._values.items()}
        self._result_cache.clear()
        self._score_cache.clear()
        self._dirty = False

    def _value_profiles(self, field: str, n_groups: int, n_values: int) -> tuple[np.ndarray, ...] | None:
        """Values (halls) offering the same groups share a profile: returns (profile x group
        counts, profile of each value, CSR of each profile's named values in value order), or
        None when that matrix would be too large."""
        row_ptr, values, counts = self._group_value_counts[field]
        entry_groups = np.repeat(np.arange(n_groups, dtype=np.int64), np.diff(row_ptr))
        order = np.lexsort((entry_groups, values))
        by_value = np.stack([entry_groups[order], counts[order]], axis=1)
        value_ptr = np.zeros(n_values + 1, dtype=np.int64)
        np.cumsum(np.bincount(values, minlength=n_values), out=value_ptr[1:])
        profile_ids: dict[bytes, int] = {}
        profile_of_value = np.empty(n_values, dtype=np.int64)
        for value in range(n_values):
            key = by_value[value_ptr[value] : value_ptr[value + 1]].tobytes()
            profile_of_value[value] = profile_ids.setdefault(key, len(profile_ids))
        if len(profile_ids) * n_groups > PROFILE_CELLS:
            return None
        matrix = np.zeros((len(profile_ids), n_groups), dtype=np.float64)
        matrix[profile_of_value[values[order]], by_value[:, 0]] = by_value[:, 1]
        named = np.asarray([v != "" for v in self._values[field].values], dtype=bool)
        listed = np.flatnonzero(named)
        ranks = self._values[field].sort_ranks()
        members_ptr, members = _csr(profile_of_value[listed], ranks[listed], len(profile_ids))
        return matrix, profile_of_value, members_ptr, listed[members]

    # ----------------------------------------------------------------- mutation

    def add_or_replace(self, item: Mapping[str, Any]) -> None:
        """Insert an item, or replace the live item with the same code."""
        with self._lock:
            SEGMENTER.add_words(str(a) for a in item.get("aliases") or () if len(str(a)) <= 8)
            self._append(item)
            self._finalize_postings()
            self._changed()

    def remove(self, code: str) -> bool:
        """Remove the item with this code; returns whether it existed."""
        with self._lock:
            doc = self._code_to_doc.pop(str(code), None)
            if doc is None:
                return False
            self._kill(doc)
            self._changed()
            return True

    def rebuild(self) -> None:
        """Compact deleted items and recompute all statistics from the live items."""
        with self._lock:
            live = [item for item in self._items if item is not None]
            version = self.version
            self._reset()
            for item in live:
                self._append(item)
            self._finalize_postings(with_synonyms=True)
            self.version = version
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._dirty = True
        self._result_cache.clear()
        self._score_cache.clear()

    # ----------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self._live_count

    def __contains__(self, code: object) -> bool:
        return str(code) in self._code_to_doc

    def get(self, code: str) -> Mapping[str, Any] | None:
        """The item dict indexed under `code` (the caller's object, not a copy)."""
        doc = self._code_to_doc.get(str(code))
        return None if doc is None else self._items[doc]

    def search(
        self,
        q: str | None = None,
        *,
        filters: Mapping[str, Any] | None = None,
        page: int = 1,
        page_size: int = 20,
        facet_fields: Sequence[str] = DEFAULT_FACETS,
        facet_limit: int | None = 50,
    ) -> SearchResult:
        """Rank, filter, facet and paginate; an empty `q` browses in popularity order.

        `filters` maps a field (hall, audience, topic, item_type, department, channel,
        high_frequency; also hall_code/topics/channels) to one value or a list of values: values of
        one field are OR-ed, fields are AND-ed. Facets count the whole matched and filtered set,
        sorted by count then value, at most `facet_limit` values per field (None: all).
        """
        if page < 1 or page_size < 1:
            raise ValueError("page and page_size must be positive")
        query = normalize(q)
        code = unicodedata.normalize("NFKC", q).strip() if query else ""
        if code and code not in self._code_to_doc:
            code = next((c for c in (code.upper(), code.lower()) if c in self._code_to_doc), "")
        filter_key = self._filter_key(filters)
        facets = tuple(canonical_field(f) for f in facet_fields)
        cache_key = (query, code, filter_key, facets, facet_limit)
        start = (page - 1) * page_size
        end = start + page_size
        with self._lock:
            if self._dirty:
                self._refresh()
            entry = self._result_cache.get(cache_key)
            if entry is not None and (entry.complete or end <= entry.ordered.size):
                self._result_cache.move_to_end(cache_key)
            else:
                code_doc = self._code_to_doc.get(code) if code else None
                entry = self._execute(query, code_doc, filter_key, facets, facet_limit, max(end, MIN_CACHED_PREFIX))
                self._result_cache[cache_key] = entry
                if len(self._result_cache) > RESULT_CACHE_SIZE:
                    self._result_cache.popitem(last=False)
            codes = self._codes
            ids = [codes[d] for d in entry.ordered[start:end].tolist()]
            return SearchResult(ids=ids, total=entry.total, facets=entry.facets, page=page, page_size=page_size)

    def _filter_key(self, filters: Mapping[str, Any] | None) -> tuple:
        if not filters:
            return ()
        merged: dict[str, tuple] = {}
        for raw_field, raw_value in filters.items():
            field = canonical_field(raw_field)
            if field == FLAG_FIELD:
                raw_values = raw_value if isinstance(raw_value, (list, tuple, set, frozenset)) else (raw_value,)
                flags = {_as_flag(v) for v in raw_values if v is not None and v != ""}
                if len(flags) == 1:
                    merged[field] = tuple(flags)
                continue
            values = _as_values(raw_value)
            if values:
                merged[field] = values
        return tuple(sorted(merged.items()))

    def _execute(
        self,
        query: str,
        code_doc: int | None,
        filter_key: tuple,
        facets: tuple[str, ...],
        facet_limit: int | None,
        need: int,
    ) -> _CacheEntry:
        filters = dict(filter_key)
        scores: np.ndarray | None = None
        eligible: np.ndarray | None = None
        if query and code_doc is None:
            scores, eligible = self._group_scores(query)
        if FLAG_FIELD in filters and self._hf_by_group:
            hf_groups = self._group_hf_live > 0
            mask = hf_groups if filters.pop(FLAG_FIELD)[0] else ~hf_groups
            eligible = mask if eligible is None else eligible & mask
        for field in GROUP_FIELDS:
            if field in filters:
                mask = self._group_mask(field, filters[field])
                eligible = mask if eligible is None else eligible & mask
        if code_doc is None and all(field in GROUP_FIELDS for field in filters):
            groups = None if eligible is None else np.flatnonzero(eligible)
            total = self._live_count if groups is None else int(self._group_live[groups].sum())
            if scores is not None:
                ordered = self._rank_groups(groups, scores, need)
            else:
                ordered = self._browse_prefix(eligible, need)
            facet_counts = self._facets(None, groups, facets, facet_limit)
            return _CacheEntry(ordered=ordered, complete=ordered.size >= total, total=total, facets=facet_counts)
        candidates, by_popularity = self._filtered_docs(code_doc, filters, eligible)
        if scores is None and by_popularity:
            ordered = candidates[:need]
        elif scores is None:
            ordered = _top_k(candidates, self._pop_rank[candidates], need)
        else:
            ordered = _top_k(candidates, self._score_keys(candidates, scores), need)
        return _CacheEntry(
            ordered=ordered,
            complete=ordered.size >= candidates.size,
            total=int(candidates.size),
            facets=self._facets(candidates, None, facets, facet_limit),
        )

    def _filtered_docs(
        self, code_doc: int | None, filters: dict[str, tuple], eligible: np.ndarray | None
    ) -> tuple[np.ndarray, bool]:
        """Docs passing item-level filters and the group mask; also whether they are in browse order."""
        wanted = {
            field: np.asarray(
                [self._values[field].ids[v] for v in filters[field] if v in self._values[field].ids], dtype=np.int64
            )
            for field in DOC_FIELDS
            if field in filters
        }
        done: set[str] = set()
        by_popularity = True
        if code_doc is not None:
            candidates = np.asarray([code_doc], dtype=np.int32)
        elif wanted:
            field = min(wanted, key=lambda f: self._value_rows_size(f, wanted[f]))
            indptr, docs = self._value_docs[field]
            candidates = _gather_rows(indptr, docs, wanted[field].astype(np.int64))
            by_popularity = wanted[field].size <= 1
            done.add(field)
        elif FLAG_FIELD in filters:
            candidates = self._hf_docs if filters[FLAG_FIELD][0] else self._other_docs
            done.add(FLAG_FIELD)
        elif eligible is not None:
            candidates = _gather_rows(self._group_indptr, self._group_docs, np.flatnonzero(eligible))
            by_popularity = False
            done.add("groups")
        else:
            candidates = self._browse_order
        if eligible is not None and "groups" not in done:
            candidates = candidates[eligible[self._doc_group[candidates]]]
        for field, ids in wanted.items():
            if field not in done:
                allowed = np.zeros(len(self._values[field].values) + 1, dtype=bool)
                allowed[ids] = True
                candidates = candidates[allowed[self._doc_values[field][candidates]]]
        for field in MULTI_DOC_FIELDS:
            if field in filters:
                ids = self._values[field].ids
                mask = sum(1 << ids[v] for v in filters[field] if v in ids)
                candidates = candidates[(self._doc_bits[field][candidates] & mask) != 0]
        if FLAG_FIELD in filters and FLAG_FIELD not in done:
            candidates = candidates[self._doc_hf[candidates] == filters[FLAG_FIELD][0]]
        return candidates, by_popularity

    def _value_rows_size(self, field: str, ids: np.ndarray) -> int:
        indptr = self._value_docs[field][0]
        return int((indptr[ids + 1] - indptr[ids]).sum()) if ids.size else 0

    def _score_keys(self, docs: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Unique ascending sort keys: higher quantised score first, then browse rank."""
        quantised = np.rint(scores[self._doc_group[docs]] * SCORE_QUANTUM).astype(np.int64)
        return self._pop_rank[docs] - quantised * self._score_key_scale

    def _rank_groups(self, groups: np.ndarray | None, scores: np.ndarray, need: int) -> np.ndarray:
        """Top `need` docs of the matching groups, only expanding the best-scoring groups."""
        if groups is None:
            groups = np.arange(len(self._group_names))
        quantised = np.rint(scores[groups] * SCORE_QUANTUM).astype(np.int64)
        order = np.argsort(-quantised, kind="stable")
        groups, quantised = groups[order], quantised[order]
        reached = int(np.searchsorted(np.cumsum(self._group_live[groups]), need))
        if reached < groups.size:
            boundary = quantised[reached]
            groups = groups[: int(np.searchsorted(-quantised, -boundary, side="right"))]
        docs = _gather_rows(self._group_indptr, self._group_docs, groups, need)
        return _top_k(docs, self._score_keys(docs, scores), need)

    def _browse_prefix(self, eligible: np.ndarray | None, need: int) -> np.ndarray:
        """First `need` docs in browse order among eligible groups (each group list is sorted)."""
        if eligible is None:
            return self._browse_order[:need]
        docs = _gather_rows(self._group_indptr, self._group_docs, np.flatnonzero(eligible), need)
        return _top_k(docs, self._pop_rank[docs], need)

    def _group_mask(self, field: str, values: tuple[str, ...]) -> np.ndarray:
        ids = self._values[field].ids
        allowed = np.zeros(len(self._values[field].values) + 1, dtype=bool)
        for value in values:
            if value in ids:
                allowed[ids[value]] = True
        row_ids, flat = self._group_flat[field]
        mask = np.zeros(len(self._group_names), dtype=bool)
        mask[row_ids[allowed[flat]]] = True
        return mask

    def _facets(
        self, docs: np.ndarray | None, groups: np.ndarray | None, fields: tuple[str, ...], limit: int | None
    ) -> dict[str, list[dict[str, Any]]]:
        """Facet counts over `docs`, or over all live docs of `groups` (None: every group)."""
        result: dict[str, list[dict[str, Any]]] = {}
        per_group: np.ndarray | None = None
        for field in fields:
            if field == FLAG_FIELD:
                if docs is not None:
                    hf, total = int(np.count_nonzero(self._doc_hf[docs])), int(docs.size)
                elif groups is None:
                    hf, total = self._hf_total, self._live_count
                else:
                    hf = int(self._group_hf_live[groups].sum())
                    total = int(self._group_live[groups].sum())
                pairs = sorted((-c, v) for v, c in (("true", hf), ("false", total - hf)) if c > 0)
                result[field] = [{"value": v, "count": -c} for c, v in pairs][:limit]
                continue
            if field in DOC_FIELDS and docs is None and self._profiles[field] is not None:
                result[field] = self._profile_facet(field, groups, limit)
                continue
            if field in DOC_FIELDS:
                counts = self._doc_field_counts(field, docs, groups)
            elif field in MULTI_DOC_FIELDS:
                counts = self._multi_field_counts(field, docs, groups)
            else:
                if per_group is None:
                    if docs is not None:
                        per_group = np.bincount(self._doc_group[docs], minlength=len(self._group_names))
                    elif groups is None:
                        per_group = self._group_live
                    else:
                        per_group = np.zeros(len(self._group_names), dtype=np.int64)
                        per_group[groups] = self._group_live[groups]
                row_ids, flat = self._group_flat[field]
                counts = np.bincount(flat, weights=per_group[row_ids], minlength=len(self._values[field].values))
            result[field] = self._facet_list(counts, self._values[field], self._value_ranks[field], limit)
        return result

    def _doc_field_counts(self, field: str, docs: np.ndarray | None, groups: np.ndarray | None) -> np.ndarray:
        n_values = len(self._values[field].values)
        if docs is not None:
            return np.bincount(self._doc_values[field][docs], minlength=n_values)
        totals = self._value_totals[field]
        if groups is None:
            return totals.copy()
        row_ptr, values, counts = self._group_value_counts[field]
        selected = int((row_ptr[groups + 1] - row_ptr[groups]).sum())
        if selected * 2 <= values.size:
            positions = _gather_rows(row_ptr, np.arange(values.size), groups)
            return np.bincount(values[positions], weights=counts[positions], minlength=n_values).astype(np.int64)
        excluded = np.ones(len(self._group_names), dtype=bool)
        excluded[groups] = False
        positions = _gather_rows(row_ptr, np.arange(values.size), np.flatnonzero(excluded))
        rest = np.bincount(values[positions], weights=counts[positions], minlength=n_values).astype(np.int64)
        return totals - rest

    def _profile_facet(self, field: str, groups: np.ndarray | None, limit: int | None) -> list[dict[str, Any]]:
        """Facet of a many-valued item field from per-profile counts, touching only listed values."""
        matrix, _, members_ptr, members = self._profiles[field]
        if groups is None:
            profile_counts = np.rint(matrix.sum(axis=1)).astype(np.int64)
        else:
            selected = np.zeros(len(self._group_names), dtype=np.float64)
            selected[groups] = 1.0
            profile_counts = np.rint(matrix @ selected).astype(np.int64)
        profiles = np.flatnonzero(profile_counts > 0)
        profiles = profiles[np.argsort(-profile_counts[profiles], kind="stable")]
        cap = members.size if limit is None else limit
        sizes = np.minimum(members_ptr[profiles + 1] - members_ptr[profiles], cap)
        reached = int(np.searchsorted(np.cumsum(sizes), cap))
        if reached < profiles.size:
            boundary = profile_counts[profiles[reached]]
            profiles = profiles[: int(np.searchsorted(-profile_counts[profiles], -boundary, side="right"))]
            sizes = sizes[: profiles.size]
        values = _gather_rows(members_ptr, members, profiles, cap)
        counts = np.repeat(profile_counts[profiles], sizes)
        names = self._values[field].values
        keys = self._value_ranks[field][values] - counts * (len(names) + 1)
        top = _top_k(np.arange(values.size), keys, min(cap, values.size)).tolist()
        return [{"value": names[values[i]], "count": int(counts[i])} for i in top]

    def _multi_field_counts(self, field: str, docs: np.ndarray | None, groups: np.ndarray | None) -> np.ndarray:
        if docs is not None:
            bits = self._doc_bits[field][docs]
            n_values = len(self._values[field].values)
            return np.asarray([np.count_nonzero((bits >> b) & 1) for b in range(n_values)], dtype=np.int64)
        matrix = self._group_bit_counts[field]
        return matrix.sum(axis=0) if groups is None else matrix[groups].sum(axis=0)

    @staticmethod
    def _facet_list(
        counts: np.ndarray, values: _Values, ranks: np.ndarray, limit: int | None
    ) -> list[dict[str, Any]]:
        if limit is not None and limit <= 0:
            return []
        if "" in values.ids:
            counts[values.ids[""]] = 0
        names = values.values
        if counts.size <= SMALL_FACET:
            pairs = sorted((-c, names[i]) for i, c in enumerate(counts.tolist()) if c > 0)
            return [{"value": v, "count": int(-c)} for c, v in pairs[:limit]]
        present = np.flatnonzero(counts > 0)
        present_counts = counts[present].astype(np.int64)
        keys = ranks[present] - present_counts * (len(names) + 1)
        order = _top_k(np.arange(present.size), keys, present.size if limit is None else limit)
        return [{"value": names[present[i]], "count": int(present_counts[i])} for i in order.tolist()]

    def _group_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._score_cache.get(query)
        if cached is not None:
            self._score_cache.move_to_end(query)
            return cached
        result = self._compute_group_scores(query)
        self._score_cache[query] = result
        if len(self._score_cache) > SCORE_CACHE_SIZE:
            self._score_cache.popitem(last=False)
        return result

    def _compute_group_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        n_groups = len(self._group_names)
        concept_scores: list[np.ndarray] = []
        for concept in self._analyzer.analyze(query):
            best: np.ndarray | None = None
            for weight, terms in concept.alternatives:
                postings = [self._postings[t] for t in terms if t in self._postings]
                if not postings:
                    continue
                if len(terms) == 1:
                    gids, weights = postings[0]
                    if best is None:
                        best = np.zeros(n_groups, dtype=np.float32)
                    best[gids] = np.maximum(best[gids], weights * np.float32(weight))
                    continue
                combined = np.zeros(n_groups, dtype=np.float32)
                hits = np.zeros(n_groups, dtype=np.int16)
                for gids, weights in postings:
                    combined[gids] += weights
                    hits[gids] += 1
                combined *= np.float32(weight / len(terms))
                combined[hits < (len(terms) + 1) // 2] = 0.0
                best = combined if best is None else np.maximum(best, combined, out=best)
            if best is not None:
                concept_scores.append(best)
        if not concept_scores:
            return np.zeros(n_groups, dtype=np.float32), np.zeros(n_groups, dtype=bool)
        total = np.sum(concept_scores, axis=0, dtype=np.float32)
        matched = np.sum([s > 0 for s in concept_scores], axis=0)
        n_concepts = len(concept_scores)
        required = 1 if n_concepts <= 2 else math.ceil(n_concepts / 2)
        scores = total * (matched.astype(np.float32) / n_concepts) * self._group_norm
        eligible = matched >= required
        compact = query.replace(" ", "")
        for gid in self._exact.get(compact, ()):
            scores[gid] += EXACT_BONUS
            eligible[gid] = True
        self._phrase_boost(compact, scores, eligible)
        scores[~eligible] = 0.0
        return scores, eligible

    def _phrase_boost(self, compact: str, scores: np.ndarray, eligible: np.ndarray) -> None:
        if len(compact) < 2 or not is_cjk(compact):
            return
        candidates = np.flatnonzero(eligible)
        if candidates.size > PHRASE_CHECK_TOP:
            top = np.argpartition(-scores[candidates], PHRASE_CHECK_TOP - 1)[:PHRASE_CHECK_TOP]
            candidates = candidates[top]
        names = self._group_names
        for gid in candidates.tolist():
            if compact in names[gid]:
                scores[gid] += PHRASE_BONUS
