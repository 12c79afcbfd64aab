"""The fields the search index filters and facets on, and how item and filter values are read."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

DEFAULT_FACETS: tuple[str, ...] = ("hall", "audience", "topic", "item_type")
GROUP_FIELDS: dict[str, str] = {"audience": "audience", "item_type": "item_type", "topic": "topics"}
DOC_FIELDS: dict[str, str] = {"hall": "hall_code", "department": "department", "instant_approval": "instant_approval"}
MULTI_DOC_FIELDS: dict[str, str] = {"channel": "channels"}
FLAG_FIELD = "high_frequency"
FIELDS: tuple[str, ...] = (*GROUP_FIELDS, *DOC_FIELDS, *MULTI_DOC_FIELDS, FLAG_FIELD)
FIELD_ALIASES: dict[str, str] = {
    "hall_code": "hall",
    "topics": "topic",
    "channels": "channel",
    "hf": FLAG_FIELD,
    "type": "item_type",
    "instant": "instant_approval",
}
MAX_CHANNELS = 63
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class ValueIds:
    """Bidirectional mapping between facet value strings and dense integer ids (ids only grow)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.values: list[str] = []

    def id(self, value: str) -> int:
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = len(self.values)
            self.values.append(value)
        return found

    def sort_ranks(self) -> np.ndarray:
        ranks = np.empty(len(self.values), dtype=np.int64)
        ranks[np.argsort(np.array(self.values, dtype=object))] = np.arange(len(self.values))
        return ranks


def doc_value(raw: Any) -> str:
    """An item's value of a single-valued field as the string the index keeps (booleans as "1"/"0")."""
    if isinstance(raw, bool):
        return "1" if raw else "0"
    return str(raw or "")


def as_values(raw: Any) -> tuple[str, ...]:
    """An item's or a filter's value(s) as a sorted tuple of distinct non-empty strings (booleans "1"/"0")."""
    if isinstance(raw, bool):
        return (doc_value(raw),)
    if raw is None or raw == "":
        return ()
    if isinstance(raw, (list, tuple, set, frozenset)):
        return tuple(sorted({str(v) for v in raw if v is not None and v != ""}))
    return (str(raw),)


def hf_rank(item: Mapping[str, Any]) -> int:
    """The item's high-frequency rank, 0 when it has none (or an unreadable one)."""
    rank = item.get("high_frequency_rank")
    try:
        return int(rank) if rank is not None and int(rank) > 0 else 0
    except (TypeError, ValueError):
        return 0


def as_flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean filter value: {raw!r}")


def canonical_field(field: str) -> str:
    """Map accepted spellings (hall_code, topics, ...) to facet/filter field names."""
    name = FIELD_ALIASES.get(field, field)
    if name not in FIELDS:
        raise ValueError(f"unknown search field: {field!r}")
    return name


def filter_key(filters: Mapping[str, Any] | None) -> tuple:
    """Filters as a hashable, canonical ((field, values), ...) tuple; empty filters are dropped."""
    if not filters:
        return ()
    merged: dict[str, tuple] = {}
    for raw_field, raw_value in filters.items():
        field = canonical_field(raw_field)
        if field == FLAG_FIELD:
            raw_values = raw_value if isinstance(raw_value, (list, tuple, set, frozenset)) else (raw_value,)
            flags = {as_flag(v) for v in raw_values if v is not None and v != ""}
            if len(flags) == 1:
                merged[field] = tuple(flags)
            continue
        values = as_values(raw_value)
        if values:
            merged[field] = values
    return tuple(sorted(merged.items()))
