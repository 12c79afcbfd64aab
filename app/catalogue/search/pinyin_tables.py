"""pypinyin's readings in marisa tries: the same pinyin as pypinyin's own `lazy_pinyin`, without its phrase
dict and phrase-prefix set in memory, and without reads that write reference counts to pages a gunicorn
worker shares with the master (each lookup of pypinyin's dicts hands out an object the master made)."""
from __future__ import annotations

import json
import os
from importlib.resources import files

import marisa_trie

# must precede pypinyin's first import: its phrase dict and the prefix set built from it are left unloaded,
# the phrases are read from the same data file into a trie below
os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")
os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "true")
from pypinyin.constants import PINYIN_DICT, RE_HANS  # noqa: E402
from pypinyin.converter import DefaultConverter  # noqa: E402
from pypinyin.core import Pinyin  # noqa: E402
from pypinyin.seg.simpleseg import simple_seg  # noqa: E402


def _encoded(readings: list[list[str]]) -> bytes:
    """One reading list per character: alternatives joined by ",", characters by " "."""
    return " ".join(",".join(alternatives) for alternatives in readings).encode()


class PinyinTables:
    """Character readings and phrase readings, each a `marisa_trie.BytesTrie` built from pypinyin's data."""

    def __init__(self) -> None:
        phrases = json.loads((files("pypinyin") / "phrases_dict.json").read_text(encoding="utf-8"))
        self.phrases = marisa_trie.BytesTrie((phrase, _encoded(readings)) for phrase, readings in phrases.items())
        self.chars = marisa_trie.BytesTrie((chr(code), readings.encode()) for code, readings in PINYIN_DICT.items())

    def phrase(self, phrase: str) -> list[list[str]] | None:
        found = self.phrases.get(phrase)
        return None if found is None else [part.split(",") for part in found[0].decode().split(" ")]

    def char(self, han: str) -> list[str] | None:
        found = self.chars.get(han)
        return None if found is None else found[0].decode().split(",")

    def is_phrase_prefix(self, text: str) -> bool:
        return next(self.phrases.iterkeys(text), None) is not None

    def cut(self, run: str) -> list[str]:
        """pypinyin's forward maximum matching (`seg.mmseg.seg`, phrases only): the longest head of `run` that
        is a phrase, scanning heads while they begin some phrase, else one character; when every head of what
        is left begins a phrase and none is one, the rest falls apart into characters."""
        pieces: list[str] = []
        while run:
            size = longest = 0
            while size < len(run) and self.is_phrase_prefix(run[: size + 1]):
                size += 1
                if run[:size] in self.phrases:
                    longest = size
            if size == len(run) and not longest:
                pieces.extend(run)
                break
            size = longest or 1
            pieces.append(run[:size])
            run = run[size:]
        return pieces

    def seg(self, hans: str) -> list[str]:
        """pypinyin's default segmentation (`seg.simpleseg.seg`): runs of Han characters cut into phrases."""
        pieces: list[str] = []
        for run in simple_seg(hans):
            pieces.extend(self.cut(run) if RE_HANS.match(run) else [run])
        return pieces


class _TableConverter(DefaultConverter):
    def __init__(self, tables: PinyinTables) -> None:
        super().__init__()
        self.tables = tables

    def _phrase_pinyin(self, phrase, style, heteronym, errors, strict):
        readings = self.tables.phrase(phrase)
        if readings is not None:
            return readings
        found = []
        for han in phrase:
            found.extend(self._single_pinyin(han, style, heteronym, errors, strict))
        return found

    def _single_pinyin(self, han, style, heteronym, errors, strict):
        readings = self.tables.char(han)
        if readings is None:
            return self.handle_nopinyin(han, style=style, errors=errors, heteronym=heteronym, strict=strict)
        return [readings]


class TablePinyin(Pinyin):
    """`pypinyin.core.Pinyin` reading `PinyinTables` (segmentation and both readings)."""

    def __init__(self, tables: PinyinTables | None = None) -> None:
        self.tables = tables or PinyinTables()
        super().__init__(converter=_TableConverter(self.tables))

    def get_seg(self, **kwargs):
        return self.tables.seg
