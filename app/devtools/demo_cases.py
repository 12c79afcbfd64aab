"""What `flask seed` makes the demo residents do at the 历下区 hall: the applications (one per state),
the company and its agent, ratings, complaints and a booking. Data only; demo_activity plays it."""
from __future__ import annotations

from dataclasses import dataclass

HALL = "370102"
ZHANG_SAN, WANG_FANG, ZHAO_MIN = "11010519491231002X", "37010219850315123X", "370202199007082343"
FRONT_DESK = "370102199209203451"  # 孙伟, hall staff of 历下区: accepts, reviews and decides
FORM_PHONES = {ZHAO_MIN: "13705320001"}  # residents whose account has no phone give one in the form

ENTERPRISE = ("91370102MA3C123456", "济南泉城商贸有限公司", WANG_FANG)  # credit code, name, representative
AGENT, AGENT_SCOPES, AGENT_DAYS = ZHANG_SAN, ("applications:submit", "applications:read"), 365


@dataclass(frozen=True)
class Case:
    """One demo application: who applies for which service of the hall, with which materials
    (name -> "license" from the wallet, "commitment", "file" uploaded, "missing"), what happens next
    (steps the hall or the applicant take, in order), and the applicant's rating when it ends."""

    key: str
    id_number: str
    base_code: str
    form: dict
    materials: dict
    steps: tuple = ()
    rating: tuple[int, str] | None = None
    label: str = ""

    @property
    def service_code(self) -> str:
        return f"{HALL}-{self.base_code}"


# steps: ("review", material, "accepted" | "rejected", reason), (action, comment) for accept, approve,
# reject, request_more, dispatch (staff), ("withdraw", None) by the applicant
CASES: tuple[Case, ...] = (
    Case("instant", ZHANG_SAN, "000705015000",
         {"address": "济南市历下区泉城路188号", "residence_start": "2024-03-01", "residence_reason": "就业"},
         {"居民身份证": "license", "居住证明": "commitment"},
         rating=(5, "材料自动核验，秒批办结，居住证直接进了卡包"), label="居住证签发 秒批（已办结，已评价）"),
    Case("submitted", ZHANG_SAN, "002007001000", {"query_period": "近三年"}, {"居民身份证": "license"},
         label="出入境记录查询（已提交）"),
    Case("request_more", ZHANG_SAN, "002005001000", {"certified_matter": "户籍信息证明", "purpose": "子女入学"},
         {"居民身份证": "license", "户口簿": "file"},
         steps=(("review", "户口簿", "rejected", "扫描件不清晰，请重新上传户口簿首页和本人页"),
                ("request_more", "请重新提供清晰的户口簿扫描件")),
         label="户籍证明开具（待补正）"),
    Case("approved", WANG_FANG, "002011001000", {"bank_name": "中国银行", "delivery_method": "窗口领取"},
         {"居民身份证": "license"},
         steps=(("accept", "材料齐全，予以受理"), ("approve", "准予办理"), ("dispatch", None)),
         rating=(4, "办理顺利，窗口领取很快"), label="社会保障卡申领（已办结，决定书已签章，卡已入卡包，已评价）"),
    Case("accepted", WANG_FANG, "002011008000",
         {"employer_name": "济南泉城商贸有限公司", "employment_date": "2025-01-02", "employment_form": "单位就业"},
         {"居民身份证": "license"}, steps=(("accept", "材料齐全，予以受理"),), label="就业登记（已受理）"),
    Case("withdrawn", WANG_FANG, "000107002000", {"endorsement_type": "团队旅游", "apply_type": "首次申领"},
         {"居民身份证": "license"}, steps=(("withdraw", None),), label="往来港澳通行证（已撤回）"),
    Case("in_review", ZHAO_MIN, "000705006000",
         {"move_type": "省内迁移", "move_reason": "购房落户", "move_to_address": "济南市历下区泺源大街2号"},
         {"居民身份证": "license", "户口簿": "file", "合法稳定住所证明": "file"},
         steps=(("accept", "予以受理，材料审核中"), ("review", "户口簿", "accepted", None)),
         label="户口迁移（已受理，材料审核中）"),
    Case("rejected", ZHAO_MIN, "002011009000", {"address": "青岛市市南区香港中路10号", "unemployed_since": "2025-03-01"},
         {"居民身份证": "license"},
         steps=(("reject", "经核查，您的就业登记仍为在职状态，不符合失业登记条件"),),
         rating=(2, "不予办理的理由没有提前告知"), label="失业登记（不予办理，差评待整改）"),
)


@dataclass(frozen=True)
class ComplaintCase:
    """A complaint of a demo resident about the hall; `reply` closes it, `rating` rates the handling."""

    id_number: str
    category: str
    content: str
    about_case: str | None = None    # the Case whose application it is about
    about_service: str | None = None  # else a service's base code
    reply: str | None = None
    rating: tuple[int, str] | None = None


COMPLAINTS: tuple[ComplaintCase, ...] = (
    ComplaintCase(ZHAO_MIN, "complaint", "失业登记被退回，不予办理的理由没有说清楚，希望工作人员电话联系说明。",
                  about_case="rejected"),
    ComplaintCase(ZHANG_SAN, "consultation", "居住证签发后，实体卡需要到窗口领取吗？", about_service="000705015000",
                  reply="电子居住证已放入您的卡包，可直接出示使用；如需实体卡，请携带身份证到历下区大厅3号窗口领取。",
                  rating=(5, "答复及时清楚")),
)
APPOINTMENT = (ZHANG_SAN, "002005001000")  # 张三 books a visit to hand in the 户口簿 (补正) in person


def demo_activity_lines() -> list[str]:
    """What each demo resident finds after `flask seed`, one line each (the "try it" block)."""
    names = {ZHANG_SAN: "张三", WANG_FANG: "王芳", ZHAO_MIN: "赵敏"}
    company, agent = f"{ENTERPRISE[1]}（{names[ENTERPRISE[2]]}为法定代表人）", names[AGENT]
    lines = [f"{company}，{agent}为其代办人"]
    for id_number, name in names.items():
        cases = "；".join(case.label for case in CASES if case.id_number == id_number)
        lines.append(f"{name}：{cases}")
    lines.append("诉求：赵敏的投诉待答复，张三的咨询已答复办结并评价；张三已预约到历下区大厅办理户籍证明")
    return lines
