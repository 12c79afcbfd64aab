"""Term postings as one marisa trie and three flat arrays, with the terms changed since in a small dict on top.

A dict of per-term array pairs puts three Python objects per term in the master, and every query that reads a
term writes their reference counts, copying those pages into the worker; here a read makes two short-lived
views of arrays the master made, and writes nothing the master shares."""
from __future__ import annotations

import math
from array import array
from typing import Iterator, Mapping

import marisa_trie
import numpy as np

COMPACT_AFTER = 5_000  # changed terms kept apart before the table is rebuilt as a whole
Pending = Mapping[str, tuple[list[int], list[float]]]


class PostingTable:
    """term -> (group ids int32, weights float32), read like a dict (`in`, `get`, `[]`); written by `merge`."""

    def __init__(self) -> None:
        self._trie = marisa_trie.Trie()
        self._starts = array("q", [0])
        self._gids = np.zeros(0, dtype=np.int32)
        self._weights = np.zeros(0, dtype=np.float32)
        self._changed: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, term: str, default=None) -> tuple[np.ndarray, np.ndarray] | None:
        if self._changed:
            found = self._changed.get(term)
            if found is not None:
                return found
        row = self._trie.get(term)
        if row is None:
            return default
        start, end = self._starts[row], self._starts[row + 1]
        return self._gids[start:end], self._weights[start:end]

    def __getitem__(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        found = self.get(term)
        if found is None:
            raise KeyError(term)
        return found

    def __contains__(self, term: object) -> bool:
        return term in self._changed or term in self._trie

    def __len__(self) -> int:
        return len(self._trie) + sum(1 for term in self._changed if term not in self._trie)

    def __iter__(self) -> Iterator[str]:
        yield from self._trie.iterkeys()
        yield from (term for term in self._changed if term not in self._trie)

    def size(self, term: str) -> int:
        """How many groups the term occurs in (0 for an unknown term)."""
        found = self.get(term)
        return 0 if found is None else int(found[0].size)

    def merge(self, pending: Pending, n_groups: int, *, compact: bool = False) -> None:
        """Append each pending term's groups and weights, the weights scaled by the term's BM25 idf over
        `n_groups` (earlier postings keep the idf they were scaled with); with `compact`, or once many terms
        changed, rebuild the trie and arrays as a whole."""
        if compact or len(self._changed) + len(pending) > COMPACT_AFTER:
            self._rebuild(pending, n_groups)
            return
        for term, (gids, weights) in pending.items():
            old = self.get(term)
            new_gids = np.asarray(gids, dtype=np.int32)
            scaled = np.asarray(weights, dtype=np.float32) * _idf(new_gids.size + _size(old), n_groups)
            if old is not None:
                new_gids, scaled = np.concatenate([old[0], new_gids]), np.concatenate([old[1], scaled])
            self._changed[term] = (new_gids, scaled)

    def _rebuild(self, pending: Pending, n_groups: int) -> None:
        trie = marisa_trie.Trie([*self, *pending])
        by_row = [""] * len(trie)
        for term, row in trie.iteritems():
            by_row[row] = term
        gids, weights, scales, starts = array("i"), array("f"), array("f"), array("q", [0])
        for term in by_row:
            old = self.get(term)
            if old is not None:
                gids.extend(old[0].tolist())
                weights.extend(old[1].tolist())
                scales.extend([1.0] * old[0].size)
            new = pending.get(term)
            if new is not None:
                idf = _idf(len(new[0]) + _size(old), n_groups)
                gids.extend(new[0])
                weights.extend(new[1])
                scales.extend([float(idf)] * len(new[0]))
            starts.append(len(gids))
        self._trie, self._starts, self._changed = trie, starts, {}
        self._gids = np.array(gids, dtype=np.int32)
        self._weights = np.array(weights, dtype=np.float32) * np.array(scales, dtype=np.float32)
        self._gids.flags.writeable = self._weights.flags.writeable = False


def _size(posting: tuple[np.ndarray, np.ndarray] | None) -> int:
    return 0 if posting is None else int(posting[0].size)


def _idf(df: int, n_groups: int) -> np.float32:
    return np.float32(math.log(1.0 + (n_groups - df + 0.5) / (df + 0.5)))
