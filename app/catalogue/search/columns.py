"""Items kept column by column: a few flat buffers and the distinct values, not one dict per item.

A 300,000-service catalogue as 300,000 dicts costs hundreds of megabytes, and every search that reads one
writes to it (reference counts), so a gunicorn worker copies the master's pages one by one. Here an item is
a row number: each key is a buffer of value ids (or of the integers themselves), the distinct values sit in
a small table, the thousands of distinct names and departments in one UTF-8 buffer (`TextTable`), and item
codes in another, looked up through a sorted array. Reading an item builds a new dict and decodes its names
anew, so nothing the master made is written to but a few hundred shared values.
"""
from __future__ import annotations

from array import array
from typing import Any, Iterator, Mapping

import numpy as np

_ABSENT = -1
KEPT_VALUES = 256


class TextTable:
    """Strings in one UTF-8 buffer, read by row: each read decodes a new string, so reading writes to no page
    the master made (a list of 300,000 names would have each read's reference count copy its page)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ends = array("q")

    def __len__(self) -> int:
        return len(self.ends)

    def append(self, text: str) -> int:
        self.buffer += text.encode("utf-8")
        self.ends.append(len(self.buffer))
        return len(self.ends) - 1

    def __getitem__(self, row: int) -> str:
        if row < 0:
            raise IndexError(row)
        ends = self.ends
        return self.buffer[ends[row - 1] if row else 0 : ends[row]].decode("utf-8")  # past the end: IndexError


def _value_key(value: Any) -> tuple:
    try:
        hash(value)
    except TypeError:  # a list or dict: equal values share one stored object
        return (type(value), repr(value))
    return (type(value), value)


class _Column:
    """One key's values: integers stored as they are until another kind of value comes, else value ids: the
    first `KEPT_VALUES` distinct values (and any later one that is not a string) are objects in `values`, a
    few pages a worker copies once; later strings (names, departments: thousands) are rows of `texts`, their
    ids -2 - row."""

    def __init__(self, length: int) -> None:
        self.ints: array | None = array("q")
        self.ids = array("i")
        self.values: list[Any] = []
        self.texts = TextTable()
        self._index: dict[tuple, int] = {}
        self.present = array("b", bytes(length))
        self.ints.frombytes(bytes(8 * length))

    def append(self, value: Any) -> None:
        self.present.append(1)
        if self.ints is not None and type(value) is int and -2**63 <= value < 2**63:
            self.ints.append(value)
            return
        if self.ints is not None:
            self._to_table()
        self.ids.append(self._id(value))

    def append_absent(self) -> None:
        self.present.append(0)
        if self.ints is not None:
            self.ints.append(0)
        else:
            self.ids.append(_ABSENT)

    def get(self, row: int) -> Any:
        if self.ints is not None:
            return self.ints[row]
        found = self.ids[row]
        return self.values[found] if found >= 0 else self.texts[-2 - found]

    def _id(self, value: Any) -> int:
        key = _value_key(value)
        found = self._index.get(key)
        if found is None:
            if type(value) is str and len(self.values) >= KEPT_VALUES:
                found = -2 - self.texts.append(value)
            else:
                found = len(self.values)
                self.values.append(value)
            self._index[key] = found
        return found

    def _to_table(self) -> None:
        ints, self.ints = self.ints, None
        self.ids = array("i", (self._id(v) if self.present[row] else _ABSENT for row, v in enumerate(ints)))


class CodeTable:
    """Item codes in one buffer: row -> code, and code -> the row last added under it (None once removed)."""

    def __init__(self, *, searchable: bool = True) -> None:
        self.searchable = searchable  # False: row -> code only (a table read once, in order)
        self._texts = TextTable()
        self._sorted = np.empty(0, dtype="S1")
        self._sorted_rows = np.empty(0, dtype=np.int64)
        self._recent: dict[str, int | None] = {}  # changes since the sorted arrays were made

    def __len__(self) -> int:
        return len(self._texts)

    def append(self, code: str) -> int:
        row = self._texts.append(code)
        if self.searchable:
            self._recent[code] = row
        return row

    def code(self, row: int) -> str:
        return self._texts[row]

    def row(self, code: str) -> int | None:
        if code in self._recent:
            return self._recent[code]
        encoded = code.encode("utf-8")
        if len(encoded) > self._sorted.itemsize:  # longer than every code; searching would widen them all
            return None
        at = int(np.searchsorted(self._sorted, encoded))
        if at < self._sorted.size and self._sorted[at] == encoded:
            return int(self._sorted_rows[at])
        return None

    def forget(self, code: str) -> None:
        self._recent[code] = None

    def as_array(self) -> np.ndarray:
        """Every row's code as fixed-width UTF-8 bytes (sorts like the strings)."""
        ends = np.array(self._texts.ends, dtype=np.int64)
        starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]]) if ends.size else ends
        width = int((ends - starts).max(initial=1))
        out = np.zeros((ends.size, width), dtype=np.uint8)
        buffer = np.frombuffer(bytes(self._texts.buffer), dtype=np.uint8)
        lengths = ends - starts
        rows = np.repeat(np.arange(ends.size), lengths)
        cols = np.arange(buffer.size) - np.repeat(starts, lengths)
        out[rows, cols] = buffer
        return out.view(f"S{width}").reshape(-1)

    def settle(self, live_rows: np.ndarray) -> np.ndarray:
        """Make the sorted look-up arrays from the live rows; returns every row's code as bytes."""
        codes = self.as_array()
        live_codes = codes[live_rows]
        order = np.argsort(live_codes, kind="stable")
        self._sorted, self._sorted_rows = live_codes[order], live_rows[order].astype(np.int64)
        self._recent = {}
        return codes


class ItemColumns:
    """Append-only rows of item mappings (same keys, same key order when read back), kept column by column;
    every item has a `code`, kept as a string in `codes` (looked up by code unless not `searchable`)."""

    def __init__(self, *, searchable: bool = True) -> None:
        self.count = 0
        self.codes = CodeTable(searchable=searchable)
        self._columns: dict[str, _Column] = {}
        self._shapes = _Column(0)  # each row's keys, in order
        self._shapes.ints = None

    def append(self, item: Mapping[str, Any]) -> int:
        row = self.count
        keys = tuple(item)
        for key in keys:
            if key != "code" and key not in self._columns:
                self._columns[key] = _Column(row)
        for key, column in self._columns.items():
            if key in item:
                column.append(item[key])
            else:
                column.append_absent()
        self.codes.append(str(item["code"]))
        self._shapes.append(keys)
        self.count += 1
        return row

    def get(self, row: int) -> dict[str, Any]:
        columns = self._columns
        return {key: self.codes.code(row) if key == "code" else columns[key].get(row)
                for key in self._shapes.get(row)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.get(row) for row in range(self.count))
