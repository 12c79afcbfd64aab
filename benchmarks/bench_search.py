"""Benchmark the catalogue SearchIndex: build time, memory and per-query latency from 2k to 300k items."""
from __future__ import annotations

import argparse
import csv
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.catalogue.search import SearchIndex  # noqa: E402

SIZES = (2_000, 20_000, 100_000, 300_000)
HF_CSV = Path("/work/shared/data/high_frequency_services.csv")
CITIES_CSV = Path("/work/shared/data/shandong_cities.csv")

QUERIES: list[tuple[str | None, dict[str, Any]]] = [
    ("户口本丢了怎么办", {}),
    ("yibao", {}),
    ("yb", {}),
    ("sfz", {}),
    ("shenfenzheng", {}),
    ("shenfen", {}),
    ("公积金提取", {}),
    ("想开个公司", {}),
    ("驾照到期", {}),
    ("身份证过期了", {}),
    ("生孩子", {}),
    ("医保卡", {}),
    ("护照", {}),
    ("港澳通行证", {}),
    ("无犯罪证明", {}),
    ("低保", {}),
    ("yibao异地", {}),
    ("登记", {}),
    ("证明", {}),
    ("社保", {"audience": "person"}),
    ("医保", {"hall": "@hall"}),
    ("户籍", {"hall": "@hall"}),
    ("公积金", {"hall": "@hall", "audience": "person"}),
    ("企业", {"hall": "@hall", "audience": "legal"}),
    ("许可", {"topic": "@topic"}),
    ("gjj", {"hall": "@hall"}),
    (None, {}),
    (None, {"hall": "@hall"}),
    (None, {"audience": "legal"}),
    (None, {"topic": "@topic", "hall": "@hall"}),
    (None, {"high_frequency": True}),
    # without a hall the API ranks by item: each item once, the provincial or most popular entry
    ("社保", {"@collapse": True}),
    ("开KTV需要什么手续", {"@collapse": True}),
    ("零时牌", {"@collapse": True}),
    (None, {"@collapse": True}),
]


def _hf_rows() -> list[dict[str, str]]:
    with HF_CSV.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _hall_codes() -> list[str]:
    with CITIES_CSV.open(encoding="utf-8") as handle:
        cities = [row["code"] for row in csv.DictReader(handle)]
    halls = ["370000", *cities]
    halls += [f"{city[:4]}{district:02d}" for city in cities for district in range(2, 14)]
    return halls


_OBJECTS = (
    "建设工程规划许可证 建筑工程施工许可证 药品经营许可证 医疗机构执业许可证 道路运输经营许可证 "
    "排污许可证 取水许可证 烟草专卖零售许可证 出版物经营许可证 人力资源服务许可证 劳务派遣经营许可证 "
    "特种设备使用登记证 危险化学品经营许可证 城市建筑垃圾处置核准 户外广告设施设置许可 "
    "燃气经营许可证 教师资格认定 执业医师注册 护士执业注册 导游证 网约车驾驶员证 船员适任证书 "
    "林木采伐许可证 动物防疫条件合格证 农药经营许可证 兽药经营许可证 种子生产经营许可证 "
    "民办学校办学许可证 养老机构备案 社会团体登记 民办非企业单位登记 基金会登记 宗教活动场所登记 "
    "残疾人证 独生子女父母光荣证 流动人口婚育证明 房屋租赁登记备案 商品房预售许可 物业服务企业资质 "
    "公共场所卫生许可证 放射诊疗许可 母婴保健技术服务执业许可 生育服务登记 计划生育奖励扶助 "
    "工伤认定 劳动能力鉴定 职业介绍 技能培训补贴 创业担保贷款 稳岗返还 高校毕业生就业见习补贴"
).split()
_ACTIONS = "核发 变更 延续 注销 补领 换领 查询 备案 申请 认定 审核 登记 年检 证明开具".split()
_TOPICS = ("证件办理", "社会保障", "交通出行", "住房保障", "就业创业", "医疗卫生", "婚姻登记", "教育科研",
           "税收财务", "设立变更", "准营准办", "资质认证", "环境保护", "农林牧渔", "文化体育", "民族宗教")
_DEPARTMENTS = ("自然资源", "住房城乡建设", "市场监督管理", "卫生健康", "交通运输", "生态环境", "农业农村",
                "民政", "教育", "人力资源社会保障", "文化和旅游", "公安", "应急管理", "水利")


def synthetic_items(n: int) -> list[dict[str, Any]]:
    """Stand-in for seed_data.generate_items: HF items plus ~900 made-up services across halls."""
    rnd = random.Random(20240601)
    bases: list[dict[str, Any]] = []
    for row in _hf_rows():
        bases.append({"name": row["name"], "department": row["department"], "audience": row["audience"],
                      "high_frequency_rank": int(row["rank"]), "topics": [rnd.choice(_TOPICS)]})
    for obj in _OBJECTS:
        for action in _ACTIONS:
            bases.append({"name": obj + action, "department": rnd.choice(_DEPARTMENTS),
                          "audience": rnd.choice(("person", "legal", "both")), "high_frequency_rank": None,
                          "topics": rnd.sample(_TOPICS, 2)})
    halls = _hall_codes()
    items: list[dict[str, Any]] = []
    for hall_index in range(10**6):
        hall = halls[hall_index % len(halls)] if hall_index < len(halls) else f"37{hall_index:04d}"
        for base_index, base in enumerate(bases):
            if base["high_frequency_rank"] is None and rnd.random() < 0.3:
                continue
            items.append({
                **base,
                "code": f"{hall}-{base_index:05d}",
                "base_code": f"B{base_index:05d}",
                "hall_code": hall,
                "item_type": rnd.choice(("行政许可", "公共服务", "行政确认", "其他行政权力")),
                "channels": ["online", "offline"] if base_index % 3 else ["offline"],
                "popularity": rnd.randint(0, 100_000),
                "aliases": [],
            })
            if len(items) >= n:
                return items
    return items


def load_items(n: int) -> tuple[list[dict[str, Any]], str]:
    try:
        from app.catalogue.seed_data import generate_items
    except ImportError:
        return synthetic_items(n), "synthetic"
    return list(generate_items(n)), "seed_data.generate_items"


def _resolve(filters: dict[str, Any], hall: str, topic: str) -> dict[str, Any]:
    placeholders = {"@hall": hall, "@topic": topic}
    return {key: placeholders.get(value, value) if isinstance(value, str) else value
            for key, value in filters.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _time_queries(index: SearchIndex, queries: list[tuple[str | None, dict[str, Any]]], rounds: int,
                  before_each: Callable[[], None]) -> tuple[list[float], dict[str, float]]:
    samples: list[float] = []
    per_query: dict[str, list[float]] = {}
    for _ in range(rounds):
        for q, filters in queries:
            before_each()
            collapse = bool(filters.get("@collapse"))
            plain = {k: v for k, v in filters.items() if k != "@collapse"}
            started = time.perf_counter_ns()
            index.search(q, filters=plain, page=1, page_size=20, collapse=collapse, prefer=(("370000",),))
            elapsed = (time.perf_counter_ns() - started) / 1000
            samples.append(elapsed)
            per_query.setdefault(f"{q or '<browse>'} {filters or ''}".strip(), []).append(elapsed)
    return samples, {name: statistics.median(values) for name, values in per_query.items()}


def run(sizes: Iterable[int], rounds: int, verbose: bool) -> list[dict[str, Any]]:
    SearchIndex(synthetic_items(60)).search("预热")
    rows = []
    for size in sizes:
        items, source = load_items(size)
        gc.collect()
        rss_before = _rss_mb()
        started = time.perf_counter()
        index = SearchIndex(items)
        index.search("预热")
        build_seconds = time.perf_counter() - started
        gc.collect()
        gc.freeze()
        memory_mb = _rss_mb() - rss_before
        hall = max(index.search(None, facet_fields=("hall",)).facets["hall"], key=lambda f: f["count"])["value"]
        topics = index.search(None, facet_fields=("topic",)).facets["topic"]
        topic = topics[0]["value"] if topics else ""
        queries = [(q, _resolve(f, hall, topic)) for q, f in QUERIES]

        def clear() -> None:
            index._result_cache.clear()
            index._score_cache.clear()

        cold, cold_each = _time_queries(index, queries, rounds, clear)
        _time_queries(index, queries, 1, lambda: None)
        warm, _ = _time_queries(index, queries, rounds, lambda: None)
        row = {
            "size": len(items), "source": source, "groups": len(index._group_names),
            "build_s": build_seconds, "memory_mb": memory_mb,
            "cold_p50_us": _percentile(cold, 0.5), "cold_p99_us": _percentile(cold, 0.99),
            "warm_p50_us": _percentile(warm, 0.5), "warm_p99_us": _percentile(warm, 0.99),
        }
        rows.append(row)
        print(
            f"{row['size']:>7} items ({source}, {row['groups']} groups): build {build_seconds:6.2f}s, "
            f"RSS +{memory_mb:6.1f} MB, cold p50 {row['cold_p50_us']:7.1f}us p99 {row['cold_p99_us']:7.1f}us, "
            f"cached p50 {row['warm_p50_us']:5.1f}us p99 {row['warm_p99_us']:5.1f}us",
            flush=True,
        )
        if verbose:
            for name, median in cold_each.items():
                print(f"    {median:8.1f}us  {name}")
        del index, items
        gc.unfreeze()
        gc.collect()
    base = rows[0]
    for row in rows[1:]:
        print(f"p50 ratio {row['size']}/{base['size']}: cold {row['cold_p50_us'] / base['cold_p50_us']:.2f}, "
              f"cached {row['warm_p50_us'] / base['warm_p50_us']:.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=lambda text: [int(x) for x in text.split(",")], default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="print the cold median of every query")
    args = parser.parse_args()
    run(args.sizes, args.rounds, args.verbose)


if __name__ == "__main__":
    main()
