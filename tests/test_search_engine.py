"""Tests of the in-memory catalogue search engine (pure: no Flask app, no database)."""
from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pytest

from app.catalogue.search import SearchIndex
from app.catalogue.search.analyzer import QueryAnalyzer
from app.catalogue.search.pinyin import PinyinLexicon, pinyin_keys
from app.catalogue.search.synonyms import load_synonyms
from app.catalogue.search.text import normalize
from app.catalogue.seed_data import iter_hall_services

DATA = Path(__file__).resolve().parent / "data"
HF_CSV = Path("/work/shared/data/high_frequency_services.csv")
FIXTURE_HALLS = {"370000": "山东省", "370100": "济南市", "370200": "青岛市", "370300": "淄博市",
                 "370102": "济南市历下区", "371300": "临沂市"}
TOPICS_BY_DEPARTMENT = {
    "公安": ["户籍办理", "证件办理"], "公安交管": ["交通出行"], "公安出入境": ["出境入境"],
    "人力资源社会保障": ["社会保障", "就业创业"], "医疗保障": ["医疗卫生", "社会保障"],
    "住房公积金": ["住房保障"], "自然资源": ["房产"], "民政": ["婚姻登记", "社会救助"],
    "卫生健康": ["生育收养", "医疗卫生"], "教育": ["教育科研"], "税务": ["税收财务"],
    "退役军人事务": ["优待抚恤"], "人才工作": ["就业创业"], "市场监督管理": ["设立变更", "准营准办"],
}
DISTRACTORS = [
    ("机动车注册登记", "公安交管", "person"), ("机动车驾驶证审验", "公安交管", "person"),
    ("医保关系转移接续", "医疗保障", "person"), ("社会保险关系转移", "人力资源社会保障", "person"),
    ("住房公积金异地转移接续", "住房公积金", "person"), ("婚姻登记记录证明", "民政", "person"),
    ("不动产首次登记", "自然资源", "person"), ("不动产抵押登记", "自然资源", "legal"),
    ("建设工程规划许可证核发", "自然资源", "legal"), ("药品经营许可证核发", "市场监督管理", "legal"),
    ("教师资格认定", "教育", "person"), ("护士执业注册", "卫生健康", "person"),
    ("医疗机构执业许可", "卫生健康", "legal"), ("道路运输经营许可", "交通运输", "legal"),
    ("出版物经营许可", "新闻出版", "legal"), ("劳务派遣经营许可", "人力资源社会保障", "legal"),
    ("工伤认定申请", "人力资源社会保障", "person"), ("创业担保贷款申请", "人力资源社会保障", "person"),
    ("残疾人证办理", "残联", "person"), ("养老机构备案", "民政", "legal"),
    ("社会团体成立登记", "民政", "legal"), ("烟草专卖零售许可证核发", "烟草专卖", "legal"),
    ("公共场所卫生许可证核发", "卫生健康", "legal"), ("户外广告设施设置许可", "城市管理", "legal"),
    ("排污许可证核发", "生态环境", "legal"), ("船员适任证书核发", "海事", "person"),
    ("居民身份证挂失申报", "公安", "person"), ("港澳台居民居住证申领", "公安", "person"),
    ("外国人工作许可", "科技", "legal"), ("燃气经营许可证核发", "住房城乡建设", "legal"),
]


def _fixture_items() -> list[dict[str, Any]]:
    """The 50 high-frequency items in several halls, plus same-looking distractor items."""
    rnd = random.Random(11)
    with HF_CSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    bases = [(r["name"], r["department"], r["audience"], int(r["rank"])) for r in rows]
    bases += [(name, dept, audience, None) for name, dept, audience in DISTRACTORS]
    items = []
    item_types = {index: "公共服务" if base[3] else rnd.choice(["行政许可", "行政确认"]) for index, base in enumerate(bases)}
    for hall_number, (hall, hall_name) in enumerate(FIXTURE_HALLS.items()):
        for index, (name, department, audience, rank) in enumerate(bases):
            if rank is None and (index + hall_number) % (hall_number + 2) == 0:
                continue  # halls offer different sets of the other services
            items.append({
                "code": f"{hall}-{index:04d}", "base_code": f"B{index:04d}", "hall_code": hall,
                "hall_name": hall_name, "name": name, "department": f"{hall_name}{department}局",
                "audience": audience, "item_type": item_types[index],
                "topics": TOPICS_BY_DEPARTMENT.get(department, ["其他"]),
                "channels": rnd.choice([["app"], ["app", "wechat"], ["app", "wechat", "alipay"]]),
                "high_frequency_rank": rank, "popularity": rnd.choice([0, 5, 5, 40, 300, 1000]),
                "aliases": [],
            })
    return items


@pytest.fixture(scope="module")
def catalogue() -> tuple[list[dict[str, Any]], str]:
    return list(iter_hall_services()), "seed_data"


@pytest.fixture(scope="module")
def catalogue_index(catalogue) -> SearchIndex:
    return SearchIndex(catalogue[0])


@pytest.fixture(scope="module")
def small_items() -> list[dict[str, Any]]:
    return _fixture_items()


@pytest.fixture()
def small_index(small_items) -> SearchIndex:
    return SearchIndex(small_items)


def _relevance_cases() -> list[tuple[str, set[str]]]:
    with (DATA / "search_relevance.csv").open(encoding="utf-8") as handle:
        return [(row["query"], set(row["expected_name"].split("|"))) for row in csv.DictReader(handle)]


def _top_names(index: SearchIndex, query: str, k: int, filters: dict[str, Any] | None = None) -> list[str]:
    """The first k distinct item names in ranked order (the same service exists in many halls)."""
    names: list[str] = []
    page = 1
    while len(names) < k:
        result = index.search(query, filters=filters, page=page, page_size=100, facet_fields=())
        for code in result.ids:
            name = index.get(code)["name"]
            if name not in names:
                names.append(name)
        if page * 100 >= result.total or page >= 50:
            break
        page += 1
    return names[:k]


def _browse_key(item: dict[str, Any]) -> tuple:
    rank = item.get("high_frequency_rank") or 0
    return (0, rank) if rank > 0 else (1, 0), -(item.get("popularity") or 0), item["code"]


def _all_ids(index: SearchIndex, query: str | None, filters: dict[str, Any] | None = None) -> list[str]:
    result = index.search(query, filters=filters, page_size=10**7, facet_fields=())
    return result.ids


def _matches(item: dict[str, Any], filters: dict[str, Any]) -> bool:
    sources = {"hall": "hall_code", "audience": "audience", "item_type": "item_type", "topic": "topics",
               "channel": "channels", "department": "department"}
    for field, wanted in filters.items():
        wanted_values = set(wanted) if isinstance(wanted, (list, tuple, set)) else {wanted}
        if field == "high_frequency":
            flags = {v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes") for v in wanted_values}
            if bool((item.get("high_frequency_rank") or 0) > 0) not in flags:
                return False
            continue
        value = item.get(sources[field])
        values = set(value) if isinstance(value, (list, tuple)) else {value}
        if not values & {str(v) for v in wanted_values}:
            return False
    return True


ALL_FACETS = ("hall", "audience", "topic", "item_type", "department", "channel", "high_frequency")


def _brute_facets(items: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    counters: dict[str, Counter] = {field: Counter() for field in ALL_FACETS}
    for item in items:
        counters["hall"][item["hall_code"]] += 1
        counters["audience"][item["audience"]] += 1
        counters["item_type"][item["item_type"]] += 1
        counters["department"][item["department"]] += 1
        counters["high_frequency"]["true" if (item.get("high_frequency_rank") or 0) > 0 else "false"] += 1
        for topic in set(item.get("topics") or ()):
            counters["topic"][topic] += 1
        for channel in set(item.get("channels") or ()):
            counters["channel"][channel] += 1
    return {
        field: [{"value": v, "count": c} for v, c in sorted(counter.items(), key=lambda p: (-p[1], p[0])) if v]
        for field, counter in counters.items()
    }


def test_relevance_recall_at_5(catalogue, catalogue_index):
    items, source = catalogue
    names = {item["name"] for item in items}
    cases = _relevance_cases()
    assert len(cases) >= 40
    missing = {name for _, expected in cases for name in expected} - names
    assert not missing, f"expected names absent from the {source} catalogue: {missing}"
    hall_counts = Counter(item["hall_code"] for item in items)
    hf_names = {name for _, expected in cases for name in expected}
    halls = [
        hall for hall, _ in hall_counts.most_common()
        if hf_names <= {item["name"] for item in items if item["hall_code"] == hall}
    ][:3]
    misses: list[str] = []
    global_hits = 0
    hall_hits = 0
    for query, expected in cases:
        top = _top_names(catalogue_index, query, 5)
        global_hits += bool(expected & set(top))
        if not expected & set(top):
            misses.append(f"{query} -> {top}")
        for hall in halls:
            hall_hits += bool(expected & set(_top_names(catalogue_index, query, 5, {"hall": hall})))
    recall = global_hits / len(cases)
    hall_recall = hall_hits / (len(cases) * len(halls)) if halls else recall
    print(f"\nrecall@5 over {source} ({len(items)} items): all halls {recall:.3f}, "
          f"within {len(halls)} halls {hall_recall:.3f}; misses: {misses}")
    assert recall >= 0.9, misses
    assert hall_recall >= 0.9


@pytest.mark.parametrize("query", [None, "", "   ", "医保", "登记", "yb", "户口本丢了怎么办"])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"hall": "370100"},
        {"hall": ["370200", "370600"], "audience": "person"},
        {"audience": "legal"},
        {"topic": "社会保障"},
        {"topic": ["户籍办理", "婚姻登记"], "item_type": "公共服务"},
        {"channel": "wechat", "high_frequency": True},
        {"channel": ["alipay", "wechat"], "audience": "person"},
        {"department": ["济南市公安局", "青岛市民政局"]},
        {"high_frequency": False},
        {"high_frequency": [True, False], "topic": "社会保障"},
    ],
)
def test_filters_and_facets_match_brute_force(small_index, small_items, query, filters):
    by_code = {item["code"]: item for item in small_items}
    matched = set(_all_ids(small_index, query))
    expected = [item for item in small_items if item["code"] in matched and _matches(item, filters)]
    result = small_index.search(query, filters=filters, page_size=10**6, facet_fields=ALL_FACETS, facet_limit=None)
    assert result.total == len(expected)
    assert set(result.ids) == {item["code"] for item in expected}
    assert all(_matches(by_code[code], filters) for code in result.ids)
    assert result.facets == _brute_facets(expected)


@pytest.mark.parametrize(
    ("query", "filters"),
    [(None, {}), ("登记", {}), ("许可", {}), ("证", {"audience": "person"}), (None, {"channel": "alipay"})],
)
def test_facet_limit_keeps_the_largest_counts(small_index, query, filters):
    full = small_index.search(query, filters=filters, facet_fields=ALL_FACETS, facet_limit=None).facets
    for limit in (1, 2, 3):
        limited = small_index.search(query, filters=filters, facet_fields=ALL_FACETS, facet_limit=limit).facets
        assert limited == {field: values[:limit] for field, values in full.items()}


def test_browse_orders_by_high_frequency_then_popularity_then_code(small_index, small_items):
    expected = [item["code"] for item in sorted(small_items, key=_browse_key)]
    assert _all_ids(small_index, None) == expected
    in_hall = [item["code"] for item in sorted(small_items, key=_browse_key) if item["hall_code"] == "370300"]
    assert _all_ids(small_index, None, {"hall": "370300"}) == in_hall
    legal = [item["code"] for item in sorted(small_items, key=_browse_key) if item["audience"] == "legal"]
    assert _all_ids(small_index, "  ", {"audience": "legal"}) == legal
    first_page = small_index.search(None, page_size=5).ids
    assert first_page == expected[:5]


def test_equal_relevance_is_ordered_by_popularity(small_index, small_items):
    ids = _all_ids(small_index, "普通护照签发")
    passports = sorted((item for item in small_items if item["name"] == "普通护照签发"), key=_browse_key)
    assert ids[: len(passports)] == [item["code"] for item in passports]


@pytest.mark.parametrize("query", [None, "医保", "登记", "证"])
def test_pagination_is_consistent(small_index, query):
    everything = _all_ids(small_index, query)
    paged: list[str] = []
    page = 1
    while True:
        result = small_index.search(query, page=page, page_size=7, facet_fields=())
        assert result.total == len(everything)
        if not result.ids:
            break
        paged.extend(result.ids)
        page += 1
    assert paged == everything
    assert len(set(paged)) == len(paged)
    assert small_index.search(query, page=page + 3, page_size=7).ids == []


def test_deep_page_after_cached_first_page(small_index):
    first = small_index.search("登记", page=1, page_size=10)
    deep = small_index.search("登记", page=30, page_size=10)
    assert deep.total == first.total
    assert deep.ids == _all_ids(small_index, "登记")[290:300]


@pytest.mark.parametrize(
    ("query", "expected_word"),
    [("sfz", "身份证"), ("ＳＦＺ", "身份证"), ("shenfenzheng", "身份证"), ("shenfen", "身份证"),
     ("yb", "医"), ("yibao", "医"), ("gjj", "公积金"), ("gongjijin", "公积金"), ("hz", "护照"),
     ("jiashizheng", "驾驶证"), ("yibao异地", "异地")],
)
def test_pinyin_queries(small_index, query, expected_word):
    result = small_index.search(query, filters={"hall": "370100"}, page_size=3)
    assert result.total > 0
    assert expected_word in small_index.get(result.ids[0])["name"]


def test_incremental_update_is_visible(small_index):
    version = small_index.version
    item = {
        "code": "370100-9999", "base_code": "B9999", "hall_code": "370100", "name": "海洋渔业船舶登记",
        "department": "海洋渔业", "audience": "legal", "item_type": "行政确认", "topics": ["农林牧渔"],
        "channels": ["online"], "high_frequency_rank": None, "popularity": 7, "aliases": ["渔船登记"],
    }
    small_index.add_or_replace(item)
    assert small_index.version > version
    assert small_index.search("渔船").ids[:1] == ["370100-9999"]
    assert small_index.search("yuchuan").ids[:1] == ["370100-9999"]
    facets = small_index.search(None, filters={"topic": "农林牧渔"}).facets
    assert facets["hall"] == [{"value": "370100", "count": 1}]

    small_index.add_or_replace({**item, "name": "远洋渔业项目确认", "aliases": []})
    assert small_index.search("渔船").total == 0
    assert small_index.search("远洋渔业").ids[:1] == ["370100-9999"]
    assert small_index.get("370100-9999")["name"] == "远洋渔业项目确认"

    total = small_index.search(None).total
    assert small_index.remove("370100-9999") is True
    assert small_index.remove("370100-9999") is False
    assert small_index.search("远洋渔业").total == 0
    assert small_index.search(None).total == total - 1
    assert "370100-9999" not in small_index

    before = small_index.search("医保", page_size=50).ids
    small_index.rebuild()
    assert small_index.search("医保", page_size=50).ids == before


def test_code_lookup_and_unknown_filters(small_index):
    assert small_index.search("370200-0003").ids == ["370200-0003"]
    assert small_index.search("370200-0003", filters={"hall": "370100"}).total == 0
    assert small_index.search("370200-0003", filters={"audience": "legal"}).total == 0
    assert small_index.search("医保", filters={"hall": "999999"}).total == 0
    with pytest.raises(ValueError):
        small_index.search("医保", filters={"colour": "red"})
    with pytest.raises(ValueError):
        small_index.search("医保", page=0)


def test_nonsense_query_matches_nothing(small_index):
    result = small_index.search("zzqxj")
    assert result.total == 0 and result.ids == [] and result.facets["hall"] == []


def test_normalize_and_query_words():
    assert normalize("  ＡＢＣ，身份证！ ") == "abc 身份证"
    assert normalize(None) == ""
    analyzer = QueryAnalyzer({"身份证": 1, "补领": 1}, load_synonyms(None), PinyinLexicon())
    words = [concept.text for concept in analyzer.analyze("我的身份证丢了怎么办？")]
    assert words in (["身份证", "丢了"], ["身份证", "丢了"][:1] + ["丢了"])
    assert not {"我", "的", "怎么办", "我的"} & set(words)


def test_pinyin_keys_and_synonym_file_parsing(tmp_path):
    assert pinyin_keys("医保") == ("yibao", "yb")
    assert pinyin_keys("身份证") == ("shenfenzheng", "sfz")
    path = tmp_path / "synonyms.txt"
    path.write_text("# comment\n居民户口簿：户口本，户口簿\nbad line\n", encoding="utf-8")
    table = load_synonyms(path, include_builtin=False)
    assert table.to_canonical["户口本"] == {"居民户口簿"}
    assert load_synonyms(tmp_path / "missing.txt").to_canonical  # built-in table still loads


def test_high_frequency_flag_that_varies_within_a_service(small_items):
    items = [dict(item) for item in small_items]
    items[3]["high_frequency_rank"] = None  # one hall does not count this service as high-frequency
    index = SearchIndex(items)
    for query in (None, "身份证"):
        matched = set(_all_ids(index, query))
        for filters in ({"high_frequency": True}, {"high_frequency": "false", "audience": "person"}):
            expected = [item for item in items if item["code"] in matched and _matches(item, filters)]
            result = index.search(query, filters=filters, page_size=10**6, facet_fields=ALL_FACETS, facet_limit=None)
            assert set(result.ids) == {item["code"] for item in expected}
            assert result.facets == _brute_facets(expected)


def test_a_full_build_sorts_the_pinyin_prefix_keys_so_a_forked_worker_does_not(small_items):
    index = SearchIndex(small_items)
    lexicon = index._query_engine().data.analyzer.lexicon
    settled = lexicon._sorted_full
    assert settled == sorted(lexicon.full)  # made by the build (the master), before any query
    assert index.search("shenfe").total > 0  # a pinyin prefix query reads them ...
    assert lexicon._sorted_full is settled  # ... without sorting a copy of its own
