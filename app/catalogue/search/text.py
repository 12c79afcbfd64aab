"""Chinese text for search: normalisation, runs of CJK/Latin/digits, and jieba segmentation."""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import jieba

from .dictionary import TrieTokenizer

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
USERDICT_PATH = DATA_DIR / "userdict.txt"

logger = logging.getLogger(__name__)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NON_TEXT = re.compile(f"[^0-9a-z{_CJK}]+")
_RUNS = re.compile(f"[{_CJK}]+|[a-z]+|[0-9]+")
_CJK_RUN = re.compile(f"^[{_CJK}]+$")
RUN_CACHE_SIZE = 2_048  # segmentations kept per worker (bounded: every distinct query adds runs)


def normalize(text: str | None) -> str:
    """NFKC-fold (full-width -> half-width), lower-case and replace punctuation/whitespace runs with one
    space; simplified/traditional conversion is out of scope (the catalogue is simplified only)."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text).lower()
    return _NON_TEXT.sub(" ", folded).strip()


def text_runs(text: str) -> list[str]:
    """Split normalised text into runs of CJK characters, ASCII letters and digits."""
    return _RUNS.findall(text)


def is_cjk(text: str) -> bool:
    return bool(_CJK_RUN.match(text))


def cjk_bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


class _Segmenter:
    """Lazily initialised private jieba tokenizer shared by the whole process, its dictionary in a
    trie (`dictionary.TrieTokenizer`).

    HMM is off, so results are deterministic and unknown words fall apart into single characters.
    The tokenizer is loaded once with the catalogue user dictionary; the index adds every synonym
    word and item alias, so colloquial phrases ("户口本", "开个公司") stay whole.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: TrieTokenizer | None = None
        self._added: set[str] = set()

    def tokenizer(self) -> TrieTokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    jieba.setLogLevel(logging.WARNING)
                    tokenizer = TrieTokenizer()
                    tokenizer.initialize()
                    if USERDICT_PATH.is_file():
                        try:
                            tokenizer.load_userdict(str(USERDICT_PATH))
                        except Exception:  # a malformed user dictionary must not break search
                            logger.warning("could not load %s", USERDICT_PATH, exc_info=True)
                    self._tokenizer = tokenizer
        return self._tokenizer

    def add_words(self, words: Iterable[str]) -> None:
        tokenizer = self.tokenizer()
        added = False
        with self._lock:
            for word in words:
                if len(word) >= 2 and word not in self._added and is_cjk(word):
                    tokenizer.add_word(word, freq=max(tokenizer.FREQ.get(word, 0), 50_000))
                    self._added.add(word)
                    added = True
        if added:
            cut.cache_clear()
            cut_for_search.cache_clear()


SEGMENTER = _Segmenter()


@lru_cache(maxsize=RUN_CACHE_SIZE)
def cut(run: str) -> tuple[str, ...]:
    """Accurate-mode segmentation of one CJK run."""
    return tuple(SEGMENTER.tokenizer().lcut(run, HMM=False))


@lru_cache(maxsize=RUN_CACHE_SIZE)
def cut_for_search(run: str) -> tuple[str, ...]:
    """Search-mode segmentation of one CJK run (long words plus their sub-words)."""
    return tuple(SEGMENTER.tokenizer().lcut_for_search(run, HMM=False))
