"""Querying the search index: score groups, filter, rank and page items over one frozen `IndexData`."""
from __future__ import annotations

import math
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .arrays import gather_rows, top_k
from .build import IndexData
from .facets import facet_counts
from .fields import DEFAULT_FACETS, DOC_FIELDS, FLAG_FIELD, GROUP_FIELDS, MULTI_DOC_FIELDS, canonical_field, filter_key
from .text import is_cjk, normalize

EXACT_BONUS = 20.0
HIGH_FREQUENCY_PRIOR = 0.25
ACTION_COORDINATION = 2.0  # what most people apply for is what an ambiguous query most likely means
PHRASE_BONUS = 4.0
PHRASE_CHECK_TOP = 64
SCORE_QUANTUM = 100.0
MIN_CACHED_PREFIX = 100
RESULT_CACHE_SIZE = 64
SCORE_CACHE_SIZE = 32


@dataclass(frozen=True)
class SearchResult:
    """One page of results; `facets` lists are shared with the cache and must not be mutated."""

    ids: list[str]
    total: int
    facets: dict[str, list[dict[str, Any]]]
    page: int
    page_size: int
    hall_counts: dict[str, int] | None = None  # collapsed searches: how many halls offer each returned item


@dataclass
class _CacheEntry:
    ordered: np.ndarray
    complete: bool
    total: int
    facets: dict[str, list[dict[str, Any]]]
    group_counts: np.ndarray | None = None  # collapsed: offering halls per ordered doc


class QueryEngine:
    """Ranks, filters, facets and paginates one snapshot of the index; not thread-safe by itself.

    A query concept scores the best of its alternatives (see `analyzer`); the query score is the
    sum over concepts times the fraction of concepts matched (coordination), scaled by a mild
    name-length norm, plus exact-name and phrase boosts. Near-ties (scores quantised to 0.01) fall
    back to the browse order: high-frequency rank, then popularity, then code. A query takes at
    most k items from each of its best groups before the top-k argpartition; without item-level
    filters, totals and facets come from per-group counts instead of touching every matched item.

    Results (ordered prefix, total, facets) and per-query group scores sit in LRU caches that live
    as long as the snapshot.
    """

    def __init__(self, data: IndexData) -> None:
        self.data = data
        self.result_cache: OrderedDict[tuple, _CacheEntry] = OrderedDict()
        self.score_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

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
        """See `SearchIndex.search`."""
        if page < 1 or page_size < 1:
            raise ValueError("page and page_size must be positive")
        codes = self.data.codes
        query = normalize(q)
        code = unicodedata.normalize("NFKC", q).strip() if query else ""
        if code and codes.row(code) is None:
            code = next((c for c in (code.upper(), code.lower()) if codes.row(c) is not None), "")
        filters_key = filter_key(filters)
        facets = tuple(canonical_field(f) for f in facet_fields)
        prefer_key = tuple(tuple(tier) for tier in prefer) if collapse else ()
        cache_key = (query, code, filters_key, facets, facet_limit, collapse, prefer_key)
        start = (page - 1) * page_size
        end = start + page_size
        entry = self.result_cache.get(cache_key)
        if entry is not None and (entry.complete or end <= entry.ordered.size):
            self.result_cache.move_to_end(cache_key)
        else:
            code_doc = codes.row(code) if code else None
            if collapse and code_doc is None:
                entry = self._execute_collapsed(query, filters_key, facets, facet_limit, prefer_key)
            else:
                entry = self._execute(query, code_doc, filters_key, facets, facet_limit, max(end, MIN_CACHED_PREFIX))
            self.result_cache[cache_key] = entry
            if len(self.result_cache) > RESULT_CACHE_SIZE:
                self.result_cache.popitem(last=False)
        ids = [codes.code(d) for d in entry.ordered[start:end].tolist()]
        hall_counts = None
        if entry.group_counts is not None:
            hall_counts = dict(zip(ids, entry.group_counts[start:end].tolist()))
        return SearchResult(ids=ids, total=entry.total, facets=entry.facets, page=page, page_size=page_size,
                            hall_counts=hall_counts)

    def _execute_collapsed(
        self, query: str, filters_key: tuple, facets: tuple[str, ...], facet_limit: int | None, prefer: tuple
    ) -> _CacheEntry:
        """One doc per item (group): the best-ranked items, each as the doc of the most preferred hall
        (`prefer`: tiers of hall codes, e.g. the caller's city, its counties, the province), else the
        item's most popular doc; with the number of halls offering it. Facets count items, the hall facet
        the offering docs."""
        data = self.data
        filters = dict(filters_key)
        scores: np.ndarray | None = None
        eligible: np.ndarray | None = None
        if query:
            scores, eligible = self._group_scores(query)
        for field in GROUP_FIELDS:
            if field in filters:
                mask = self._group_mask(field, filters[field])
                eligible = mask if eligible is None else eligible & mask
        groups = np.arange(data.n_groups) if eligible is None else np.flatnonzero(eligible)
        # each group's live docs, most popular first, groups one after another
        candidates = gather_rows(data.group_indptr, data.group_docs, groups)
        candidates = candidates[self._doc_filter_mask(candidates, filters)]
        if candidates.size == 0:
            return _CacheEntry(ordered=candidates, complete=True, total=0,
                               facets=facet_counts(data, candidates, None, facets, facet_limit),
                               group_counts=np.zeros(0, dtype=np.int64))
        doc_groups = data.doc_group[candidates]
        starts = np.flatnonzero(np.r_[True, doc_groups[1:] != doc_groups[:-1]])
        tier = np.full(candidates.size, len(prefer), dtype=np.int64)
        hall_ids = data.values["hall"].ids
        hall_of = data.doc_values["hall"][candidates]
        for rank in range(len(prefer) - 1, -1, -1):
            wanted = [hall_ids[h] for h in prefer[rank] if h in hall_ids]
            if wanted:
                tier[np.isin(hall_of, wanted)] = rank
        # the first doc (most popular) of the best tier in each group, without sorting
        span = candidates.size + 1
        best = np.minimum.reduceat(tier * span + np.arange(candidates.size), starts) % span
        representatives = candidates[best]
        counts = np.diff(np.append(starts, candidates.size))
        rep_groups = doc_groups[starts]
        best_rank = data.pop_rank[candidates[starts]]
        if scores is not None:
            quantised = np.rint(scores[rep_groups] * SCORE_QUANTUM).astype(np.int64)
            ranking = np.lexsort((best_rank, -quantised))
        else:
            ranking = np.argsort(best_rank, kind="stable")
        ordered = representatives[ranking]
        item_facets = facet_counts(data, ordered, None, tuple(f for f in facets if f != "hall"), facet_limit)
        if "hall" in facets:
            item_facets["hall"] = facet_counts(data, candidates, None, ("hall",), facet_limit)["hall"]
        return _CacheEntry(ordered=ordered, complete=True, total=int(ordered.size),
                           facets={f: item_facets[f] for f in facets}, group_counts=counts[ranking])

    def _execute(
        self,
        query: str,
        code_doc: int | None,
        filters_key: tuple,
        facets: tuple[str, ...],
        facet_limit: int | None,
        need: int,
    ) -> _CacheEntry:
        data = self.data
        filters = dict(filters_key)
        scores: np.ndarray | None = None
        eligible: np.ndarray | None = None
        if query and code_doc is None:
            scores, eligible = self._group_scores(query)
        if FLAG_FIELD in filters and data.hf_by_group:
            hf_groups = data.group_hf_live > 0
            mask = hf_groups if filters.pop(FLAG_FIELD)[0] else ~hf_groups
            eligible = mask if eligible is None else eligible & mask
        for field in GROUP_FIELDS:
            if field in filters:
                mask = self._group_mask(field, filters[field])
                eligible = mask if eligible is None else eligible & mask
        if code_doc is None and all(field in GROUP_FIELDS for field in filters):
            groups = None if eligible is None else np.flatnonzero(eligible)
            total = data.live_count if groups is None else int(data.group_live[groups].sum())
            if scores is not None:
                ordered = self._rank_groups(groups, scores, need)
            else:
                ordered = self._browse_prefix(eligible, need)
            counts = facet_counts(data, None, groups, facets, facet_limit)
            return _CacheEntry(ordered=ordered, complete=ordered.size >= total, total=total, facets=counts)
        candidates, by_popularity = self._filtered_docs(code_doc, filters, eligible)
        if scores is None and by_popularity:
            ordered = candidates[:need]
        elif scores is None:
            ordered = top_k(candidates, data.pop_rank[candidates], need)
        else:
            ordered = top_k(candidates, self._score_keys(candidates, scores), need)
        return _CacheEntry(
            ordered=ordered,
            complete=ordered.size >= candidates.size,
            total=int(candidates.size),
            facets=facet_counts(data, candidates, None, facets, facet_limit),
        )

    def _filtered_docs(
        self, code_doc: int | None, filters: dict[str, tuple], eligible: np.ndarray | None
    ) -> tuple[np.ndarray, bool]:
        """Docs passing item-level filters and the group mask; also whether they are in browse order."""
        data = self.data
        wanted = {
            field: np.asarray(
                [data.values[field].ids[v] for v in filters[field] if v in data.values[field].ids], dtype=np.int64
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
            indptr, docs = data.value_docs[field]
            candidates = gather_rows(indptr, docs, wanted[field].astype(np.int64))
            by_popularity = wanted[field].size <= 1
            done.add(field)
        elif FLAG_FIELD in filters:
            candidates = data.hf_docs if filters[FLAG_FIELD][0] else data.other_docs
            done.add(FLAG_FIELD)
        elif eligible is not None:
            candidates = gather_rows(data.group_indptr, data.group_docs, np.flatnonzero(eligible))
            by_popularity = False
            done.add("groups")
        else:
            candidates = data.browse_order
        if eligible is not None and "groups" not in done:
            candidates = candidates[eligible[data.doc_group[candidates]]]
        for field, ids in wanted.items():
            if field not in done:
                allowed = np.zeros(len(data.values[field].values) + 1, dtype=bool)
                allowed[ids] = True
                candidates = candidates[allowed[data.doc_values[field][candidates]]]
        for field in MULTI_DOC_FIELDS:
            if field in filters:
                ids = data.values[field].ids
                mask = sum(1 << ids[v] for v in filters[field] if v in ids)
                candidates = candidates[(data.doc_bits[field][candidates] & mask) != 0]
        if FLAG_FIELD in filters and FLAG_FIELD not in done:
            candidates = candidates[data.doc_hf[candidates] == filters[FLAG_FIELD][0]]
        return candidates, by_popularity

    def _doc_filter_mask(self, candidates: np.ndarray, filters: Mapping[str, tuple]) -> np.ndarray:
        """Which candidates pass the item-level filters (department, instant approval, channel, high frequency)."""
        data = self.data
        keep = np.ones(candidates.size, dtype=bool)
        for field in DOC_FIELDS:
            if field in filters:
                ids = data.values[field].ids
                allowed = np.zeros(len(data.values[field].values) + 1, dtype=bool)
                allowed[[ids[v] for v in filters[field] if v in ids]] = True
                keep &= allowed[data.doc_values[field][candidates]]
        for field in MULTI_DOC_FIELDS:
            if field in filters:
                ids = data.values[field].ids
                mask = sum(1 << ids[v] for v in filters[field] if v in ids)
                keep &= (data.doc_bits[field][candidates] & mask) != 0
        if FLAG_FIELD in filters:
            keep &= data.doc_hf[candidates] == filters[FLAG_FIELD][0]
        return keep

    def _value_rows_size(self, field: str, ids: np.ndarray) -> int:
        indptr = self.data.value_docs[field][0]
        return int((indptr[ids + 1] - indptr[ids]).sum()) if ids.size else 0

    def _score_keys(self, docs: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Unique ascending sort keys: higher quantised score first, then browse rank."""
        quantised = np.rint(scores[self.data.doc_group[docs]] * SCORE_QUANTUM).astype(np.int64)
        return self.data.pop_rank[docs] - quantised * self.data.score_key_scale

    def _rank_groups(self, groups: np.ndarray | None, scores: np.ndarray, need: int) -> np.ndarray:
        """Top `need` docs of the matching groups, only expanding the best-scoring groups."""
        data = self.data
        if groups is None:
            groups = np.arange(data.n_groups)
        quantised = np.rint(scores[groups] * SCORE_QUANTUM).astype(np.int64)
        order = np.argsort(-quantised, kind="stable")
        groups, quantised = groups[order], quantised[order]
        reached = int(np.searchsorted(np.cumsum(data.group_live[groups]), need))
        if reached < groups.size:
            boundary = quantised[reached]
            groups = groups[: int(np.searchsorted(-quantised, -boundary, side="right"))]
        docs = gather_rows(data.group_indptr, data.group_docs, groups, need)
        return top_k(docs, self._score_keys(docs, scores), need)

    def _browse_prefix(self, eligible: np.ndarray | None, need: int) -> np.ndarray:
        """First `need` docs in browse order among eligible groups (each group list is sorted)."""
        data = self.data
        if eligible is None:
            return data.browse_order[:need]
        docs = gather_rows(data.group_indptr, data.group_docs, np.flatnonzero(eligible), need)
        return top_k(docs, data.pop_rank[docs], need)

    def _group_mask(self, field: str, values: tuple[str, ...]) -> np.ndarray:
        ids = self.data.values[field].ids
        allowed = np.zeros(len(self.data.values[field].values) + 1, dtype=bool)
        for value in values:
            if value in ids:
                allowed[ids[value]] = True
        row_ids, flat = self.data.group_flat[field]
        mask = np.zeros(self.data.n_groups, dtype=bool)
        mask[row_ids[allowed[flat]]] = True
        return mask

    # ----------------------------------------------------------------- relevance

    def _group_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self.score_cache.get(query)
        if cached is not None:
            self.score_cache.move_to_end(query)
            return cached
        result = self._compute_group_scores(query)
        self.score_cache[query] = result
        if len(self.score_cache) > SCORE_CACHE_SIZE:
            self.score_cache.popitem(last=False)
        return result

    def _compute_group_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        data = self.data
        n_groups = data.n_groups
        concept_scores: list[np.ndarray] = []
        actions: list[bool] = []
        for concept in data.analyzer.analyze(query):
            best: np.ndarray | None = None
            for weight, terms in concept.alternatives:
                postings = [p for p in map(data.postings.get, terms) if p is not None]
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
                actions.append(concept.action)
        if not concept_scores:
            return np.zeros(n_groups, dtype=np.float32), np.zeros(n_groups, dtype=bool)
        total = np.sum(concept_scores, axis=0, dtype=np.float32)
        matched = np.sum([s > 0 for s in concept_scores], axis=0)
        n_concepts = len(concept_scores)
        # coordination: the share of the query's concepts a group has; what to do (注销, 补领) counts double,
        # since it tells 个体工商户注销登记 from 个体工商户设立登记 when both match what the query is about
        weights = np.asarray([ACTION_COORDINATION if action else 1.0 for action in actions], dtype=np.float32)
        covered = np.sum([(s > 0) * w for s, w in zip(concept_scores, weights)], axis=0)
        scores = total * (covered.astype(np.float32) / np.float32(weights.sum())) * data.group_norm
        scores[data.group_hf_live > 0] *= np.float32(1.0 + HIGH_FREQUENCY_PRIOR)
        objects = [s for s, action in zip(concept_scores, actions) if not action]
        if objects and len(objects) < n_concepts:
            # what the query is about must match; what to do with it (补办, 注销) only ranks
            counted = np.sum([s > 0 for s in objects], axis=0)
            required = 1 if len(objects) <= 2 else math.ceil(len(objects) / 2)
        else:
            counted = matched
            required = 1 if n_concepts <= 2 else math.ceil(n_concepts / 2)
        # a long question whose words no single item has all of still gets the items that have most of them
        required = min(required, max(int(counted.max(initial=0)), 1))
        eligible = counted >= required
        compact = query.replace(" ", "")
        named = data.exact.get(compact)
        if named is not None:
            np.add.at(scores, named[0], np.float32(EXACT_BONUS))  # a group named twice (name, alias) gains twice
            eligible[named[0]] = True
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
        names = self.data.group_names
        for gid in candidates.tolist():
            if compact in names[gid]:
                scores[gid] += PHRASE_BONUS
