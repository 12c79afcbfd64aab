"""Facet counts of a search: per matched item, or per matched group when no item-level filter applies."""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import gather_rows, top_k
from .build import IndexData
from .fields import DOC_FIELDS, FLAG_FIELD, MULTI_DOC_FIELDS, ValueIds

SMALL_FACET = 64


def facet_counts(
    data: IndexData, docs: np.ndarray | None, groups: np.ndarray | None, fields: tuple[str, ...], limit: int | None
) -> dict[str, list[dict[str, Any]]]:
    """Facet counts over `docs`, or over all live docs of `groups` (None: every group), sorted by
    count then value, at most `limit` values per field (None: all)."""
    result: dict[str, list[dict[str, Any]]] = {}
    per_group: np.ndarray | None = None
    for field in fields:
        if field == FLAG_FIELD:
            if docs is not None:
                hf, total = int(np.count_nonzero(data.doc_hf[docs])), int(docs.size)
            elif groups is None:
                hf, total = data.hf_total, data.live_count
            else:
                hf = int(data.group_hf_live[groups].sum())
                total = int(data.group_live[groups].sum())
            pairs = sorted((-c, v) for v, c in (("true", hf), ("false", total - hf)) if c > 0)
            result[field] = [{"value": v, "count": -c} for c, v in pairs][:limit]
            continue
        if field in DOC_FIELDS and docs is None and data.profiles[field] is not None:
            result[field] = _profile_facet(data, field, groups, limit)
            continue
        if field in DOC_FIELDS:
            counts = _doc_field_counts(data, field, docs, groups)
        elif field in MULTI_DOC_FIELDS:
            counts = _multi_field_counts(data, field, docs, groups)
        else:
            if per_group is None:
                if docs is not None:
                    per_group = np.bincount(data.doc_group[docs], minlength=data.n_groups)
                elif groups is None:
                    per_group = data.group_live
                else:
                    per_group = np.zeros(data.n_groups, dtype=np.int64)
                    per_group[groups] = data.group_live[groups]
            row_ids, flat = data.group_flat[field]
            counts = np.bincount(flat, weights=per_group[row_ids], minlength=len(data.values[field].values))
        result[field] = _facet_list(counts, data.values[field], data.value_ranks[field], limit)
    return result


def _doc_field_counts(data: IndexData, field: str, docs: np.ndarray | None, groups: np.ndarray | None) -> np.ndarray:
    n_values = len(data.values[field].values)
    if docs is not None:
        return np.bincount(data.doc_values[field][docs], minlength=n_values)
    totals = data.value_totals[field]
    if groups is None:
        return totals.copy()
    row_ptr, values, counts = data.group_value_counts[field]
    selected = int((row_ptr[groups + 1] - row_ptr[groups]).sum())
    if selected * 2 <= values.size:
        positions = gather_rows(row_ptr, np.arange(values.size), groups)
        return np.bincount(values[positions], weights=counts[positions], minlength=n_values).astype(np.int64)
    excluded = np.ones(data.n_groups, dtype=bool)
    excluded[groups] = False
    positions = gather_rows(row_ptr, np.arange(values.size), np.flatnonzero(excluded))
    rest = np.bincount(values[positions], weights=counts[positions], minlength=n_values).astype(np.int64)
    return totals - rest


def _profile_facet(data: IndexData, field: str, groups: np.ndarray | None, limit: int | None) -> list[dict[str, Any]]:
    """Facet of a many-valued item field from per-profile counts, touching only listed values."""
    matrix, _, members_ptr, members = data.profiles[field]
    if groups is None:
        profile_counts = np.rint(matrix.sum(axis=1)).astype(np.int64)
    else:
        selected = np.zeros(data.n_groups, dtype=np.float64)
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
    values = gather_rows(members_ptr, members, profiles, cap)
    counts = np.repeat(profile_counts[profiles], sizes)
    names = data.values[field].values
    keys = data.value_ranks[field][values] - counts * (len(names) + 1)
    top = top_k(np.arange(values.size), keys, min(cap, values.size)).tolist()
    return [{"value": names[values[i]], "count": int(counts[i])} for i in top]


def _multi_field_counts(data: IndexData, field: str, docs: np.ndarray | None, groups: np.ndarray | None) -> np.ndarray:
    if docs is not None:
        bits = data.doc_bits[field][docs]
        n_values = len(data.values[field].values)
        return np.asarray([np.count_nonzero((bits >> b) & 1) for b in range(n_values)], dtype=np.int64)
    matrix = data.group_bit_counts[field]
    return matrix.sum(axis=0) if groups is None else matrix[groups].sum(axis=0)


def _facet_list(counts: np.ndarray, values: ValueIds, ranks: np.ndarray, limit: int | None) -> list[dict[str, Any]]:
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
    order = top_k(np.arange(present.size), keys, present.size if limit is None else limit)
    return [{"value": names[present[i]], "count": int(present_counts[i])} for i in order.tolist()]
