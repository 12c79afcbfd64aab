"""Index terms of an item: words, CJK bigrams and characters of its name, aliases, department and topics."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterable, Mapping

from .text import DATA_DIR, cjk_bigrams, cut_for_search, is_cjk, normalize, text_runs

TOPICS_PATH = DATA_DIR / "topics.json"

logger = logging.getLogger(__name__)

FIELD_WEIGHTS: Mapping[str, tuple[float, float, float]] = {
    "name": (3.0, 2.0, 0.6),
    "alias": (2.5, 1.6, 0.5),
    "topic": (1.2, 0.8, 0.3),
    "department": (1.0, 0.7, 0.3),
}
"""Per field: weight of a whole word / token, of a CJK bigram, of a single CJK character."""


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
