"""Chinese text processing for catalogue search: normalisation, segmentation, synonyms, pinyin.

Design notes:
- Normalisation is NFKC (full-width -> half-width), lower-case, punctuation -> space;
  simplified/traditional conversion is out of scope (the catalogue is simplified only).
- Segmentation uses a private jieba Tokenizer (HMM off, so results are deterministic and
  unknown words fall apart into single characters) loaded once with the catalogue user
  dictionary plus every synonym word and item alias, so colloquial phrases ("户口本",
  "开个公司") stay whole. Leftover runs of single characters are glued back into one word.
- Situational queries lose their stop words (怎么办, 我想, 了 ...); the situation words that
  matter (丢了, 过期, 生孩子) are synonyms of official terms (补领, 换领, 出生登记).
- Items are indexed by search-mode tokens, CJK character bigrams and single characters with
  per-field weights; queries are turned into "concepts" (one per meaningful query word),
  each with weighted alternatives: the word itself, its synonyms (colloquial <-> official
  term), its bigrams when the word is unknown, or, for Latin input, the catalogue words whose
  full pinyin / initials equal or start with it (pinyin is resolved back to Chinese words
  instead of indexing pinyin strings, so pinyin queries get the same ranking as Chinese ones;
  run-together pinyin such as "yibaoyidi" is split into known syllable words).
- Synonyms come from data/synonyms.txt merged with a built-in table, so search still works
  when the data files are missing.
"""
from __future__ import annotations

import bisect
import json
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping

import jieba
from pypinyin import Style, lazy_pinyin

DATA_DIR = Path(__file__).resolve().parent / "data"
SYNONYMS_PATH = DATA_DIR / "synonyms.txt"
USERDICT_PATH = DATA_DIR / "userdict.txt"
TOPICS_PATH = DATA_DIR / "topics.json"

logger = logging.getLogger(__name__)

STOP_WORDS: frozenset[str] = frozenset(
    """
    怎么办 怎么 怎样 如何 怎么样 咋办 咋 办理 办 要 想 想要 需要 我 我的 我们 你 你们 他 她 了 的 地 得 吗 呢 吧 啊 呀
    哦 么 在 去 到 哪 哪里 哪儿 在哪 在哪里 去哪 去哪里 什么 啥 能 能不能 可以 可不可以 是 有 没有 给 把 被 让 帮 帮我
    请问 请 一下 一个 个 这 那 这个 那个 该 应该 怎么弄 弄 搞 咨询 问 问下 还 也 和 与 及 或 或者 就 都 又 再 从 对 为
    用 需 所需 手续 材料 流程 步骤 条件 多久 多少 多长时间 时间 地方 地点 网上 线上 如何办理 怎样办理 上 下
    """.split()
)

_BUILTIN_SYNONYMS = """
社会保障卡: 社保卡, 医保卡, 电子社保卡
医疗保险: 医保, 医疗保障, 看病保险
医疗保障: 医保
养老保险: 养老, 养老金
社会保险: 社保
居民身份证: 身份证, 二代证, 二代身份证
临时居民身份证: 临时身份证
户口: 户口本, 户口簿, 户籍, 落户, 迁户口, 户口迁移
户籍: 户口本, 户口簿, 户口
居民户口簿: 户口本, 户口簿
机动车驾驶证: 驾照, 驾驶证, 驾驶执照, 驾驶本, 驾证
期满换证: 到期, 过期, 期满
换领: 过期, 到期, 换证, 换新, 期满
补领: 丢, 丢了, 丢失, 遗失, 掉了, 补办, 不见了, 弄丢
补证: 丢, 丢失, 遗失, 补办, 掉了
挂失: 丢, 丢了, 丢失, 遗失, 掉了, 不见了
出生登记: 生孩子, 生小孩, 上户口, 新生儿落户, 新生儿, 生娃, 宝宝落户, 报户口
出生医学证明: 出生证, 出生证明, 生孩子, 生小孩, 新生儿, 生娃
企业设立登记: 开公司, 开个公司, 注册公司, 成立公司, 办公司, 公司注册, 开办企业, 营业执照
个体工商户设立登记: 开店, 开个店, 个体户, 开网店, 开小店
企业简易注销登记: 注销公司, 公司注销, 关公司
企业变更登记: 公司变更, 变更法人, 变更地址
普通护照: 护照, 出国, 办护照
往来港澳通行证: 港澳通行证, 去香港, 去澳门, 港澳签注, 通行证
无犯罪记录证明: 无犯罪证明, 无犯罪, 良民证, 无犯罪记录
最低生活保障: 低保, 吃低保
住房公积金: 公积金
提取: 取公积金, 取出, 提公积金
租房提取: 租房, 付房租
购房提取: 买房, 购房
住房公积金个人住房贷款: 公积金贷款, 房贷, 公积金贷
缴存证明: 缴存记录, 缴费证明
结婚登记: 结婚, 领证, 登记结婚, 领结婚证
义务教育入学: 上学, 入学, 小学报名, 上小学, 初中报名, 上初中
交通违法处理: 违章, 罚单, 交通罚款, 违章处理, 违章罚款, 交罚款
机动车检验合格标志: 年检, 年审, 车检, 检验标志
个人所得税: 个税, 退税
综合所得汇算清缴: 汇算, 退税, 个税汇算
失业保险金: 失业金, 失业补助, 失业了
高龄津贴: 老年补贴, 高龄补贴, 老人补贴
残疾人两项补贴: 残疾补贴, 残疾人补贴, 护理补贴
退役军人优待证: 优待证, 退伍, 退役
居住证: 暂住证
公章刻制: 刻章, 刻公章, 公章
新办纳税人: 领发票, 税务登记, 新办企业
食品经营许可: 食品许可证, 开饭店, 开餐馆, 餐饮许可
门诊慢特病: 慢性病, 慢病, 特殊病, 慢特病
医疗费用手工报销: 报销, 医药费报销, 看病报销, 医疗费报销
医保异地就医备案: 异地就医, 异地医保, 外地看病, 异地备案
个人参保证明: 社保证明, 参保证明, 社保缴费证明, 社保记录
养老保险待遇资格认证: 生存认证, 养老金认证, 资格认证, 刷脸认证
不动产登记: 房产证, 房本, 不动产证
职业技能等级证书: 技能证书, 职业资格, 技能等级
山东惠才卡: 人才卡, 惠才卡
就业登记: 找工作, 就业
生育保险: 生育津贴, 产假津贴
生育登记: 生二胎, 生三胎, 二胎, 三胎, 怀孕, 准生证, 生育服务证
"""

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NON_TEXT = re.compile(f"[^0-9a-z{_CJK}]+")
_RUNS = re.compile(f"[{_CJK}]+|[a-z]+|[0-9]+")
_CJK_RUN = re.compile(f"^[{_CJK}]+$")
_VOWELS = set("aeiouv")

FIELD_WEIGHTS: Mapping[str, tuple[float, float, float]] = {
    "name": (3.0, 2.0, 0.6),
    "alias": (2.5, 1.6, 0.5),
    "topic": (1.2, 0.8, 0.3),
    "department": (1.0, 0.7, 0.3),
}
"""Per field: weight of a whole word / token, of a CJK bigram, of a single CJK character."""

SYNONYM_WEIGHT = 0.9
REVERSE_SYNONYM_WEIGHT = 0.8
BIGRAM_FALLBACK_WEIGHT = 0.6
PINYIN_FULL_WEIGHT = 0.9
PINYIN_INITIALS_WEIGHT = 0.75
PINYIN_PREFIX_WEIGHT = 0.6
MAX_PINYIN_CANDIDATES = 6
RARE_WORD_GROUPS = 5


def normalize(text: str | None) -> str:
    """NFKC-fold, lower-case and replace punctuation/whitespace runs with a single space."""
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
    """Lazily initialised private jieba tokenizer shared by the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: jieba.Tokenizer | None = None
        self._added: set[str] = set()

    def tokenizer(self) -> jieba.Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    jieba.setLogLevel(logging.WARNING)
                    tokenizer = jieba.Tokenizer()
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


@lru_cache(maxsize=65_536)
def cut(run: str) -> tuple[str, ...]:
    """Accurate-mode segmentation of one CJK run."""
    return tuple(SEGMENTER.tokenizer().lcut(run, HMM=False))


@lru_cache(maxsize=65_536)
def cut_for_search(run: str) -> tuple[str, ...]:
    """Search-mode segmentation of one CJK run (long words plus their sub-words)."""
    return tuple(SEGMENTER.tokenizer().lcut_for_search(run, HMM=False))


@lru_cache(maxsize=262_144)
def pinyin_keys(word: str) -> tuple[str, str]:
    """Return (full pinyin joined, initials) of a Chinese word, e.g. ("yibao", "yb")."""
    syllables = [s for s in lazy_pinyin(word, style=Style.NORMAL, errors="ignore") if s.isalpha()]
    full = "".join(syllables).replace("ü", "v")
    initials = "".join(s[0] for s in syllables)
    return full, initials


class SynonymTable:
    """Two-way mapping between official (canonical) terms and colloquial aliases."""

    def __init__(self, pairs: Iterable[tuple[str, Iterable[str]]] = ()) -> None:
        self.to_canonical: dict[str, set[str]] = {}
        self.to_aliases: dict[str, set[str]] = {}
        for canonical, aliases in pairs:
            self.add(canonical, aliases)

    def add(self, canonical: str, aliases: Iterable[str]) -> None:
        canonical = normalize(canonical).replace(" ", "")
        if not canonical:
            return
        for alias in aliases:
            alias = normalize(alias).replace(" ", "")
            if alias and alias != canonical:
                self.to_canonical.setdefault(alias, set()).add(canonical)
                self.to_aliases.setdefault(canonical, set()).add(alias)

    def words(self) -> set[str]:
        return set(self.to_canonical) | set(self.to_aliases)

    def expansions(self, word: str) -> list[tuple[str, float]]:
        found = [(c, SYNONYM_WEIGHT) for c in sorted(self.to_canonical.get(word, ()))]
        found += [(a, REVERSE_SYNONYM_WEIGHT) for a in sorted(self.to_aliases.get(word, ()))]
        return found


def parse_synonyms(text: str) -> list[tuple[str, list[str]]]:
    """Parse lines of the form `canonical: alias1, alias2` (also full-width colon/commas)."""
    pairs = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = line.replace("：", ":").replace("，", ",").replace("、", ",")
        if ":" not in line:
            continue
        canonical, _, rest = line.partition(":")
        aliases = [a.strip() for a in re.split(r"[,;|/]", rest) if a.strip()]
        if canonical.strip() and aliases:
            pairs.append((canonical.strip(), aliases))
    return pairs


def load_synonyms(path: Path | None = SYNONYMS_PATH, *, include_builtin: bool = True) -> SynonymTable:
    """Load the catalogue synonym file (if present) merged with the built-in situational table."""
    pairs = parse_synonyms(_BUILTIN_SYNONYMS) if include_builtin else []
    if path is not None and Path(path).is_file():
        try:
            pairs += parse_synonyms(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            logger.warning("could not read %s", path, exc_info=True)
    return SynonymTable(pairs)


def load_topic_names(path: Path | None = TOPICS_PATH) -> dict[str, str]:
    """Topic code -> display name from the catalogue's topics.json; empty if unavailable."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        topics = json.loads(Path(path).read_text(encoding="utf-8"))
        return {str(t["code"]): str(t["name"]) for t in topics if t.get("code") and t.get("name")}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        logger.warning("could not read %s", path, exc_info=True)
        return {}


_PLACE = re.compile(r"[^省市区县旗]{1,8}?[省市区县旗]")


def strip_place_names(department: str, place: str = "") -> str:
    """Remove the hall's place names from a department name: 济南市公安局历下区分局 -> 公安局分局."""
    text = department.replace("山东省", "")
    for chunk in _PLACE.findall(place or ""):
        text = text.replace(chunk, "")
    return text or department


def field_terms(text: str, field: str, into: dict[str, float]) -> None:
    """Add the index terms of one field value to `into` (term -> max weight)."""
    word_w, bigram_w, char_w = FIELD_WEIGHTS[field]
    norm = normalize(text)
    compact = norm.replace(" ", "")
    if not compact:
        return

    def put(term: str, weight: float) -> None:
        if into.get(term, 0.0) < weight:
            into[term] = weight

    put(compact, word_w)
    for run in text_runs(norm):
        if not is_cjk(run):
            put(run, word_w)
            continue
        put(run, word_w)
        for token in cut_for_search(run):
            put(token, word_w if len(token) > 1 else char_w)
        for bigram in cjk_bigrams(run):
            put(bigram, bigram_w)
        for char in run:
            put(char, char_w)


def item_terms(
    name: str,
    aliases: Iterable[str] = (),
    department: str = "",
    topics: Iterable[str] = (),
) -> dict[str, float]:
    """All index terms of an item with their field weight (before idf)."""
    terms: dict[str, float] = {}
    for topic in topics:
        field_terms(topic, "topic", terms)
    if department:
        field_terms(department, "department", terms)
    for alias in aliases:
        field_terms(alias, "alias", terms)
    field_terms(name, "name", terms)
    return terms


def item_words(name: str, aliases: Iterable[str] = (), department: str = "", topics: Iterable[str] = ()) -> set[str]:
    """Whole values and multi-character tokens of an item, for the pinyin lexicon."""
    words: set[str] = set()
    for value in (name, department, *aliases, *topics):
        norm = normalize(value)
        compact = norm.replace(" ", "")
        if len(compact) >= 2 and is_cjk(compact):
            words.add(compact)
        for run in text_runs(norm):
            if is_cjk(run):
                words.update(t for t in cut_for_search(run) if len(t) >= 2)
    return words


class PinyinLexicon:
    """Maps full pinyin, initials and full-pinyin prefixes back to catalogue words."""

    def __init__(self) -> None:
        self.full: dict[str, set[str]] = {}
        self.initials: dict[str, set[str]] = {}
        self.priority: dict[str, float] = {}
        self._sorted_full: list[str] | None = None

    def add(self, word: str, priority: float = 0.0) -> None:
        full, initials = pinyin_keys(word)
        if len(full) < 2:
            return
        self.full.setdefault(full, set()).add(word)
        if len(initials) >= 2:
            self.initials.setdefault(initials, set()).add(word)
        if priority > self.priority.get(word, -1.0):
            self.priority[word] = priority
        self._sorted_full = None

    def _rank(self, words: Iterable[str]) -> list[str]:
        return sorted(words, key=lambda w: (-self.priority.get(w, 0.0), len(w), w))[:MAX_PINYIN_CANDIDATES]

    def exact(self, latin: str) -> list[tuple[str, float]]:
        found: dict[str, float] = {}
        for word in self._rank(self.full.get(latin, ())):
            found[word] = PINYIN_FULL_WEIGHT
        for word in self._rank(self.initials.get(latin, ())):
            found.setdefault(word, PINYIN_INITIALS_WEIGHT)
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


@dataclass(frozen=True)
class Concept:
    """One meaningful query word and the weighted index-term groups that satisfy it.

    Each alternative is (weight, terms); a document's score for an alternative is the weight
    times the mean of its term weights, provided it has at least half of the terms, and a
    concept scores the best of its alternatives.
    """

    text: str
    alternatives: tuple[tuple[float, tuple[str, ...]], ...]


class QueryAnalyzer:
    """Turns a raw query into concepts against a given index vocabulary."""

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
        words: list[str] = []
        for run in text_runs(norm):
            if is_cjk(run):
                words.extend(self._cjk_words(run))
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
        return [c for c in concepts if c.alternatives]

    def _cjk_words(self, run: str) -> list[str]:
        tokens = cut(run)
        drop_stop_words = any(t not in STOP_WORDS for t in tokens)
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
        for synonym, factor in self.synonyms.expansions(word):
            put(weight * factor, self._phrase_terms(synonym))
        return [(w, terms) for terms, w in alternatives.items()]

    def _latin_concepts(self, word: str) -> list[Concept]:
        alternatives: list[tuple[float, tuple[str, ...]]] = []
        if word in self.vocabulary:
            alternatives.append((1.0, (word,)))
        if word.isdigit():
            return [Concept(word, tuple(alternatives))]
        resolved = self.lexicon.exact(word) or self.lexicon.prefix(word)
        if not resolved:
            pieces = self.lexicon.split(word)
            if pieces:
                return [c for piece in pieces for c in self._latin_concepts(piece)]
        for hanzi, factor in resolved:
            alternatives.extend(self._cjk_alternatives(hanzi, factor))
        return [Concept(word, tuple(alternatives))]
