"""Service guides (办事指南): the base entries of imported items, and the guide sections every service shows.

Pure module. An imported item (data/imported_items.csv) carries only what its source published:
name, department, type and the source's item code. Its base entry gets the materials, conditions,
process and limits that its item type requires in general, and says so (`guide_note`); its legal basis
stays empty with `legal_basis_note` instead of an invented one. Conditions and process steps of every
service are derived from its own fields (type, audience, online depth, legal basis, materials), so they
stay consistent across halls (四级六同) without another copy per hall.
"""
from __future__ import annotations

from typing import Any, Mapping

HOTLINE = "12345"
HOTLINE_NOTE = "12345政务服务便民热线（来源目录未载明部门专线）"
NO_LEGAL_BASIS = "来源目录未载明设定依据"
ID_CARD = "11100000000013100M001"
BUSINESS_LICENSE = "11100000000013156D001"
LICENSING_STATUTORY_DAYS = 20  # 《中华人民共和国行政许可法》第四十二条
LIMIT_NOTE = {
    "行政许可": "法定时限：《中华人民共和国行政许可法》第四十二条（二十日）；承诺时限为本目录的默认值，以实施机关公布为准",
    "default": "来源目录未载明办结时限，暂以二十个工作日为上限，以实施机关公布为准",
}
FEE_UNKNOWN = "来源目录未载明收费标准，以实施机关公布为准"
QUERY_WORDS = ("查询", "打印", "咨询", "信息发布", "核验")


def source_note(source_ref: str | None) -> str:
    """Where the guide's parts come from: an imported item's source, or our own catalogue."""
    if source_ref:
        source, _, code = source_ref.partition("#")
        return (f"事项名称、实施部门和事项类型取自公开事项目录（{source}，事项编码 {code}）；申请材料、"
                "办理条件、流程和时限按事项类型的通用要求整理，以实施机关公布的办事指南为准")
    return "申请材料、设定依据和时限取自本目录；办理条件和流程按事项类型与网办深度整理"


def _material(name: str, *, required: bool = True, license_type: str | None = None, commitment: bool = False,
              core: bool = True) -> dict:
    return {"name": name, "required": required, "license_type_code": license_type,
            "commitment_allowed": commitment, "core": core}


def imported_materials(name: str, item_type: str, audience: str) -> list[dict]:
    """The materials every item of this type and audience asks for (identity, application, authorisation)."""
    if audience == "person":
        materials = [_material("居民身份证", license_type=ID_CARD)]
        if not any(word in name for word in QUERY_WORDS):
            materials.append(_material("申请表", core=False))
        materials.append(_material("授权委托书及受托人身份证明", required=False, core=False))
        return materials
    materials = [_material("营业执照", license_type=BUSINESS_LICENSE),
                 _material("申请书"),
                 _material("法定代表人（负责人）身份证明", license_type=ID_CARD, core=False),
                 _material("授权委托书及经办人身份证明", required=False, core=False)]
    if item_type == "行政许可":
        materials.append(_material("符合许可条件的证明材料", commitment=True, core=False))
    return materials


def imported_form(audience: str) -> list[dict]:
    if audience == "person":
        return [
            {"name": "name", "label": "申请人姓名", "type": "text", "required": True, "profile": "name"},
            {"name": "id_number", "label": "公民身份号码", "type": "id_number", "required": True, "profile": "id_number"},
            {"name": "phone", "label": "联系电话", "type": "phone", "required": True, "profile": "phone"},
            {"name": "matter", "label": "申请事项说明", "type": "text", "required": False, "profile": None},
        ]
    return [
        {"name": "company_name", "label": "单位名称", "type": "text", "required": True, "profile": "company_name"},
        {"name": "credit_code", "label": "统一社会信用代码", "type": "text", "required": True, "profile": "credit_code"},
        {"name": "agent_name", "label": "经办人姓名", "type": "text", "required": True, "profile": "name"},
        {"name": "agent_phone", "label": "经办人联系电话", "type": "phone", "required": True, "profile": "phone"},
        {"name": "matter", "label": "申请事项说明", "type": "text", "required": False, "profile": None},
    ]


def imported_base(row: Mapping[str, str], department_name: str) -> dict[str, Any]:
    """The base entry (基本目录) of an imported item."""
    item_type, who = row["item_type"], row["audience"]
    levels = row["levels"].split("|")
    statutory = LICENSING_STATUTORY_DAYS
    promised = 1 if row["online_depth"] == "全程网办" else (10 if item_type == "行政许可" else 5)
    return {
        "base_code": row["base_code"], "name": row["name"], "item_type": item_type,
        "department": department_name, "department_code": row["department_code"],
        "level": "county" if "county" in levels else levels[0], "levels": levels,
        "legal_basis": [], "materials": imported_materials(row["name"], item_type, who),
        "statutory_limit_days": statutory, "promised_limit_days": promised, "fee": FEE_UNKNOWN,
        "online_depth": row["online_depth"], "audience": who, "topics": row["topics"].split("|"),
        "high_frequency_rank": None, "instant_approval": False, "produces_license": None,
        "grassroots": "township" in levels, "aliases": [], "form": imported_form(who),
        "parent_item": row.get("parent_item") or None,
        "source_ref": f"{row['source']}#{row['source_item_code']}",
        "situations": [],
    }


# ----------------------------------------------------------------------------------------------- sections

_CONDITIONS = {
    "行政许可": "申请人具备法律、法规规定的申请资格，申请事项依法需要取得行政许可",
    "行政确认": "申请确认的事实或身份关系真实，申请人与之有直接利害关系",
    "行政给付": "申请人属于规定的给付对象，符合给付条件且未重复享受同类待遇",
    "行政裁决": "申请人是与争议有直接利害关系的当事人，争议属于行政裁决的受理范围",
    "行政奖励": "被推荐或申报的对象符合奖励条件，事迹真实",
    "行政备案": "备案事项依法应当备案，备案信息真实、完整",
    "其他行政权力": "申请事项属于实施机关的职权范围，申请人与之有直接利害关系",
    "公共服务": "申请人属于该服务的服务对象",
}


def conditions(service: Any) -> list[str]:
    """办理条件: the type's condition, what the legal basis requires, and complete materials."""
    found = [_CONDITIONS.get(service.item_type, _CONDITIONS["公共服务"])]
    basis = [b for b in (service.legal_basis or []) if b]
    if basis:
        found.append("符合" + "、".join(basis[:3]) + "规定的条件")
    who = "本人或其委托的代理人" if service.audience == "person" else "单位的法定代表人（负责人）或其委托的经办人"
    found.append(f"由{who}提出申请")
    if any(m.get("required", True) for m in service.materials or ()):
        found.append("申请材料齐全、符合法定形式")
    return found


_STEPS = {
    "全程网办": (("网上申请", "在“爱山东”或政务服务网在线填写申请、授权调用电子证照"),
                ("审查", "实施部门在线审查，材料不全的一次性告知补正"),
                ("办结", "在线出具办理结果，电子证照同步进入卡包，纸质结果可选择邮寄")),
    "网上预审": (("网上申请", "在线填写申请并上传材料"),
                ("预审", "实施部门在线预审，材料不全的一次性告知补正"),
                ("窗口核验", "预审通过后携带原件到窗口核验一次"),
                ("审查决定", "实施部门审查并作出决定"),
                ("送达", "窗口领取或邮寄送达办理结果")),
    "只跑一次": (("预约", "在线预约或直接到综合窗口"),
                ("受理", "窗口一次性收取材料并受理"),
                ("审查决定", "实施部门审查并作出决定"),
                ("送达", "邮寄送达办理结果，无需再次到场")),
    "到现场办理": (("受理", "到综合窗口提交申请材料"),
                  ("审查", "实施部门审查，需要现场核查的组织核查"),
                  ("决定", "作出办理决定"),
                  ("领取", "到窗口领取办理结果")),
}


def process(service: Any) -> list[dict]:
    steps = _STEPS.get(service.online_depth, _STEPS["到现场办理"])
    return [{"step": i + 1, "name": name, "description": text} for i, (name, text) in enumerate(steps)]


def limit_note(service: Any) -> str | None:
    if service.legal_basis:
        return None
    return LIMIT_NOTE["行政许可"] if service.item_type == "行政许可" else LIMIT_NOTE["default"]
