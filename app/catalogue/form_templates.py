"""Downloadable application forms of the high-frequency items: a blank form and a filled sample (PDF, fpdf2).

The form is the service's own: its fields (labels, options) and materials, with the item name, hall,
department and limits in the header. The sample fills every field with an obviously fictitious value
(样例, the published test ID number of GB 11643) so nobody mistakes it for a real application.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import NotFound
from .models import Service

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
KINDS = ("blank", "sample")
SAMPLE_VALUES = {
    "text": "（样例）张三", "number": "1", "date": "2026-01-01", "id_number": "11010519491231002X",
    "phone": "13800000000",
}
SAMPLE_BY_NAME = {
    "company_name": "（样例）济南某某科技有限公司", "credit_code": "91110000600037341L", "address": "山东省济南市历下区泉城路1号",
    "mail_address": "山东省济南市历下区泉城路1号", "business_premises": "山东省济南市历下区泉城路1号",
}


@lru_cache(maxsize=1)
def _font_available() -> bool:
    return FONT_PATH.is_file()


def _value(field: dict) -> str:
    if field["name"] in SAMPLE_BY_NAME:
        return SAMPLE_BY_NAME[field["name"]]
    if field.get("type") == "select" and field.get("options"):
        return field["options"][0]
    return SAMPLE_VALUES.get(field.get("type"), "（样例）")


def render(service: Service, kind: str) -> bytes:
    """The PDF of the blank form or the filled sample of a high-frequency service (404 otherwise)."""
    if kind not in KINDS:
        raise NotFound(f"表单模板 {kind} 不存在（可选 blank、sample）")
    if service.high_frequency_rank is None:
        raise NotFound(f"事项 {service.code} 不是高频事项，没有可下载的申请表")
    if not _font_available():
        raise NotFound("服务器缺少中文字体，暂不能生成申请表")
    from fpdf import FPDF  # fpdf2 (and numpy, fontTools) only when a form is rendered
    pdf = FPDF(format="A4")
    pdf.set_title(f"{service.name}申请表")
    pdf.set_creator("爱山东 政务服务")
    pdf.add_font("wqy", fname=str(FONT_PATH))
    pdf.add_page()
    pdf.set_font("wqy", size=16)
    title = f"{service.name}申请表" + ("（填写样例）" if kind == "sample" else "")
    pdf.cell(0, 12, title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("wqy", size=9)
    pdf.multi_cell(0, 5, f"事项编码：{service.code}　实施部门：{service.department}　办理大厅：{service.hall_name}\n"
                         f"法定办结时限：{service.statutory_limit_days}个工作日　承诺办结时限："
                         f"{service.promised_limit_days}个工作日　咨询电话：{service.phone}",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("wqy", size=11)
    with pdf.table(col_widths=(45, 135), line_height=8, text_align=("LEFT", "LEFT"),
                   first_row_as_headings=False) as table:
        for field in service.form or ():
            row = table.row()
            label = field["label"] + ("（必填）" if field.get("required") else "")
            if field.get("type") == "select":
                label += "\n" + "／".join(field.get("options") or ())
            row.cell(label)
            row.cell(_value(field) if kind == "sample" else "")
    pdf.ln(4)
    pdf.cell(0, 8, "申请材料", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("wqy", size=10)
    for number, material in enumerate(service.materials or (), start=1):
        notes = ["必交" if material.get("required", True) else "选交"]
        if material.get("license_type_code"):
            notes.append("可授权调用电子证照")
        if material.get("commitment_allowed"):
            notes.append("可告知承诺")
        mark = "[√] " if kind == "sample" else "[  ] "
        pdf.multi_cell(0, 6, f"{mark}{number}. {material['name']}（{'，'.join(notes)}）", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("wqy", size=11)
    signature = "申请人（签字）：（样例）张三　　日期：2026年1月1日" if kind == "sample" else "申请人（签字）：____________　　日期：____年__月__日"
    pdf.cell(0, 8, "本人承诺所填信息和所交材料真实、有效。", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, signature, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
