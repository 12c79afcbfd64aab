"""Consistency tests for the catalogue seed data files and their deterministic per-hall expansion."""
from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from app.catalogue import seed_data

SHARED = Path("/work/shared/data")
DATA_DIR = Path(seed_data.__file__).resolve().parent / "data"
ITEM_TYPES = {"行政许可", "行政确认", "行政给付", "行政裁决", "行政奖励", "行政备案", "其他行政权力", "公共服务"}
DEPTHS = {"全程网办", "网上预审", "只跑一次", "到现场办理"}
FIVE_SAME = ("name", "item_type", "legal_basis", "materials", "statutory_limit_days")

# GB 32100-2015, written independently of the data builder: charset without I, O, Z, S, V
_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def credit_code_valid(code: str) -> bool:
    if len(code) != 18 or any(ch not in _CREDIT_CHARSET for ch in code):
        return False
    total = sum(_CREDIT_CHARSET.index(ch) * weight for ch, weight in zip(code[:17], _CREDIT_WEIGHTS))
    check = 31 - total % 31
    return code[17] == _CREDIT_CHARSET[0 if check == 31 else check]


def test_credit_code_oracle_matches_published_vectors():
    assert credit_code_valid("91110000600037341L")
    assert credit_code_valid("11100000000013338W")
    assert not credit_code_valid("91110000600037341M")
    assert not credit_code_valid("9111000060003734IL")


def _csv(name: str) -> list[dict]:
    with open(SHARED / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def halls():
    return seed_data.load_halls()


@pytest.fixture(scope="module")
def license_types():
    return seed_data.load_license_types()


@pytest.fixture(scope="module")
def base_items():
    return seed_data.load_base_items()


@pytest.fixture(scope="module")
def services():
    return list(seed_data.iter_hall_services())


# ---------------------------------------------------------------------------------------------------------- halls


def test_halls_are_one_plus_sixteen_plus_county_divisions(halls):
    by_level = Counter(h["level"] for h in halls)
    assert by_level["province"] == 1 and by_level["city"] == 16 and by_level["county"] >= 130
    codes = [h["code"] for h in halls]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"37\d{4}", code) for code in codes)
    assert not any(code.startswith("3712") for code in codes)  # 莱芜 merged into 济南 in 2019

    cities = {row["code"]: row["name"] for row in _csv("shandong_cities.csv")}
    assert {h["code"]: h["name"] for h in halls if h["level"] == "city"} == cities
    assert all(h["parent_code"] == "370000" for h in halls if h["level"] == "city")
    for county in (h for h in halls if h["level"] == "county"):
        assert county["parent_code"] in cities
        assert county["code"][:4] == county["parent_code"][:4]
        assert county["name"][-1] in "区县市"
        assert county["full_name"] == cities[county["parent_code"]] + county["name"]


def test_known_county_codes(halls):
    names = {h["code"]: h["name"] for h in halls}
    expected = {"370102": "历下区", "370103": "市中区", "370112": "历城区", "370116": "莱芜区", "370117": "钢城区",
                "370126": "商河县", "370202": "市南区", "370211": "黄岛区", "370614": "蓬莱区", "371703": "定陶区"}
    for code, name in expected.items():
        assert names[code] == name
    assert Counter(h["name"][-1] for h in halls if h["level"] == "county") == {"区": 58, "市": 26, "县": 52}


# -------------------------------------------------------------------------------------------------- license types


def test_license_types(license_types):
    assert len(license_types) >= 110
    codes = [lt["code"] for lt in license_types]
    assert len(set(codes)) == len(codes)
    names = [lt["name"] for lt in license_types]
    assert len(set(names)) == len(names)
    for required in ("居民身份证", "机动车驾驶证", "机动车行驶证", "社会保障卡", "营业执照", "居住证", "出生医学证明", "结婚证",
                     "离婚证", "不动产权证书", "山东惠才卡", "户口簿", "普通护照", "往来港澳通行证", "残疾人证", "退役军人优待证",
                     "医师执业证书", "教师资格证书", "食品经营许可证", "道路运输经营许可证"):
        assert required in names, required
    for lt in license_types:
        assert re.fullmatch(r"[0-9A-Z]{18}\d{3}", lt["code"]), lt["code"]
        assert credit_code_valid(lt["code"][:18]), lt["code"]
        assert lt["holder_type"] in ("person", "legal")
        assert lt["validity_years"] is None or (isinstance(lt["validity_years"], int) and lt["validity_years"] > 0)
        fields = {f["name"]: f for f in lt["fields"]}
        assert len(fields) == len(lt["fields"]) >= 3
        for field in lt["fields"]:
            assert field["type"] in ("text", "date", "id_number", "number")
            assert isinstance(field["sensitive"], bool) and field["label"]
            if field["type"] == "id_number":
                assert field["sensitive"], (lt["name"], field["name"])
        assert lt["default_disclose"], lt["name"]
        for name in lt["default_disclose"]:
            assert name in fields and not fields[name]["sensitive"], (lt["name"], name)
        if lt["holder_type"] == "legal":
            assert "credit_code" in fields
    person_id_card = next(lt for lt in license_types if lt["name"] == "居民身份证")
    assert "id_number" not in person_id_card["default_disclose"]


def test_topics():
    topics = seed_data.load_topics()
    codes = [t["code"] for t in topics]
    assert len(set(codes)) == len(codes)
    assert {t["audience"] for t in topics} == {"person", "legal"}
    names = {t["name"] for t in topics}
    assert {"出生", "上学", "婚育", "住房", "社保", "企业开办", "注销退出"} <= names


# ----------------------------------------------------------------------------------------------------- base items


def test_base_items_shape(base_items, license_types):
    assert len(base_items) >= 1400
    base_codes = [b["base_code"] for b in base_items]
    assert len(set(base_codes)) == len(base_codes)
    names = [b["name"] for b in base_items]
    assert len(set(names)) == len(names)
    lt_codes = {lt["code"] for lt in license_types}
    topic_codes = {t["code"] for t in seed_data.load_topics()}
    departments = {d["code"] for d in seed_data.load_departments()}
    for b in base_items:
        assert re.fullmatch(r"\d{12}", b["base_code"]), b["base_code"]
        assert b["item_type"] in ITEM_TYPES and b["online_depth"] in DEPTHS
        assert b["level"] in ("province", "city", "county") and b["audience"] in ("person", "legal")
        assert b["level"] in b["levels"] and set(b["levels"]) <= {"province", "city", "county", "township"}
        assert b["department_code"] in departments and b["department"]
        if b["source_ref"] is None:  # ours: a legal basis, always
            assert b["legal_basis"] and all(law.startswith("《") and law.endswith("》") for law in b["legal_basis"])
        else:  # imported: none invented
            assert b["legal_basis"] == [] and re.fullmatch(r"v-luobo/zwfw#\w+", b["source_ref"]), b["name"]
        assert 0 <= b["promised_limit_days"] <= b["statutory_limit_days"]
        assert b["fee"]
        assert b["topics"] and set(b["topics"]) <= topic_codes
        assert all(topic.startswith(b["audience"] + "-") for topic in b["topics"])
        assert 1 <= len(b["materials"]) <= 5, b["name"]
        assert any(m["core"] for m in b["materials"])
        for material in b["materials"]:
            assert material["name"] and isinstance(material["required"], bool)
            assert material["license_type_code"] is None or material["license_type_code"] in lt_codes, material
        assert b["produces_license"] is None or b["produces_license"] in lt_codes, b["name"]
        assert 3 <= len(b["form"]) <= 8, b["name"]
        for situation in b["situations"]:
            assert situation["code"] and situation["name"] and situation["materials"]
            for material in situation["materials"]:
                assert material["license_type_code"] is None or material["license_type_code"] in lt_codes
        assert len({f["name"] for f in b["form"]}) == len(b["form"])
        for field in b["form"]:
            assert field["type"] in ("text", "number", "date", "select", "id_number", "phone")
            assert field["profile"] in (None, "name", "id_number", "phone", "address", "company_name", "credit_code")
            assert ("options" in field) == (field["type"] == "select")
            if field["type"] == "select":
                assert len(field["options"]) >= 2


def test_high_frequency_items_and_bundle_members(base_items):
    by_name = {b["name"]: b for b in base_items}
    for row in _csv("high_frequency_services.csv"):
        item = by_name[row["name"]]
        assert item["high_frequency_rank"] == int(row["rank"])
        assert item["audience"] == row["audience"]
        assert item["level"] in ("city", "county") and item["source_ref"] is None
    assert sum(1 for b in base_items if b["high_frequency_rank"]) == seed_data.HIGH_FREQUENCY_COUNT
    for row in _csv("bundles.csv"):
        for name in row["member_services"].split("|"):
            assert name in by_name, name


def test_materials_and_products_map_to_license_types(base_items, license_types):
    lt_name = {lt["code"]: lt["name"] for lt in license_types}
    by_name = {b["name"]: b for b in base_items}
    produced = {
        "居住证签发": "居住证", "山东惠才卡申领": "山东惠才卡", "社会保障卡申领": "社会保障卡", "企业设立登记": "营业执照",
        "出生医学证明签发": "出生医学证明", "居民身份证换领": "居民身份证", "个人参保证明打印": "个人参保证明",
        "住房公积金缴存证明打印": "住房公积金缴存证明", "食品经营许可": "食品经营许可证", "内地居民结婚登记": "结婚证",
    }
    for item, license_name in produced.items():
        assert lt_name[by_name[item]["produces_license"]] == license_name
    assert by_name["居住证签发"]["instant_approval"] is True
    # their licenses need facts no registry here holds (payment months, balances): a person decides
    for item in ("山东惠才卡申领", "个人参保证明打印", "住房公积金缴存证明打印"):
        assert by_name[item]["instant_approval"] is False
    id_card = next(code for code, name in lt_name.items() if name == "居民身份证")
    for b in base_items:
        for material in b["materials"]:
            if material["name"] == "居民身份证":
                assert material["license_type_code"] == id_card


def test_bundles(base_items):
    by_code = {b["base_code"]: b for b in base_items}
    bundles = {b["code"]: b for b in seed_data.load_bundles()}
    for row in _csv("bundles.csv"):
        bundle = bundles[row["bundle_code"]]
        assert bundle["name"] == row["name"] and bundle["audience"] == row["audience"]
        members = [m["name"] for m in bundle["members"]]
        assert [name for name in members if name in row["member_services"].split("|")] == \
            row["member_services"].split("|")
    assert len(bundles) >= 15
    for bundle in bundles.values():
        assert len(bundle["members"]) >= 2 and bundle["name"].endswith("一件事")
        assert bundle["audience"] in ("person", "legal")
        for member in bundle["members"]:
            base = by_code[member["base_code"]]
            assert base["name"] == member["name"] and member["level"] in base["levels"]
    national = {"新生儿出生一件事", "企业信息变更一件事", "开办运输企业一件事", "员工录用一件事", "开办餐饮店一件事",
                "二手房转移登记及水电气网联合过户一件事", "社会保障卡居民服务一件事", "申请公租房一件事", "退休一件事",
                "残疾人服务一件事", "军人退役一件事", "灵活就业参保一件事", "老年人福利补贴申请一件事"}
    assert national <= {b["name"] for b in bundles.values()}


def test_imported_items_are_the_published_list(base_items):
    """Every row of the public list is one of ours (same base code) or an item of its own, none invented."""
    from app.catalogue import importing
    published = _csv("public_service_items.csv")
    rows = seed_data.load_imported_rows()
    assert rows == importing.derive_items(published, seed_data.load_own_items(), seed_data.load_departments())
    by_code = {b["base_code"]: b for b in base_items}
    own = {b["base_code"] for b in seed_data.load_own_items()}
    source_names = {importing.match_key(r["name"]) for r in published}
    for row in rows:
        assert importing.match_key(row["name"]) in source_names
        if row["matched"] == "1":
            assert row["base_code"] in own
            assert importing.match_key(by_code[row["base_code"]]["name"]) == importing.match_key(row["name"])
        else:
            assert row["base_code"] not in own and by_code[row["base_code"]]["name"] == row["name"]
    imported = [b for b in base_items if b["source_ref"]]
    assert len(imported) == sum(r["matched"] == "0" for r in rows) >= 1000
    assert {b["base_code"] for b in base_items} == own | {b["base_code"] for b in imported}



def test_the_data_readme_attributes_every_source_and_states_the_real_counts(base_items):
    """The data README names each imported list's source with its licence, and its counts are the catalogue's."""
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("|")]
    for source in {row["source"] for row in seed_data.load_imported_rows()}:
        rows = [line for line in table if source in line]
        assert rows and all(re.search(r"Licen[cs]e|CC[- ]BY|CC0|MIT|开放", line) for line in rows), source
    items = re.search(r"\*\*([\d,]+) distinct items\*\*", readme)
    situations = re.search(r"\*\*([\d,]+) handling situations\*\*", readme)
    assert items and int(items.group(1).replace(",", "")) == len(base_items)
    assert situations and int(situations.group(1).replace(",", "")) == sum(len(b["situations"]) for b in base_items)

def test_import_rules():
    from app.catalogue import importing
    assert importing.match_key("发票领用(县级行使）") == "发票领用"
    assert importing.match_key("企业投资项目备案（技术改造）（市级/县级）") == "企业投资项目备案（技术改造）"
    assert importing.match_key("《预防接种证》办理") == importing.match_key("预防接种证办理")
    assert importing.display_name("初步设计文件审批(据省政府令第349号,部分省级权限下放成都等８市)") == "初步设计文件审批"
    assert importing.department_code("区行政审批局", "公共场所卫生许可新办审批（县级）") == "weijian"
    assert importing.department_code("区行政审批局", "设立宗教活动临时地点审批") == "minzong"
    assert importing.department_code("区公安分局", "机动车驾驶证补领") == "jiaoguan"
    assert importing.department_code("区自然资源和规划局", "不动产抵押登记") == "budongchan"
    assert importing.department_code("某不存在的局", "x") is None
    assert importing.levels("危险废物经营许可申请（市级）", "行政许可", "shengtai", "legal") == ["city"]
    assert importing.levels("社会保障卡解挂", "公共服务", "renshe", "person") == ["city", "county", "township"]
    assert importing.levels("道路货物运输经营许可", "行政许可", "jiaotong", "legal") == ["city", "county"]
    assert importing.audience("企业职工基本养老保险退休待遇重核申请", "公共服务") == "person"
    assert importing.audience("分公司设立登记", "行政许可") == "legal"
    assert importing.online_depth("社会保障卡应用状态查询") == "全程网办"
    with pytest.raises(ValueError):
        importing.derive_items([{"name": "x", "department": "火星局", "group": "", "item_type": "行政许可",
                                 "source_item_code": "1"}], [], seed_data.load_departments())


# ---------------------------------------------------------------------------------------------- per-hall expansion


def test_hall_service_counts(services, halls, base_items):
    assert len(services) >= 2000
    codes = [s["code"] for s in services]
    assert len(set(codes)) == len(codes)
    hf_codes = {b["base_code"] for b in base_items if b["high_frequency_rank"]}
    per_hall = defaultdict(set)
    for s in services:
        assert s["code"] == f"{s['hall_code']}-{s['base_code']}"
        per_hall[s["hall_code"]].add(s["base_code"])
    city_items = {b["base_code"] for b in base_items if b["level"] == "city"}
    for hall in halls:
        offered = per_hall[hall["code"]]
        assert offered, hall["code"]
        if hall["level"] == "city":
            assert len(offered) >= seed_data.CITY_SERVICE_TARGET
            assert hf_codes <= offered and city_items <= offered
    assert per_hall["370000"] == {b["base_code"] for b in base_items if b["level"] == "province"}


def test_four_levels_six_same(services, base_items):
    by_code = {b["base_code"]: b for b in base_items}
    for s in services:
        base = by_code[s["base_code"]]
        for field in FIVE_SAME:
            assert s[field] == base[field], (s["code"], field)
        assert 0 <= s["promised_limit_days"] <= s["statutory_limit_days"]
        assert s["promised_limit_days"] >= base["promised_limit_days"] - 1
        assert s["channels"] and set(s["channels"]) <= {"app", "wechat", "alipay"} and "app" in s["channels"]
        assert s["address"] and s["department"] and s["popularity"] > 0
        assert s["high_frequency"] == (base["high_frequency_rank"] is not None)
    channel_sets = Counter(tuple(s["channels"]) for s in services)
    assert channel_sets[("app", "wechat", "alipay")] > len(services) // 2 and len(channel_sets) > 1


def test_expansion_is_deterministic(services):
    digest = hashlib.sha256(json.dumps(services, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    again = list(seed_data.iter_hall_services())
    assert hashlib.sha256(json.dumps(again, ensure_ascii=False, sort_keys=True).encode()).hexdigest() == digest
    subset = list(seed_data.iter_hall_services(["370100", "370102"]))
    assert subset == [s for s in services if s["hall_code"] in ("370100", "370102")]


def test_hall_specific_department_names(services):
    by_code = {s["code"]: s for s in services}
    assert by_code["370102-" + _base_code("居民身份证换领")]["department"] == "济南市公安局历下区分局"
    assert by_code["370124-" + _base_code("居民身份证换领")]["department"] == "平阴县公安局"
    assert by_code["370100-" + _base_code("企业设立登记")]["department"] == "济南市市场监督管理局"


def _base_code(name: str) -> str:
    return next(b["base_code"] for b in seed_data.load_base_items() if b["name"] == name)


def test_loaders_return_copies():
    items = seed_data.load_base_items()
    items[0]["materials"].clear()
    assert seed_data.load_base_items()[0]["materials"]
    halls = seed_data.load_halls()
    halls[0]["name"] = "x"
    assert seed_data.load_halls()[0]["name"] == "山东省"


# -------------------------------------------------------------------------------------------------- generate_items


def test_generate_items_unique_and_deterministic():
    first = list(seed_data.generate_items(5000))
    assert len(first) == 5000 and len({s["code"] for s in first}) == 5000
    assert first == list(seed_data.generate_items(5000))
    assert list(seed_data.generate_items(0)) == []


def test_generate_items_reaches_township_and_village_levels(services):
    n = len(services) + seed_data.township_rows() + 5_000  # past all township service centres into villages
    generated = list(seed_data.generate_items(n))
    assert len(generated) == n and len({s["code"] for s in generated}) == n
    levels = Counter(s["hall_level"] for s in generated)
    assert levels["township"] > 0 and levels["village"] > 0
    base_names = {b["base_code"]: b["name"] for b in seed_data.load_base_items()}
    for s in generated[len(services):]:
        assert s["name"] == base_names[s["base_code"]] and s["grassroots"]
        assert re.fullmatch(r"37\d{7}(\d{3})?", s["hall_code"])


# ---------------------------------------------------------------------------------------------- search resources


def test_synonyms_and_user_dictionary():
    lines = [line for line in (DATA_DIR / "synonyms.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) >= 50
    for line in lines:
        canonical, _, aliases = line.partition(":")
        assert canonical.strip() and aliases.strip(), line
        assert not re.search(r"[/;|#]", aliases), line
    entries = (DATA_DIR / "userdict.txt").read_text(encoding="utf-8").splitlines()
    assert len(entries) >= 100
    for entry in entries:
        word, freq, pos = entry.split(" ")
        assert word and int(freq) > 0 and pos.isalpha()
