"""jieba's tokenizer with its dictionary in a marisa trie: the same cuts as jieba's own, in a few
megabytes instead of a dict of half a million words and prefixes (about 65 MB in every process that
segments, which gunicorn's workers would share with the master only until their reads write to it)."""
from __future__ import annotations

from array import array

import jieba
import marisa_trie


class TrieFrequencies:
    """What jieba reads of its `FREQ` dict (`in`, `[]`, `get`) and writes (`add_word`): the
    dictionary's words in a trie with their counts in an array, words added later in a small dict.
    A prefix that is no word is `in` it, as in jieba's dict, but `get` answers the default for it
    where jieba's dict answers 0 (jieba only tests the count for truth)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.trie = marisa_trie.Trie(word for word, count in counts.items() if count)
        self.counts = array("q", bytes(8 * len(self.trie)))
        for word, key_id in self.trie.iteritems():
            self.counts[key_id] = counts[word]
        self.added: dict[str, int] = {}
        self.added_prefixes: set[str] = set()  # every prefix of an added word: where a scan of them stops

    def get(self, word: str, default=None):
        if self.added:
            count = self.added.get(word)
            if count is not None:
                return count
        key_id = self.trie.get(word)
        return default if key_id is None else self.counts[key_id]

    def __getitem__(self, word: str) -> int:
        count = self.get(word)
        if count is None:
            if word in self:
                return 0
            raise KeyError(word)
        return count

    def __contains__(self, word: str) -> bool:
        return word in self.added or next(self.trie.iterkeys(word), None) is not None

    def __setitem__(self, word: str, count: int) -> None:
        self.added[word] = count
        self.added_prefixes.update(word[:size] for size in range(1, len(word) + 1))

    def ends(self, text: str, start: int) -> list[int]:
        """Where each word that `text[start:]` begins with ends (jieba's DAG entry, ascending); a word
        added later counts with its added count, also when the trie has it."""
        rest, added = text[start:], self.added
        found = [start + len(word) - 1 for word in self.trie.prefixes(rest) if word not in added]
        if rest[:1] not in self.added_prefixes:
            return found
        size, prefixes = 1, self.added_prefixes
        while size <= len(rest) and rest[:size] in prefixes:
            if added.get(rest[:size]):
                found.append(start + size - 1)
            size += 1
        return sorted(found)


class TrieTokenizer(jieba.Tokenizer):
    """A `jieba.Tokenizer` whose dictionary becomes a `TrieFrequencies` once loaded; its DAG comes
    from the trie's prefix search instead of one dict lookup per growing fragment."""

    def initialize(self, dictionary=None) -> None:
        super().initialize(dictionary)
        with self.lock:
            if not isinstance(self.FREQ, TrieFrequencies):
                self.FREQ = TrieFrequencies(self.FREQ)

    def get_DAG(self, sentence: str) -> dict[int, list[int]]:  # noqa: N802 (jieba's name)
        self.check_initialized()
        ends = self.FREQ.ends
        return {start: ends(sentence, start) or [start] for start in range(len(sentence))}
