"""Numpy helpers of the search index: CSR rows, stable sorts and top-k selection without Python loops."""
from __future__ import annotations

import numpy as np


def top_k(candidates: np.ndarray, keys: np.ndarray, need: int) -> np.ndarray:
    """Candidates ordered by ascending (unique) key, only the first `need` of them."""
    if need < candidates.size:
        part = np.argpartition(keys, need - 1)[:need]
        return candidates[part[np.argsort(keys[part])]]
    return candidates[np.argsort(keys)]


def csr(rows: np.ndarray, order_keys: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by `rows`, each row ordered by `order_keys`; returns (indptr, flat)."""
    flat = np.lexsort((order_keys, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, flat


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort; radix sort when the keys fit 16 bits (group, hall and rank ids usually do)."""
    if keys.size and 0 <= keys.min() and keys.max() < 2**16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def rows_in_order(rows: np.ndarray, ordered_docs: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, docs) of `ordered_docs` grouped by `rows[doc]`, keeping their order in each row."""
    doc_rows = rows[ordered_docs]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc_rows, minlength=n_rows), out=indptr[1:])
    return indptr, ordered_docs[stable_argsort(doc_rows)]


def gather_rows(indptr: np.ndarray, flat: np.ndarray, rows: np.ndarray, limit: int | None = None) -> np.ndarray:
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
