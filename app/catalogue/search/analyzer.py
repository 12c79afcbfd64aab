"""Query analysis: a raw query becomes concepts, each satisfied by weighted alternatives of index terms."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .pinyin import PinyinLexicon
from .synonyms import SynonymTable
from .text import cjk_bigrams, cut, cut_for_search, is_cjk, normalize, text_runs

STOP_WORDS: frozenset[str] = frozenset(
    """
    怎么办 怎么 怎样 如何 怎么样 咋办 咋 办理 办 要 想 想要 需要 我 我的 我们 你 你们 他 她 了 的 地 得 吗 呢 吧 啊 呀
    哦 么 在 去 到 哪 哪里 哪儿 在哪 在哪里 去哪 去哪里 什么 啥 能 能不能 可以 可不可以 是 有 没有 给 把 被 让 帮 帮我
    请问 请 一下 一个 个 这 那 这个 那个 该 应该 怎么弄 弄 搞 咨询 问 问下 还 也 和 与 及 或 或者 就 都 又 再 从 对 为
    用 需 所需 手续 材料 流程 步骤 条件 多久 多少 多长时间 时间 地方 地点 网上 线上 如何办理 怎样办理 上 下
    哪些 哪个 什么样 带 带什么 整 咋整 程序 过程 办事 东西 的话 之后 以后 时候 现在 如果 要求 规定 办法 攻略 指南 问题 谁 几天 多少钱
    """.split()
)

ACTION_WORDS: frozenset[str] = frozenset(
    """
    补领 补办 补证 补发 换领 换证 换发 期满换证 申领 申请 领取 挂失 解挂 注销 撤销 变更 更改 修改 更正 提取 备案 查询 打印
    开具 证明开具 办理 新办 延续 续期 年检 年审 核发 登记 认定 审批 许可 丢了 丢失 遗失 掉了 过期 到期
    """.split()
)
BIGRAM_FALLBACK_WEIGHT = 0.6
MIXED_JOIN_CHARS = 4
PARTIAL_SYNONYM_FACTOR = 0.8
MAX_CORRECTED_SPAN = 8
RARE_WORD_GROUPS = 5


@dataclass(frozen=True)
class Concept:
    """One meaningful query word and the weighted index-term groups that satisfy it.

    Each alternative is (weight, terms); a document's score for an alternative is the weight
    times the mean of its term weights, provided it has at least half of the terms, and a
    concept scores the best of its alternatives.
    """

    text: str
    alternatives: tuple[tuple[float, tuple[str, ...]], ...]
    action: bool = False


class QueryAnalyzer:
    """Turns a raw query into concepts against a given index vocabulary.

    One concept per meaningful query word, each with weighted alternatives: the word itself, its
    synonyms (colloquial <-> official term), its bigrams when the word is unknown, or, for Latin
    input, the catalogue words whose full pinyin / initials equal or start with it. Situational
    queries lose their stop words (怎么办, 我想, 了 ...); the situation words that matter (丢了, 过期,
    生孩子) are synonyms of official terms (补领, 换领, 出生登记).
    """

    def __init__(
        self,
        vocabulary: Mapping[str, object],
        synonyms: SynonymTable,
        lexicon: PinyinLexicon,
        frequency: Callable[[str], int] | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.synonyms = synonyms
        self.lexicon = lexicon
        self.frequency = frequency or (lambda term: int(term in vocabulary))

    def analyze(self, query: str) -> list[Concept]:
        norm = normalize(query)
        runs = [self._correct(run) if is_cjk(run) else run for run in self._join_mixed(text_runs(norm))]
        # question words (怎么办, 需要什么手续, 如何) go, unless the query has nothing else
        drop_stop_words = any(not is_cjk(run) or any(t not in STOP_WORDS for t in cut(run)) for run in runs)
        words: list[str] = []
        for run in runs:
            if is_cjk(run):
                words.extend(self._cjk_words(run, drop_stop_words))
            else:
                words.append(run)
        concepts: list[Concept] = []
        seen: set[str] = set()
        for word in words:
            if word in seen:
                continue
            seen.add(word)
            if is_cjk(word):
                concepts.extend(self._cjk_concepts(word))
            else:
                concepts.extend(self._latin_concepts(word))
        return [Concept(c.text, c.alternatives, self._is_action(c)) for c in concepts if c.alternatives]

    def _is_action(self, concept: Concept) -> bool:
        """A word that says what to do (补办, 丢了 -> 补领, 注销) rather than what it is done to."""
        words = {concept.text} | {t for _, terms in concept.alternatives for t in terms}
        return bool(words & ACTION_WORDS) and not any(len(t) > 2 and t not in ACTION_WORDS
                                                      for _, terms in concept.alternatives for t in terms)

    def _known(self, text: str) -> bool:
        return text in self.vocabulary or text in self.synonyms.to_canonical or text in STOP_WORDS

    def _join_mixed(self, runs: list[str]) -> list[str]:
        """Keep a mixed Chinese-Latin word whole when the catalogue knows it (开KTV, KTV许可): the end of a
        Chinese run joins the Latin run after it, or the Latin run joins the start of the Chinese run after it."""
        result: list[str] = []
        i = 0
        while i < len(runs):
            run = runs[i]
            following = runs[i + 1] if i + 1 < len(runs) else None
            if following is not None and is_cjk(run) != is_cjk(following) and not run.isdigit():
                cjk_first = is_cjk(run)
                joined = None
                for k in range(min(MIXED_JOIN_CHARS, len(run if cjk_first else following)), 0, -1):
                    candidate = run[-k:] + following if cjk_first else run + following[:k]
                    if self._known(candidate):
                        joined = k, candidate
                        break
                if joined is not None:
                    k, candidate = joined
                    if cjk_first:
                        result += ([run[:-k]] if len(run) > k else []) + [candidate]
                        i += 2
                    else:
                        result.append(candidate)
                        runs = runs[: i + 1] + ([following[k:]] if len(following) > k else []) + runs[i + 2 :]
                        i += 1
                    continue
            result.append(run)
            i += 1
        return result

    def _correct(self, run: str) -> str:
        """Replace unknown spans (3+ characters) that sound like a catalogue word with that word, longest spans
        first: typed homophones and near-homophones (零时牌 -> 临时牌, ing/in, zh/z, n/l are folded)."""
        if len(run) < 3 or self._known(run):
            return run
        out: list[str] = []
        i, n = 0, len(run)
        while i < n:
            for j in range(min(n, i + MAX_CORRECTED_SPAN), i + 1, -1):
                span = run[i:j]
                if self._known(span):
                    out.append(span)
                    i = j
                    break
                replacement = self.lexicon.homophone(span)
                if replacement is not None:
                    out.append(replacement)
                    i = j
                    break
            else:
                out.append(run[i])
                i += 1
        return "".join(out)

    def _cjk_words(self, run: str, drop_stop_words: bool) -> list[str]:
        """Segmented words without stop words; leftover runs of single characters are glued back into one."""
        tokens = cut(run)
        words: list[str] = []
        pending = ""
        for token in tokens:
            if drop_stop_words and token in STOP_WORDS:
                if pending:
                    words.append(pending)
                    pending = ""
                continue
            if len(token) == 1 and token not in self.synonyms.to_canonical:
                pending += token
                continue
            if pending:
                words.append(pending)
                pending = ""
            words.append(token)
        if pending:
            words.append(pending)
        return words

    def _cjk_concepts(self, word: str) -> list[Concept]:
        """One concept per word; a rare long word (a specific alias such as 户口本丢了) is also
        split into its parts, each part accepting the whole word too, to widen recall."""
        alternatives = self._cjk_alternatives(word)
        parts = self._parts(word) if len(word) >= 4 and self.frequency(word) < RARE_WORD_GROUPS else []
        if len(parts) < 2:
            return [Concept(word, tuple(alternatives))]
        concepts = []
        for part in parts:
            merged = dict((terms, w) for w, terms in self._cjk_alternatives(part))
            for w, terms in alternatives:
                merged[terms] = max(w, merged.get(terms, 0.0))
            concepts.append(Concept(part, tuple((w, terms) for terms, w in merged.items())))
        return concepts

    def _parts(self, word: str) -> list[str]:
        """Fewest-pieces split of a word into dictionary sub-words (single characters allowed)."""
        pieces = {p for p in cut_for_search(word) if 2 <= len(p) < len(word)}
        best: list[list[str] | None] = [[]] + [None] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(end):
                prev = best[start]
                piece = word[start:end]
                if prev is None or (end - start > 1 and piece not in pieces):
                    continue
                if best[end] is None or len(prev) + 1 < len(best[end]):
                    best[end] = prev + [piece]
        return [
            p for p in best[-1] or []
            if p not in STOP_WORDS and (len(p) > 1 or p in self.synonyms.to_canonical)
        ]

    def _phrase_terms(self, phrase: str) -> tuple[str, ...]:
        if phrase in self.vocabulary or not is_cjk(phrase):
            return (phrase,)
        tokens = tuple(t for t in cut(phrase) if t not in STOP_WORDS) or (phrase,)
        if all(t in self.vocabulary for t in tokens):
            return tokens
        bigrams = tuple(cjk_bigrams(phrase))
        return bigrams or tokens

    def _cjk_alternatives(self, word: str, weight: float = 1.0) -> list[tuple[float, tuple[str, ...]]]:
        alternatives: dict[tuple[str, ...], float] = {}

        def put(w: float, terms: tuple[str, ...]) -> None:
            if terms and alternatives.get(terms, 0.0) < w:
                alternatives[terms] = w

        if word in self.vocabulary:
            put(weight, (word,))
        elif len(word) >= 2:
            put(weight * BIGRAM_FALLBACK_WEIGHT, self._phrase_terms(word))
        expansions = self.synonyms.expansions(word)
        if not expansions and word not in self.vocabulary and len(word) >= 2:
            # an unknown word that is part of a colloquial phrase the table knows (养狗 -> 养狗证 -> 犬类准养证)
            expansions = [(c, factor * PARTIAL_SYNONYM_FACTOR) for phrase in self.synonyms.containing(word)
                          for c, factor in self.synonyms.expansions(phrase)]
        for synonym, factor in expansions:
            put(weight * factor, self._phrase_terms(synonym))
        return [(w, terms) for terms, w in alternatives.items()]

    def _latin_concepts(self, word: str) -> list[Concept]:
        alternatives: list[tuple[float, tuple[str, ...]]] = []
        if word in self.vocabulary:
            alternatives.append((1.0, (word,)))
        for synonym, factor in self.synonyms.expansions(word):
            alternatives.append((factor, self._phrase_terms(synonym)))
        if word.isdigit() or not word.isascii():
            return [Concept(word, tuple(alternatives))]
        resolved = self.lexicon.exact(word) or self.lexicon.prefix(word)
        if not resolved:
            pieces = self.lexicon.split(word)
            if pieces:
                return [c for piece in pieces for c in self._latin_concepts(piece)]
        for hanzi, factor in resolved:
            alternatives.extend(self._cjk_alternatives(hanzi, factor))
        return [Concept(word, tuple(alternatives))]
