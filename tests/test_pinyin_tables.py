"""The trie-backed pinyin gives pypinyin's own answers: pypinyin, loaded as shipped in a separate process, is the
oracle for catalogue names, its own phrases, phrases run together and mixed text."""
import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from app.catalogue.search.pinyin import pinyin_keys, toneless
from app.catalogue.search.pinyin_tables import PinyinTables, TablePinyin

DATA = Path(__file__).resolve().parents[1] / "app" / "catalogue" / "data"
ORACLE = """
import json, sys
from pypinyin import Style, lazy_pinyin, pinyin
from pypinyin.constants import PHRASES_DICT
assert PHRASES_DICT, "the oracle must load pypinyin's phrases"
words = json.load(sys.stdin)
json.dump({"normal": [lazy_pinyin(w, style=Style.NORMAL, errors="ignore") for w in words],
           "tone": [pinyin(w) for w in words],
           "heteronym": [pinyin(w, heteronym=True) for w in words[:300]]}, sys.stdout)
"""


@pytest.fixture(scope="module")
def tables():
    return PinyinTables()


def _words(tables: PinyinTables) -> list[str]:
    rnd = random.Random(20261203)
    with (DATA / "imported_items.csv").open(encoding="utf-8") as f:
        names = [row["name"] for row in csv.DictReader(f)]
    phrases = rnd.sample(sorted(tables.phrases.keys()), 4000)
    joined = ["".join(rnd.sample(phrases, 3)) for _ in range(1500)]
    mixed = ["银行卡挂失", "重庆市户口迁移", "长期居住证明", "行政复议申请", "CT检查报销", "第2代身份证", "ａｂｃ医保",
             "Ⅱ类机动车", "为人民服务", "一丁点儿", "嗯", "㐀㐁", "hello", "", "　", "·", "户口本丢了怎么办？"]
    return names + phrases + joined + mixed


def test_pinyin_is_pypinyins_own(tables):
    words = _words(tables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYPINYIN_")}
    done = subprocess.run([sys.executable, "-c", ORACLE], input=json.dumps(words), capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    oracle = json.loads(done.stdout)
    converter = TablePinyin(tables)
    assert [converter.lazy_pinyin(w, errors="ignore") for w in words] == oracle["normal"]
    assert [converter.pinyin(w) for w in words] == oracle["tone"]
    assert [converter.pinyin(w, heteronym=True) for w in words[:300]] == oracle["heteronym"]
    assert toneless("银行卡挂失") == ["yin", "hang", "ka", "gua", "shi"]


def test_keys_of_polyphonic_words_follow_the_phrase_reading():
    assert pinyin_keys("重庆") == ("chongqing", "cq")
    assert pinyin_keys("银行") == ("yinhang", "yh")
    assert pinyin_keys("行政许可") == ("xingzhengxuke", "xzxk")


def test_pypinyins_phrase_dict_is_not_loaded_in_the_app():
    code = ("import app.catalogue.search.pinyin as p; p.pinyin_keys('银行');"
            "import sys, pypinyin.constants as c, pypinyin.seg.mmseg as m;"
            "print(len(c.PHRASES_DICT), len(m.p_set._set))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYPINYIN_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True, cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.split() == ["0", "0"]
