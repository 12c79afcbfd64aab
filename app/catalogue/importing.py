"""Importing a published district catalogue into ours: match names, map departments, assign levels.

Pure rules (no Flask, no database). `derive_items` turns the rows of a public item list
(name, department, group, item type, source item code) into the rows of
`data/imported_items.csv`: the same item as one of ours gets our base code (`matched_base_code`),
a new item gets a stable base code of its own. `flask catalogue import-items` runs it.

Rules (documented in data/README.md):
- matching: names compare after dropping level suffixes (（市级）, （县级）, （市级/县级）, （县级行使）...)
  and unifying brackets; the displayed name keeps the source's wording;
- departments: district departments map to the Shandong department codes of departments.json; items of
  the district's 行政审批局 map to the department competent for their subject (keyword rules, first match);
- levels: 市级 in the name -> city only; otherwise city and county (Shandong's 市县同权: the city hall handles
  county-level items for its districts); person-facing 公共服务/行政给付/行政确认 of grassroots departments
  also at township service centres (乡镇（街道）便民服务中心);
- audience and topics by keywords; online depth: 查询/打印/咨询 items fully online, the rest 网上预审.
"""
from __future__ import annotations

import csv
import re
from typing import Iterable, Mapping

LEVEL_SUFFIX = re.compile(r"[（(](?:市级/县级|市级|县级|县级行使|县级权限|市级权限|住建行使)[）)]")
ITEM_TYPE_NUMBERS = {"行政许可": "01", "行政给付": "05", "行政确认": "07", "行政奖励": "08", "行政裁决": "09",
                     "其他行政权力": "10", "行政备案": "14", "公共服务": "20"}
IMPORTED_SEQUENCE_START = 501  # our own items use 001-500 of each (type, department) bucket
SOURCE = "v-luobo/zwfw"

DEPARTMENTS = {
    "区经信局": "gongxin", "区教科体局": "jiaoyu", "区人社局": "renshe", "区交通运输局": "jiaotong",
    "广安区税务局": "shuiwu", "区住建局": "zhujian", "区自然资源和规划局": "ziran", "区公安分局": "gongan",
    "区医疗保障局": "yibao", "区文广旅局": "wenlv", "区农业农村局": "nongye", "区司法局": "sifa", "区卫健局": "weijian",
    "区民政局": "minzheng", "区市监局": "shichang", "区林业局": "linye", "区生态环境局": "shengtai", "区残联": "canlian",
    "区水务局": "shuili", "区应急管理局": "yingji", "区政府办": "renfang", "区烟草专卖局": "yancao", "区气象局": "qixiang",
    "区退役军人事务局": "tuiyi", "区财政局": "caizheng", "区委办": "dangan", "区综合执法局": "chengguan", "区发改局": "fagai",
    "区公管办": "gongguan", "区商务局": "shangwu", "区委统战部": "minzong", "区消防大队": "xiaofang", "区统计局": "tongji",
}
APPROVAL_BUREAU = "区行政审批局"

# (keywords, department code): the first rule whose keyword occurs in the name wins
SUBJECT_RULES: tuple[tuple[str, str], ...] = (
    ("不定时工作制|劳务派遣|人力资源服务|职业中介", "renshe"),
    ("节能审查|投资项目|电力设施", "fagai"),
    ("宗教|民族成份|寺院|宫观|清真寺|教堂|固定处所", "minzong"),
    ("文旅类|营业性演出|娱乐场所|文物|电影放映|艺术品|演出|互联网上网服务", "wenlv"),
    ("广播|电视", "guangdian"),
    ("出版物|印刷", "xinwen"),
    ("社会团体|民办非企业|慈善|公益性墓地|殡葬", "minzheng"),
    ("体育|游泳|潜水|滑雪|攀岩|健身气功", "tiyu"),
    ("幼儿园|学校|义务教育|校外培训|教育机构|校车|办学|校（园）长", "jiaoyu"),
    ("拖拉机|联合收割机|农药|兽药|种子|蚕种|生鲜乳|水产苗种|渔业|水生野生动物|农业野生植物|动物防疫|饲料|水域滩涂|农机|"
     "屠宰|肥料|植物检疫|动物诊疗|菌种|种畜禽|孵化场|人工授精|鱼类资源", "nongye"),
    ("护路林|采伐|林木|林草|森林|木材|野生植物|野生动物|自然保护区", "linye"),
    ("公证|律师|司法鉴定|基层法律|法律援助|人民调解", "sifa"),
    ("水利|河道|水库|大坝|取水|灌溉|提灌站|水土保持|水工程|行洪", "shuili"),
    ("公路|交叉道口|超限运输|道路运输|客运|货运|出租汽车|机动车维修|驾驶员培训|非公路标志|港口|航道|船舶|设计文件|设计变更", "jiaotong"),
    ("医疗机构|诊所|母婴保健|放射|公共场所卫生|饮用水|卫生许可|职业病|健康体检|毒性药品|医师|护士|乡村医生", "weijian"),
    ("城市道路|户外广告|宣传品|环卫|生活垃圾|建筑垃圾|夜间建筑施工|占道|城市建筑物|临时性建筑物", "chengguan"),
    ("建筑|建设工程|商品房|燃气|排水|物业|房屋", "zhujian"),
    ("代理记账|会计", "caizheng"),
    ("烟花爆竹|危险化学品|安全生产", "yingji"),
    ("食品|药品|特种设备|计量|股权出质|公司|企业|个体工商户|合伙|农民专业合作社|市场主体|证照|分支机构|广告", "shichang"),
)
POLICE_RULES: tuple[tuple[str, str], ...] = (
    ("驾驶|机动车|车辆|号牌|交通", "jiaoguan"),
    ("护照|港澳|台湾|出入境|出国|签注", "churujing"),
)
NATURAL_RESOURCE_RULES: tuple[tuple[str, str], ...] = (("不动产", "budongchan"),)
CULTURE_RULES: tuple[tuple[str, str], ...] = (("广播|电视|卫星", "guangdian"), ("出版|印刷", "xinwen"))
EDUCATION_RULES: tuple[tuple[str, str], ...] = (("体育|运动", "tiyu"),)
DEPARTMENT_REFINEMENTS = {"gongan": POLICE_RULES, "ziran": NATURAL_RESOURCE_RULES, "wenlv": CULTURE_RULES,
                          "jiaoyu": EDUCATION_RULES}

GRASSROOTS_DEPARTMENTS = frozenset({"renshe", "yibao", "minzheng", "canlian", "tuiyi", "weijian", "gongan"})
PERSON_WORDS = ("个人|居民|户口|身份证|学生|儿童|少年|残疾|退役|军人|养老|失业|就业|社保卡|社会保障卡|医保|医疗保险|婚|生育|老年|"
                "低保|最低生活|救助|驾驶证|护照|教师资格|职工|退休|公民|家庭|抚恤|优待|学籍|入学|资助|助学|灵活就业|"
                "独生子女|计划生育|供养|遗属|丧葬|工伤|技能|继续教育|档案|法律援助|公证|犬|宠物|从业资格|执业注册|"
                "教师|医师|护士|导游|船员|农村建房|宅基地")
LEGAL_WORDS = ("企业|公司|经营|单位|机构|生产|场所|项目|建设|工程|工地|施工|合作社|分支|个体工商户|社会团体|民办|纳税人|"
               "发票|出口|船舶|车辆营运|道路运输|站|厂|矿|店|组织|协会")
TOPIC_RULES: tuple[tuple[str, str, str], ...] = (
    # (keywords, person topic, legal topic)
    ("出生|新生儿|生育|母婴|计划生育|独生子女", "person-birth", "legal-health"),
    ("入学|学籍|学生|学校|幼儿园|教育|助学|资助|校外培训|教师", "person-education", "legal-qualification"),
    ("就业|失业|创业|技能|职业|人力资源|劳务派遣|工时", "person-employment", "legal-employment"),
    ("婚", "person-marriage", "legal-operation"),
    ("住房|公积金|房屋|商品房|物业|租赁住房", "person-housing", "legal-construction"),
    ("驾驶|机动车|道路|公路|客运|货运|出租汽车|交通|船舶|港口", "person-travel", "legal-transport"),
    ("医疗|医保|医师|护士|卫生|诊所|药品|放射|健康", "person-medical", "legal-health"),
    ("社会保险|社保|参保|工伤|社会保障卡", "person-social-security", "legal-employment"),
    ("养老|退休|高龄|老年", "person-retirement", "legal-employment"),
    ("身份证|居住证", "person-identity", "legal-startup"),
    ("户口|户籍|民族成份", "person-household", "legal-startup"),
    ("护照|港澳|台湾|出入境", "person-exit-entry", "legal-foreign"),
    ("税|发票", "person-tax", "legal-tax"),
    ("救助|低保|最低生活|特困|慈善|临时救助", "person-assistance", "legal-social-org"),
    ("残疾", "person-disability", "legal-social-org"),
    ("退役|军人|优抚|烈士|抚恤", "person-veteran", "legal-social-org"),
    ("人才|职称|专业技术", "person-talent", "legal-qualification"),
    ("丧葬|殡葬|遗属|死亡|墓地", "person-death", "legal-social-org"),
    ("法律|公证|仲裁|调解|司法", "person-legal-service", "legal-operation"),
    ("农|渔|林|种子|兽|畜|蚕|生鲜乳|动物|植物|水产", "person-rural", "legal-agriculture"),
    ("设立|开业|筹设|新办", "person-employment", "legal-startup"),
    ("变更", "person-identity", "legal-change"),
    ("注销|歇业|终止", "person-death", "legal-deregistration"),
    ("食品|餐饮", "person-consumer", "legal-food-drug"),
    ("建设|工程|施工|规划|用地|人防|消防", "person-housing", "legal-construction"),
    ("投资|节能", "person-employment", "legal-investment"),
    ("环境|环保|排污|危险废物|辐射|噪声", "person-rural", "legal-environment"),
    ("安全|烟花爆竹|危险化学品|应急", "person-consumer", "legal-safety"),
    ("文化|文物|演出|娱乐|旅游|广播|电视|出版|体育|游泳|电影", "person-consumer", "legal-culture"),
    ("社会团体|民办非企业|宗教", "person-consumer", "legal-social-org"),
)
ONLINE_WORDS = re.compile("查询|打印|咨询|信息发布|核验")
MAX_TOPICS = 3


SOURCE_PROVINCE_NOTE = re.compile(r"[（(](?:据|根据)省政府[^）)]*[）)]")
SOURCE_PROVINCE = "四川省"


def display_name(name: str) -> str:
    """The source's name without what only holds in the source's province (Sichuan's delegation notes
    "（据省政府令第349号…）" and the province in a card's title: 《四川省老年人优待证》 -> 《老年人优待证》)."""
    return SOURCE_PROVINCE_NOTE.sub("", name).replace(SOURCE_PROVINCE, "").strip()


def match_key(name: str) -> str:
    """The name as compared between catalogues: level suffixes dropped, brackets, book-title marks and
    spaces unified."""
    text = LEVEL_SUFFIX.sub("", display_name(name or ""))
    for mark in ("《", "》", " ", "\u3000"):
        text = text.replace(mark, "")
    return text.replace("(", "（").replace(")", "）").strip()


def _first(rules: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((code for words, code in rules if re.search(words, name)), None)


def department_code(source_department: str, name: str) -> str | None:
    """The Shandong department code for a source department (and the item name), or None when unknown."""
    if source_department == APPROVAL_BUREAU:
        return _first(SUBJECT_RULES, name) or "shichang"
    code = DEPARTMENTS.get(source_department)
    if code is None:
        return None
    return _first(DEPARTMENT_REFINEMENTS.get(code, ()), name) or code


def audience(name: str, item_type: str) -> str:
    if re.search("企业职工|单位职工|职工个人", name):
        return "person"
    if re.search(PERSON_WORDS, name) and not re.search("企业|公司|单位|机构", name):
        return "person"
    if re.search(LEGAL_WORDS, name):
        return "legal"
    return "legal" if item_type in ("行政许可", "其他行政权力", "行政备案") else "person"


def levels(name: str, item_type: str, department: str, who: str) -> list[str]:
    """The hall levels that handle the item (see the module docstring)."""
    if "市级" in name and "县级" not in name:
        return ["city"]
    found = ["city", "county"]
    if (who == "person" and department in GRASSROOTS_DEPARTMENTS
            and item_type in ("公共服务", "行政给付", "行政确认")):
        found.append("township")
    return found


def topics(name: str, who: str) -> list[str]:
    found: list[str] = []
    for words, person_topic, legal_topic in TOPIC_RULES:
        topic = person_topic if who == "person" else legal_topic
        if re.search(words, name) and topic not in found:
            found.append(topic)
        if len(found) >= MAX_TOPICS:
            break
    return found or (["person-consumer"] if who == "person" else ["legal-operation"])


def online_depth(name: str) -> str:
    return "全程网办" if ONLINE_WORDS.search(name) else "网上预审"


def derive_items(rows: Iterable[Mapping[str, str]], base_items: Iterable[Mapping], departments: Iterable[Mapping],
                 *, source: str = SOURCE) -> list[dict]:
    """The imported catalogue rows, in source order; raises ValueError naming an unmapped department."""
    ours = {match_key(b["name"]): b for b in base_items}
    numbers = {d["code"]: d["number"] for d in departments}
    used = {b["base_code"] for b in base_items}
    result: list[dict] = []
    seen: set[str] = set()
    next_seq: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: (r["source_item_code"], r["name"])):
        name = display_name(row["name"].strip())
        key = match_key(name)
        if not name or key in seen:
            continue
        seen.add(key)
        mine = ours.get(key)
        code = department_code(row["department"], name)
        if code is None or code not in numbers:
            raise ValueError(f"no Shandong department for {row['department']!r} ({name})")
        item_type = row["item_type"]
        if item_type not in ITEM_TYPE_NUMBERS:
            raise ValueError(f"unknown item type {item_type!r} ({name})")
        who = audience(name, item_type)
        if mine is not None:
            base_code = mine["base_code"]
        else:
            bucket = f"00{ITEM_TYPE_NUMBERS[item_type]}{numbers[code]}"
            seq = next_seq.get(bucket, IMPORTED_SEQUENCE_START)
            while f"{bucket}{seq:03d}000" in used:
                seq += 1
            if seq > 999:
                raise ValueError(f"base code bucket {bucket} is full")
            base_code = f"{bucket}{seq:03d}000"
            next_seq[bucket] = seq + 1
            used.add(base_code)
        result.append({
            "base_code": base_code, "matched": "1" if mine is not None else "0", "name": name,
            "parent_item": (row.get("group") or "").strip(), "item_type": item_type, "department_code": code,
            "source_department": row["department"], "levels": "|".join(levels(name, item_type, code, who)),
            "audience": who, "topics": "|".join(topics(name, who)), "online_depth": online_depth(name),
            "source": source, "source_item_code": row["source_item_code"],
        })
    return result


FIELDS = ("base_code", "matched", "name", "parent_item", "item_type", "department_code", "source_department",
          "levels", "audience", "topics", "online_depth", "source", "source_item_code")


def write_csv(rows: list[dict], path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
