"""Pinyin: full spellings and initials of catalogue words, resolved back to the words (yibao, yb -> 医保)."""
from __future__ import annotations

import bisect
from functools import cache, lru_cache
from typing import Iterable

from .pinyin_tables import TablePinyin

PINYIN_FULL_WEIGHT = 0.9
PINYIN_INITIALS_WEIGHT = 0.75
PINYIN_PREFIX_WEIGHT = 0.6
MAX_PINYIN_CANDIDATES = 6
HOMOPHONE_MIN_CHARS = 3
PINYIN_RANK_DECAY = 0.7
_VOWELS = set("aeiouv")
WORD_CACHE_SIZE = 2_048  # per worker; every distinct query adds its spans, so the cache is kept small


_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("r", "l"), ("f", "h"))
_FUZZY_FINALS = (("iang", "ian"), ("uang", "uan"), ("ang", "an"), ("eng", "en"), ("ing", "in"))


def _fuzzy_syllable(syllable: str) -> str:
    """A syllable with the initials and finals people mix up folded together (zh/z, n/l, ing/in, ...)."""
    for wrong, right in _FUZZY_INITIALS:
        if syllable.startswith(wrong):
            syllable = right + syllable[len(wrong):]
            break
    for wrong, right in _FUZZY_FINALS:
        if syllable.endswith(wrong):
            return syllable[: -len(wrong)] + right
    return syllable


@cache
def _converter() -> TablePinyin:
    return TablePinyin()


def toneless(word: str) -> list[str]:
    """pypinyin's `lazy_pinyin(word, style=NORMAL, errors="ignore")`, read from `pinyin_tables`."""
    return _converter().lazy_pinyin(word, errors="ignore")


@lru_cache(maxsize=WORD_CACHE_SIZE)
def fuzzy_key(word: str) -> str:
    """Toneless pinyin with fuzzy initials and finals: 零时牌 and 临时牌 -> "linsipai"."""
    return "".join(_fuzzy_syllable(s) for s in toneless(word) if s.isalpha())


@lru_cache(maxsize=WORD_CACHE_SIZE)
def pinyin_keys(word: str) -> tuple[str, str]:
    """Return (full pinyin joined, initials) of a Chinese word, e.g. ("yibao", "yb")."""
    syllables = [s for s in toneless(word) if s.isalpha()]
    full = "".join(syllables).replace("ü", "v")
    initials = "".join(s[0] for s in syllables)
    return full, initials


class PinyinLexicon:
    """Maps full pinyin, initials and full-pinyin prefixes back to catalogue words.

    Pinyin is resolved back to Chinese words instead of indexing pinyin strings, so pinyin queries
    get the same ranking as Chinese ones; run-together pinyin such as "yibaoyidi" is split into
    known syllable words.
    """

    def __init__(self) -> None:
        self.full: dict[str, set[str]] = {}
        self.initials: dict[str, set[str]] = {}
        self.fuzzy: dict[str, set[str]] = {}
        self.priority: dict[str, float] = {}
        self._sorted_full: list[str] | None = None

    def add(self, word: str, priority: float = 0.0) -> None:
        full, initials = pinyin_keys(word)
        if len(full) < 2:
            return
        self.full.setdefault(full, set()).add(word)
        if len(word) >= HOMOPHONE_MIN_CHARS:
            self.fuzzy.setdefault(fuzzy_key(word), set()).add(word)
        if len(initials) >= 2:
            self.initials.setdefault(initials, set()).add(word)
        if priority > self.priority.get(word, -1.0):
            self.priority[word] = priority
        self._sorted_full = None

    def settle(self) -> None:
        """Sort the full-pinyin keys for prefix lookups now (a full build, in the master before it forks)
        instead of at each worker's first prefix query, where the sorted copy would be the worker's own."""
        self._sorted_full = sorted(self.full)

    def _rank(self, words: Iterable[str]) -> list[str]:
        return sorted(words, key=lambda w: (-self.priority.get(w, 0.0), len(w), w))[:MAX_PINYIN_CANDIDATES]

    def homophone(self, word: str) -> str | None:
        """The catalogue word that sounds like `word` (same pinyin, else fuzzy pinyin), best first; None if none."""
        if len(word) < HOMOPHONE_MIN_CHARS:
            return None
        same = self.full.get(pinyin_keys(word)[0], set()) - {word}
        candidates = [w for w in same if len(w) == len(word)]
        if not candidates:
            candidates = [w for w in self.fuzzy.get(fuzzy_key(word), ()) if w != word and len(w) == len(word)]
        if not candidates:
            return None
        return min(candidates, key=lambda w: (-self.priority.get(w, 0.0), w))

    def exact(self, latin: str) -> list[tuple[str, float]]:
        """Words spelt `latin` (full pinyin, then initials), the more common ones weighing more: initials are
        ambiguous (yb: 医保, 预备, ...), so each further candidate counts a little less than the one before."""
        found: dict[str, float] = {}
        for rank, word in enumerate(self._rank(self.full.get(latin, ()))):
            found[word] = PINYIN_FULL_WEIGHT * PINYIN_RANK_DECAY ** rank
        for rank, word in enumerate(self._rank(self.initials.get(latin, ()))):
            found.setdefault(word, PINYIN_INITIALS_WEIGHT * PINYIN_RANK_DECAY ** rank)
        return list(found.items())

    def prefix(self, latin: str) -> list[tuple[str, float]]:
        if len(latin) < 3 or not any(c in _VOWELS for c in latin):
            return []
        if self._sorted_full is None:
            self._sorted_full = sorted(self.full)
        keys = self._sorted_full
        start = bisect.bisect_left(keys, latin)
        end = bisect.bisect_left(keys, latin + "{", lo=start)
        candidates = sorted(keys[start : min(end, start + 400)], key=len)[: MAX_PINYIN_CANDIDATES * 2]
        words = {w for key in candidates for w in self.full[key]}
        return [(w, PINYIN_PREFIX_WEIGHT) for w in self._rank(words)]

    def split(self, latin: str) -> list[str] | None:
        """Segment concatenated full pinyin into known keys with the fewest pieces."""
        n = len(latin)
        if n < 4 or n > 60:
            return None
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(2, n + 1):
            for start in range(max(0, end - 30), end - 1):
                prev = best[start]
                piece = latin[start:end]
                if prev is not None and piece in self.full:
                    if best[end] is None or len(prev) + 1 < len(best[end]):
                        best[end] = prev + [piece]
        result = best[n]
        return result if result and len(result) > 1 else None
