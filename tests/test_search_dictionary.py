"""jieba's dictionary in a trie (app.catalogue.search.dictionary): every cut is the one jieba's own
tokenizer makes (jieba itself is the oracle), with the user dictionary, words added later and words
forced apart, and the trie holds the dictionary instead of a dict of half a million entries."""
from __future__ import annotations

import csv
import logging
import random

import jieba
import pytest

from app.catalogue.search.dictionary import TrieFrequencies, TrieTokenizer
from app.catalogue.search.text import DATA_DIR, USERDICT_PATH

ADDED = [("户口本", 50_000), ("开个公司", 50_000), ("居民身份证", 80_000), ("营业执照", 0), ("跨省通办专窗", 60_000),
         ("公积金提取", 50_000)]


@pytest.fixture(scope="module")
def tokenizers():
    jieba.setLogLevel(logging.WARNING)
    ours, theirs = TrieTokenizer(), jieba.Tokenizer()
    for tokenizer in (ours, theirs):
        tokenizer.initialize()
        tokenizer.load_userdict(str(USERDICT_PATH))
    return ours, theirs


def _sentences() -> list[str]:
    """The real catalogue's item names and parents, and random joins of them (unseen runs)."""
    with (DATA_DIR / "imported_items.csv").open(encoding="utf-8") as f:
        names = [text for row in csv.DictReader(f) for text in (row["name"], row["parent_item"]) if text]
    rnd = random.Random(11)
    return names + ["".join(rnd.sample(names, 2)) for _ in range(500)] + ["", "证", "abc户口本123办理"]


def _cuts(tokenizer, sentences):
    return [(tokenizer.lcut(s, HMM=False), tokenizer.lcut_for_search(s, HMM=False), tokenizer.lcut(s, cut_all=True))
            for s in sentences]


def test_every_cut_is_jiebas_own(tokenizers):
    ours, theirs = tokenizers
    sentences = _sentences()
    assert len(sentences) > 2_000
    assert _cuts(ours, sentences) == _cuts(theirs, sentences)


def test_words_added_or_forced_apart_later_cut_as_in_jieba(tokenizers):
    ours, theirs = tokenizers
    sentences = ["我的户口本丢了想开个公司", "居民身份证和营业执照跨省通办专窗", "住房公积金提取营业执照副本"]
    before = _cuts(ours, sentences)
    for tokenizer in (ours, theirs):
        for word, count in ADDED:
            tokenizer.add_word(word, freq=count)
    after = _cuts(ours, sentences)
    assert after == _cuts(theirs, sentences)
    assert after != before
    assert "营业执照" not in after[1][0] and "跨省通办专窗" in after[1][0]
    assert ours.FREQ.get("营业执照") == 0 and ours.FREQ["跨省通办专窗"] == 60_000 and ours.total == theirs.total


def test_lookups_answer_as_jiebas_dict_does(tokenizers):
    ours, theirs = tokenizers
    for word in ("身份证", "身份", "户口本", "中华人民共和", "不是词典里的词", "跨省通办专"):
        assert (word in ours.FREQ) == (word in theirs.FREQ)
        assert bool(ours.FREQ.get(word)) == bool(theirs.FREQ.get(word))
        if word in theirs.FREQ:
            assert ours.FREQ[word] == theirs.FREQ[word]
    with pytest.raises(KeyError):
        ours.FREQ["不是词典里的词"]


def test_the_dictionary_is_a_trie_not_a_dict(tokenizers):
    ours, theirs = tokenizers
    assert isinstance(ours.FREQ, TrieFrequencies)
    words = sum(1 for count in theirs.FREQ.values() if count)
    assert len(ours.FREQ.trie) > 300_000 and len(ours.FREQ.added) < 2_000
    assert len(ours.FREQ.trie) + len(ours.FREQ.added) >= words
