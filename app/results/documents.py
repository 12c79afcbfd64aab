"""Decision documents: a Chinese PDF (fpdf2 with a CJK font the system provides), sealed by the
issuing department with a PAdES signature (pyHanko), stored encrypted as a file."""
from __future__ import annotations

import io
import os
import secrets
from datetime import datetime

from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..files.models import StoredFile
from ..files.service import store_document
from ..timeutil import BEIJING, as_aware, utcnow
from .models import DecisionDocument
from .seals import signer_for

if TYPE_CHECKING:  # fpdf2 and pyHanko are imported by what renders or seals a document
    from fpdf import FPDF

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
TITLES = {"approved": "准予办理决定书", "rejected": "不予办理决定书", "revoked": "撤销决定书"}
CONCLUSIONS = {
    "approved": "经审查，你（单位）提出的申请符合法定条件和标准，决定准予办理。",
    "rejected": "经审查，你（单位）提出的申请不符合法定条件和标准，决定不予办理。",
    "revoked": "经抽查核实，你（单位）作出的承诺与事实不符，决定撤销原办理结果。",
}
SEAL_RED = (200, 16, 46)


class FontMissing(RuntimeError):
    """No CJK font is installed, so no Chinese document can be produced."""


def cjk_font() -> str:
    """The first installed CJK font (DOCUMENT_FONT overrides), or a clear error naming what to install."""
    configured = current_app.config.get("DOCUMENT_FONT")
    for path in ((configured,) if configured else ()) + FONT_CANDIDATES:
        if path and os.path.isfile(path):
            return path
    raise FontMissing("找不到中文字体，无法生成决定书：请安装 Debian 软件包 fonts-wqy-microhei（或 fonts-noto-cjk），"
                      "或用 DOCUMENT_FONT 指定一个 TTF/TTC 字体文件")


def _beijing_date(moment: datetime) -> str:
    local = as_aware(moment).astimezone(BEIJING)
    return f"{local.year}年{local.month}月{local.day}日"


def render_decision(*, document_id: str, application_id: str, department: str, applicant_name: str,
                    service_name: str, decision: str, decided_at: datetime, comment: str | None = None) -> bytes:
    """The unsigned decision PDF (A4, Chinese text, the department's seal drawn beside its name)."""
    from fpdf import FPDF
    pdf = FPDF(format="A4")
    pdf.set_title(TITLES[decision])
    pdf.set_author(department)
    pdf.add_font("cjk", fname=cjk_font())
    pdf.add_page()
    pdf.set_font("cjk", size=22)
    pdf.cell(0, 22, TITLES[decision], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=11)
    pdf.cell(0, 8, f"文书编号：{document_id}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("cjk", size=14)
    for label, value in (("申请人", applicant_name), ("办理事项", service_name), ("办件编号", application_id)):
        pdf.multi_cell(0, 10, f"{label}：{value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.multi_cell(0, 10, CONCLUSIONS[decision], new_x="LMARGIN", new_y="NEXT")
    if comment:
        pdf.multi_cell(0, 10, f"说明：{comment}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(16)
    top = pdf.get_y()
    pdf.cell(0, 10, department, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 10, _beijing_date(decided_at), align="R", new_x="LMARGIN", new_y="NEXT")
    _draw_seal(pdf, department, centre=(pdf.w - pdf.r_margin - 28, top + 10))
    pdf.set_y(pdf.h - 32)
    pdf.set_font("cjk", size=9)
    pdf.multi_cell(0, 5, "本决定书已加盖办理部门的电子印章（PAdES 数字签名）。可将本文件提交至 "
                         "POST /api/v1/seal-verifications 验证，或以 GET /api/v1/seals/ca 公布的根证书离线验证。")
    return bytes(pdf.output())


def _draw_seal(pdf: FPDF, department: str, *, centre: tuple[float, float]) -> None:
    """The visible seal: a red ring, a star and the department's name (the signature is what counts)."""
    x, y = centre
    with pdf.local_context(draw_color=SEAL_RED, text_color=SEAL_RED, line_width=1.2):
        pdf.circle(x=x, y=y, radius=20, style="D")
        pdf.set_font("cjk", size=16)
        pdf.text(x - 2.8, y + 2.5, "★")
        pdf.set_font("cjk", size=8 if len(department) <= 10 else 6)
        width = pdf.get_string_width(department)
        pdf.text(x - width / 2, y - 8, department)
        pdf.set_font("cjk", size=7)
        pdf.text(x - pdf.get_string_width("电子印章") / 2, y + 12, "电子印章")


def _timestamper():
    url = current_app.config.get("SEAL_TSA_URL")
    if not url:
        return None
    if not current_app.config.get("SEAL_TSA_ROOTS"):
        raise RuntimeError("配置了 SEAL_TSA_URL 时必须同时配置 SEAL_TSA_ROOTS（时间戳服务的根证书 PEM 文件），"
                           "否则加盖时间戳的文书无法通过验证")
    from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
    return RequestsHTTPTimeStamper(url, timeout=10)


def seal_pdf(pdf: bytes, *, department: str, reason: str):
    """`pdf` certified by the department's seal (PAdES baseline: B-B, B-T with a timestamp);
    returns (sealed bytes, the seal certificate row, whether it carries a timestamp)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    timestamper = _timestamper()
    signer, seal = signer_for(department)
    metadata = signers.PdfSignatureMetadata(
        field_name="DepartmentSeal", subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256",
        certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES, reason=reason, location="山东省",
        name=department)
    output = signers.PdfSigner(metadata, signer, timestamper=timestamper).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)))
    return output.getvalue(), seal, timestamper is not None


def issue_decision(*, application_id: str, applicant_subject_id: str, department: str, applicant_name: str,
                   service_name: str, decision: str, decided_at: datetime,
                   comment: str | None = None) -> DecisionDocument:
    """Render, seal and store the decision for an application (commits; once per application and
    decision: calling it again returns the first document). Call it after the decision itself is
    committed, inline or as a job: it takes about half a second (font and signature)."""
    if decision not in TITLES:
        raise ValueError(f"unknown decision {decision!r}")
    existing = decision_for(application_id, decision)
    if existing is not None:
        return existing
    document_id = f"d_{secrets.token_hex(10)}"
    unsigned = render_decision(document_id=document_id, application_id=application_id, department=department,
                               applicant_name=applicant_name, service_name=service_name, decision=decision,
                               decided_at=decided_at, comment=comment)
    sealed, seal, timestamped = seal_pdf(unsigned, department=department, reason=TITLES[decision])
    stored = store_document(owner_subject_id=applicant_subject_id, name=f"{TITLES[decision]}-{application_id}.pdf",
                            content_type="application/pdf", data=sealed, attached_to=f"application:{application_id}")
    row = DecisionDocument(id=document_id, application_id=application_id, decision=decision, department=department,
                           file_id=stored.id, sha256=stored.sha256, seal_serial=seal.serial,
                           timestamped=timestamped, signed_at=utcnow())
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # issued concurrently: theirs stands; our copy goes (its blob is then collected)
        db.session.rollback()
        db.session.execute(delete(StoredFile).where(StoredFile.id == stored.id))
        db.session.commit()
        return decision_for(application_id, decision)
    return row


def decision_for(application_id: str, decision: str = "approved") -> DecisionDocument | None:
    """The application's decision document of that kind, if one was issued."""
    return db.session.scalars(select(DecisionDocument).where(
        DecisionDocument.application_id == application_id, DecisionDocument.decision == decision)).first()
