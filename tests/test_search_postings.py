"""PostingTable answers as a plain dict of per-term arrays merged the same way would, through a full build,
incremental changes and the rebuild that follows many of them; a full build leaves no per-term objects."""
import math
import random

import numpy as np
import pytest

from app.catalogue.search import postings as postings_module
from app.catalogue.search.postings import PostingTable


def _reference_merge(table: dict, pending: dict, n_groups: int) -> None:
    for term, (gids, weights) in pending.items():
        old = table.get(term)
        new_gids = np.asarray(gids, dtype=np.int32)
        df = new_gids.size + (0 if old is None else old[0].size)
        scaled = np.asarray(weights, dtype=np.float32) * np.float32(math.log(1.0 + (n_groups - df + 0.5) / (df + 0.5)))
        if old is not None:
            new_gids, scaled = np.concatenate([old[0], new_gids]), np.concatenate([old[1], scaled])
        table[term] = (new_gids, scaled)


def _pending(rnd: random.Random, terms: list[str], first_group: int, groups: int) -> dict:
    pending: dict = {}
    for gid in range(first_group, first_group + groups):
        for term in rnd.sample(terms, rnd.randint(1, 6)):
            gids, weights = pending.setdefault(term, ([], []))
            gids.append(gid)
            weights.append(rnd.choice((1.0, 0.5, 2.5, 0.3)))
    return pending


def _assert_same(table: PostingTable, reference: dict, terms: list[str]) -> None:
    assert len(table) == len(reference)
    assert set(table) == set(reference)
    for term in terms:
        found, expected = table.get(term), reference.get(term)
        assert (term in table) == (expected is not None)
        if expected is None:
            assert found is None and table.size(term) == 0
            with pytest.raises(KeyError):
                table[term]
            continue
        assert found[0].dtype == np.int32 and found[1].dtype == np.float32
        assert found[0].tolist() == expected[0].tolist()
        assert found[1].tobytes() == expected[1].tobytes()
        assert table.size(term) == expected[0].size


def test_merges_like_a_dict_of_arrays(monkeypatch):
    monkeypatch.setattr(postings_module, "COMPACT_AFTER", 40)
    rnd = random.Random(3)
    terms = [f"词{i}" for i in range(120)] + ["a", "ab", "abc", "身份证", "身份"]
    table, reference = PostingTable(), {}
    first = _pending(rnd, terms[:100], 0, 300)
    table.merge(first, 300, compact=True)
    _reference_merge(reference, first, 300)
    _assert_same(table, reference, terms + ["未知", ""])
    groups, rebuilt = 300, 0
    for step in range(12):  # small changes stay apart, then many of them trigger a rebuild
        more = _pending(rnd, terms, groups, rnd.randint(1, 8))
        groups += 8
        table.merge(more, groups)
        _reference_merge(reference, more, groups)
        _assert_same(table, reference, terms + ["未知"])
        rebuilt += not table._changed
    assert 0 < rebuilt < 12


def test_a_full_build_keeps_no_object_per_term():
    rnd = random.Random(5)
    terms = [f"t{i}" for i in range(500)]
    table = PostingTable()
    table.merge(_pending(rnd, terms, 0, 2000), 2000, compact=True)
    gids, weights = table["t7"]
    assert gids.base is table._gids and weights.base is table._weights
    assert not table._changed
    assert not table._gids.flags.writeable and not table._weights.flags.writeable
