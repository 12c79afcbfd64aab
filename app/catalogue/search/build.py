"""Building the search index: items become groups and term postings, frozen into numpy arrays for queries."""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .analyzer import QueryAnalyzer
from .arrays import csr, rows_in_order, stable_argsort
from .columns import CodeTable, ItemColumns, TextTable
from .fields import DOC_FIELDS, GROUP_FIELDS, MAX_CHANNELS, MULTI_DOC_FIELDS, ValueIds, as_values, doc_value, hf_rank
from .pinyin import PinyinLexicon
from .postings import PostingTable
from .synonyms import SynonymTable
from .terms import item_terms, item_words, strip_place_names
from .text import is_cjk, normalize

PROFILE_CELLS = 2_000_000


@dataclass(frozen=True, eq=False)
class IndexData:
    """What queries read: the index as it stood when the builder was last frozen.

    The numpy arrays are computed by `IndexBuilder.freeze` and read-only. The tables the builder
    only appends to (codes, value ids, group names, postings, exact names, the analyzer's lexicon)
    are shared with it, not copied: the live index freezes again after every change before it
    queries, so a snapshot is never read after the builder moved on.
    """

    # shared with the builder
    codes: CodeTable
    values: dict[str, ValueIds]
    group_names: TextTable
    exact: PostingTable
    postings: PostingTable
    analyzer: QueryAnalyzer
    # computed when frozen
    n_groups: int
    live_count: int
    doc_group: np.ndarray
    doc_values: dict[str, np.ndarray]
    doc_bits: dict[str, np.ndarray]
    doc_hf: np.ndarray
    pop_rank: np.ndarray
    browse_order: np.ndarray
    hf_docs: np.ndarray
    other_docs: np.ndarray
    score_key_scale: int
    group_indptr: np.ndarray
    group_docs: np.ndarray
    group_live: np.ndarray
    group_hf_live: np.ndarray
    hf_by_group: bool
    hf_total: int
    value_docs: dict[str, tuple[np.ndarray, np.ndarray]]
    group_value_counts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    value_totals: dict[str, np.ndarray]
    profiles: dict[str, tuple[np.ndarray, ...] | None]
    group_bit_counts: dict[str, np.ndarray]
    group_norm: np.ndarray
    group_flat: dict[str, tuple[np.ndarray, np.ndarray]]
    value_ranks: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if name not in _SHARED_WITH_BUILDER:
                _read_only(getattr(self, name))


_SHARED_WITH_BUILDER = frozenset({"codes", "values", "group_names", "exact", "postings", "analyzer"})


def _read_only(value: Any) -> None:
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, (tuple, list)):
        for part in value:
            _read_only(part)
    elif isinstance(value, dict):
        for part in value.values():
            _read_only(part)


class IndexBuilder:
    """Accumulates catalogue items into groups and term postings; `freeze()` derives the query arrays.

    Every copy of a base service has the same name, aliases, item type, audience and topics (四级六同):
    items sharing those fields (and `base_code`) form one "group", and text analysis and postings run
    per group, so relevance cost depends on the number of distinct services, not on the number of
    items. Hall, department, channels, high-frequency flag and popularity stay per item. Postings are
    numpy arrays (group id int32, weight float32 = field weight x BM25 idf).

    Items are only appended: a replaced or removed item is marked dead and leaves the live set. They are
    kept column by column (`ItemColumns`, `CodeTable`): no Python object per item.
    """

    def __init__(self, synonyms: SynonymTable, topic_names: Mapping[str, str]) -> None:
        self.synonyms = synonyms
        self.topic_names = topic_names
        self.items = ItemColumns()
        self.codes = self.items.codes
        self.live_count = 0
        self._doc_group_list = array("i")
        self._doc_value_lists = {field: array("i") for field in DOC_FIELDS}
        self._doc_bit_lists = {field: array("q") for field in MULTI_DOC_FIELDS}
        self._doc_hf_list = array("q")
        self._doc_pop_list = array("d")
        self._alive_list = array("b")
        self._values = {field: ValueIds() for field in (*GROUP_FIELDS, *DOC_FIELDS, *MULTI_DOC_FIELDS)}
        self._group_of: dict[tuple, int] = {}
        self._group_names = TextTable()  # read by the phrase boost: decoded, not shared objects
        self._group_name_len: list[int] = []
        self._group_values: dict[str, list[tuple[int, ...]]] = {field: [] for field in GROUP_FIELDS}
        self._exact = PostingTable()  # whole names and aliases -> groups (weights unread): no list per name
        self._pending_exact: dict[str, tuple[list[int], list[float]]] = {}
        self._pending_terms: dict[str, tuple[list[int], list[float]]] = {}
        self._postings = PostingTable()
        self._lexicon = PinyinLexicon()
        self._lexicon_words: set[str] = set()
        self._analyzer = QueryAnalyzer(self._postings, synonyms, self._lexicon, self._frequency)

    # ----------------------------------------------------------------- items

    def add(self, item: Mapping[str, Any]) -> None:
        """Append an item; a live item with the same code is marked dead. Call `finish()` after adding."""
        code = str(item["code"])
        previous = self.codes.row(code)
        if previous is not None:
            self._kill(previous)
        self.items.append(item)
        self._doc_group_list.append(self._group_for(item))
        for field, source in DOC_FIELDS.items():
            self._doc_value_lists[field].append(self._values[field].id(doc_value(item.get(source))))
        for field, source in MULTI_DOC_FIELDS.items():
            bits = 0
            for value in as_values(item.get(source)):
                bit = self._values[field].id(value)
                if bit >= MAX_CHANNELS:
                    raise ValueError(f"more than {MAX_CHANNELS} distinct values of {source}")
                bits |= 1 << bit
            self._doc_bit_lists[field].append(bits)
        self._doc_hf_list.append(hf_rank(item))
        popularity = item.get("popularity") or 0
        self._doc_pop_list.append(float(popularity) if isinstance(popularity, (int, float)) else 0.0)
        self._alive_list.append(1)
        self.live_count += 1

    def remove(self, code: str) -> bool:
        """Mark the item with this code dead; returns whether it existed."""
        doc = self.codes.row(str(code))
        if doc is None:
            return False
        self.codes.forget(str(code))
        self._kill(doc)
        return True

    def get(self, code: str) -> dict[str, Any] | None:
        """A new dict equal to the live item added under `code`."""
        doc = self.codes.row(str(code))
        return None if doc is None else self.items.get(doc)

    def live_items(self) -> list[Mapping[str, Any]]:
        return [self.items.get(doc) for doc in range(self.items.count) if self._alive_list[doc]]

    def _kill(self, doc: int) -> None:
        if self._alive_list[doc]:
            self._alive_list[doc] = 0
            self.live_count -= 1

    def _frequency(self, term: str) -> int:
        return self._postings.size(term)

    def _group_for(self, item: Mapping[str, Any]) -> int:
        name = str(item.get("name") or "")
        aliases = tuple(str(a) for a in item.get("aliases") or ())
        values = {field: as_values(item.get(source)) for field, source in GROUP_FIELDS.items()}
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
                gids, weights = self._pending_exact.setdefault(compact, ([], []))
                gids.append(gid)
                weights.append(1.0)
        topics = [self.topic_names.get(t, t) for t in values["topic"]]
        topics = [t for t in topics if is_cjk(normalize(t).replace(" ", ""))]
        department = strip_place_names(str(item.get("department") or ""), str(item.get("hall_name") or ""))
        for term, weight in item_terms(name, aliases, department, topics).items():
            gids, weights = self._pending_terms.setdefault(term, ([], []))
            gids.append(gid)
            weights.append(weight)
        self._lexicon_words.update(item_words(name, aliases, department, topics))
        return gid

    # ----------------------------------------------------------------- postings

    def finish(self, *, with_synonyms: bool = False) -> None:
        """Merge pending term postings into numpy postings, weighting by the current idf, and
        feed new words (and, on a full build, the synonym words) to the pinyin lexicon."""
        for table, pending in ((self._postings, self._pending_terms), (self._exact, self._pending_exact)):
            table.merge(pending, max(len(self._group_names), 1), compact=with_synonyms)
            pending.clear()
        self.codes.settle(np.flatnonzero(np.array(self._alive_list, dtype=bool)))
        synonym_words = self.synonyms.words()
        for word in self._lexicon_words:
            priority = self._postings.size(word) + (1000 if word in synonym_words else 0)
            self._lexicon.add(word, priority)
        if with_synonyms:
            for word in synonym_words - self._lexicon_words:
                if is_cjk(word):
                    self._lexicon.add(word, 1000.0)
            self._lexicon.settle()
        self._lexicon_words = set()

    # ----------------------------------------------------------------- freezing

    def freeze(self) -> IndexData:
        """The query arrays of the items added so far (O(n log n)).

        Items are kept in CSR lists per group and per hall/department, pre-sorted by browse rank
        (high-frequency rank, then popularity, then code), so a hall browse is a slice. Halls
        offering the same services share a "profile" (see `_value_profiles`).
        """
        n = self.items.count
        n_groups = len(self._group_names)
        doc_group = np.array(self._doc_group_list, dtype=np.int32)
        doc_values = {f: np.array(v, dtype=np.int32) for f, v in self._doc_value_lists.items()}
        doc_bits = {f: np.array(v, dtype=np.int64) for f, v in self._doc_bit_lists.items()}
        hf_rank_of = np.array(self._doc_hf_list, dtype=np.int64)
        doc_hf = hf_rank_of > 0
        alive = np.array(self._alive_list, dtype=bool)
        popularity = np.array(self._doc_pop_list, dtype=np.float64)
        order = np.argsort(self.codes.settle(np.flatnonzero(alive)), kind="stable").astype(np.int64)
        order = order[np.argsort(-popularity[order], kind="stable")]
        hf_key = np.where(doc_hf, hf_rank_of, hf_rank_of.max(initial=0) + 1)
        order = order[stable_argsort(hf_key[order])]
        pop_rank = np.empty(n, dtype=np.int64)
        pop_rank[order] = np.arange(n)
        browse_order = order[alive[order]].astype(np.int32)
        hf_docs = browse_order[doc_hf[browse_order]]
        live = np.flatnonzero(alive).astype(np.int32)
        live_groups = doc_group[live]
        group_indptr, group_docs = rows_in_order(doc_group, browse_order, n_groups)
        group_live = np.diff(group_indptr)
        group_hf_live = np.bincount(live_groups[doc_hf[live]], minlength=n_groups)
        value_docs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        group_value_counts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        value_totals: dict[str, np.ndarray] = {}
        profiles: dict[str, tuple[np.ndarray, ...] | None] = {}
        for field, values in doc_values.items():
            n_values = len(self._values[field].values)
            value_docs[field] = rows_in_order(values, browse_order, n_values)
            pairs, counts = np.unique(live_groups.astype(np.int64) * n_values + values[live], return_counts=True)
            rows = pairs // max(n_values, 1)
            row_ptr = np.zeros(n_groups + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n_groups), out=row_ptr[1:])
            group_value_counts[field] = (row_ptr, (pairs % max(n_values, 1)).astype(np.int32), counts)
            value_totals[field] = np.bincount(values[live], minlength=n_values)
            profiles[field] = self._value_profiles(field, group_value_counts[field], n_groups, n_values)
        group_bit_counts: dict[str, np.ndarray] = {}
        for field, bits in doc_bits.items():
            n_values = len(self._values[field].values)
            matrix = np.zeros((n_groups, n_values), dtype=np.int64)
            for bit in range(n_values):
                has = (bits[live] >> bit) & 1 == 1
                matrix[:, bit] = np.bincount(live_groups[has], minlength=n_groups)
            group_bit_counts[field] = matrix
        names_len = np.asarray(self._group_name_len, dtype=np.float32)
        mean_len = float(names_len.mean()) if n_groups else 1.0
        group_flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for field in GROUP_FIELDS:
            rows = self._group_values[field]
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            flat_values = np.fromiter((v for r in rows for v in r), dtype=np.int32, count=int(lengths.sum()))
            group_flat[field] = (np.repeat(np.arange(len(rows), dtype=np.int32), lengths), flat_values)
        return IndexData(
            codes=self.codes, values=self._values, group_names=self._group_names,
            exact=self._exact, postings=self._postings, analyzer=self._analyzer,
            n_groups=n_groups, live_count=self.live_count, doc_group=doc_group, doc_values=doc_values,
            doc_bits=doc_bits, doc_hf=doc_hf, pop_rank=pop_rank, browse_order=browse_order, hf_docs=hf_docs,
            other_docs=browse_order[~doc_hf[browse_order]], score_key_scale=n + 1, group_indptr=group_indptr,
            group_docs=group_docs, group_live=group_live, group_hf_live=group_hf_live,
            hf_by_group=bool(np.all((group_hf_live == 0) | (group_hf_live == group_live))),
            hf_total=int(hf_docs.size), value_docs=value_docs, group_value_counts=group_value_counts,
            value_totals=value_totals, profiles=profiles, group_bit_counts=group_bit_counts,
            group_norm=(1.0 / (0.8 + 0.2 * names_len / max(mean_len, 1.0))).astype(np.float32),
            group_flat=group_flat,
            value_ranks={field: values.sort_ranks() for field, values in self._values.items()},
        )

    def _value_profiles(
        self, field: str, group_value_counts: tuple[np.ndarray, np.ndarray, np.ndarray], n_groups: int, n_values: int
    ) -> tuple[np.ndarray, ...] | None:
        """Values (halls) offering the same groups share a profile: returns (profile x group
        counts, profile of each value, CSR of each profile's named values in value order), or
        None when that matrix would be too large. The hall facet then costs O(profiles x groups),
        not O(halls)."""
        row_ptr, values, counts = group_value_counts
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
        members_ptr, members = csr(profile_of_value[listed], ranks[listed], len(profile_ids))
        return matrix, profile_of_value, members_ptr, listed[members]
