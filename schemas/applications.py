"""Schemas of the applications domain (办件): forms, submissions, bundles, transitions, lists.

Inputs reject unknown fields. Outputs mask the values of `id_number` and `phone` form fields
and ID / phone numbers among a license's verified fields, unless the holder asked for the
full values (`reveal`); the masking happens here, from the plaintext the service hands over.
"""
from __future__ import annotations

from datetime import date

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.applications.forms import mask_value
from app.applications.models import (COMMITMENT, FILE, LICENSE, MISSING, PRODUCED, REVIEW_LABELS, RUNNING_STATUSES,
                                     STATUS_LABELS, STATUSES)
from app.applications.outcomes import result_of
from app.applications.window import CHANNELS, intake_of
from app.observability import mask_pii
from app.security.pii import mask_id_number, mask_phone
from app.timeutil import beijing_today, isoformat_z

from .common import PageArgsSchema, PageSchema, StrictSchema, messages, printable

ACTIONS = ("accept", "approve", "reject", "request_more", "dispatch")
FILE_ID = r"^f_[0-9a-f]{20}$"
MATERIAL_NAME = [validate.Length(min=1, max=200), printable]
# what a timeline event's data may show (it never holds personal data)
EVENT_DETAILS = ("round", "materials", "material", "review", "tracking_number", "delivery", "license_id",
                 "changed_fields", "outcome", "overdue",
                 # hall desk (app/applications/window.py, routing.py, crossregion.py)
                 "channel", "identity_check", "staff", "contact", "from_hall", "to_hall", "department", "pickup_hall")
SENSITIVE_LICENSE_FIELDS = {"id_number": mask_id_number, "phone": mask_phone}


# ---- requests


class MaterialEntrySchema(StrictSchema):
    """One material: exactly one of `license_id` (免证办: a license from the caller's wallet),
    `file_id` (a file the caller uploaded with POST /files), `commitment: true` (告知承诺) or
    `missing: true` (容缺, non-core materials only)."""

    name = fields.String(required=True, validate=MATERIAL_NAME, error_messages=messages("材料名称"),
                         metadata={"example": "居民身份证"})
    license_id = fields.String(validate=[validate.Length(min=1, max=60), printable],
                               error_messages=messages("证照编号"),
                               metadata={"example": "lic_0123456789abcdef0123"})
    file_id = fields.String(validate=validate.Regexp(FILE_ID, error="文件编号格式不正确（应为上传文件时返回的 file_id）"),
                            error_messages=messages("文件编号"),
                            metadata={"description": "POST /files 返回的 file_id（本人上传的文件）",
                                      "example": "f_3c9d0e5b7a1f2e4d6c8b"})
    commitment = fields.Boolean(error_messages=messages("告知承诺"))
    missing = fields.Boolean(error_messages=messages("容缺"))

    @pre_load
    def _no_free_text(self, data, **_kwargs):
        if isinstance(data, dict) and "attachment" in data:
            name = data.get("name") if isinstance(data.get("name"), str) else ""
            raise ValidationError(f"不再接受文字附件：请先上传材料「{name}」的文件（POST /api/v1/files），"
                                  "再以 file_id 提交", field_name="attachment")
        return data

    @validates_schema
    def _exactly_one(self, data, **_kwargs):
        chosen = [key for key in ("license_id", "file_id") if data.get(key)]
        chosen += [key for key in ("commitment", "missing") if data.get(key) is True]
        if any(data.get(key) is False for key in ("commitment", "missing")):
            raise ValidationError("commitment / missing 只能为 true", field_name="_schema")
        if len(chosen) != 1:
            raise ValidationError(f"材料「{data.get('name', '')}」须且只能选择一种方式：license_id、file_id、"
                                  "commitment 或 missing", field_name="_schema")


_FORM = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)), values=fields.Raw(allow_none=True),
                    load_default=dict, error_messages=messages("表单", invalid="表单应为 JSON 对象"),
                    metadata={"description": "字段名 -> 值（见 GET /services/{code}/form）",
                              "example": {"name": "张三", "id_number": "370102********8819",
                                          "phone": "138****5678", "address": "济南市历下区泺源大街1号",
                                          "residence_start": "2024-03-01", "residence_reason": "就业"}})
_MATERIALS = fields.List(fields.Nested(MaterialEntrySchema), load_default=list,
                         validate=validate.Length(max=50, error="材料最多 {max} 项"),
                         error_messages=messages("材料"),
                         metadata={"example": [{"name": "居民身份证", "license_id": "lic_0123456789abcdef0123"},
                                               {"name": "居住证明", "commitment": True}]})


class ApplicationCreateSchema(StrictSchema):
    service_code = fields.String(required=True, validate=[validate.Length(min=1, max=60), printable],
                                 error_messages=messages("事项编码"), metadata={"example": "370102-000705015000"})
    form = _FORM
    materials = _MATERIALS


class BundleApplicationCreateSchema(StrictSchema):
    hall_code = fields.String(validate=validate.Regexp(r"^\d{6}$", error="大厅编码应为6位数字"),
                              metadata={"description": "办理大厅（市或县级）；缺省为申请人证件所属城市",
                                        "example": "370102"})
    form = _FORM
    materials = _MATERIALS


class ResubmitSchema(StrictSchema):
    form = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)), values=fields.Raw(allow_none=True),
                       load_default=dict, metadata={"description": "要修改的字段（null 清除该字段）"})
    materials = _MATERIALS


class TransitionSchema(StrictSchema):
    action = fields.String(required=True,
                           validate=validate.OneOf(ACTIONS, error="action 应为 " + "、".join(ACTIONS) + " 之一"),
                           error_messages=messages("操作"), metadata={"enum": list(ACTIONS)})
    comment = fields.String(validate=[validate.Length(max=1000, error="意见最多 {max} 个字符"), printable],
                            allow_none=True,
                            metadata={"description": "办理意见；不予办理和要求补正时必填"})
    materials = fields.List(fields.String(validate=MATERIAL_NAME), validate=validate.Length(min=1, max=50),
                            error_messages=messages("材料"),
                            metadata={"description": "request_more：需要申请人重新提供的材料名称（缺省为审核不通过的材料）"})
    license_fields = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=60)),
                                 values=fields.Raw(), validate=validate.Length(max=30),
                                 error_messages=messages("证照字段", invalid="证照字段应为 JSON 对象"),
                                 metadata={"description": "approve：只有部门业务系统才知道的证照字段（如累计缴费月数），"
                                                          "由工作人员填写"})
    tracking_number = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]{6,40}$",
                                                             error="邮件单号应为 6 至 40 位字母、数字或连字符"),
                                    metadata={"description": "dispatch：邮政寄递的邮件单号（窗口领取不填）"})
    version = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "可选：客户端看到的办件版本号，与当前版本不符时返回 409"})


class MaterialReviewSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("accepted", "rejected"),
                                                                     error="decision 应为 accepted 或 rejected"),
                             error_messages=messages("审核结论"), metadata={"enum": ["accepted", "rejected"]})
    reason = fields.String(validate=[validate.Length(max=500, error="理由最多 {max} 个字符"), printable],
                           allow_none=True, metadata={"description": "审核不通过的理由（必填）"})
    version = fields.Integer(strict=True, validate=validate.Range(min=1))


class SpotCheckSampleSchema(StrictSchema):
    count = fields.Integer(load_default=10, strict=True,
                           validate=validate.Range(min=1, max=100, error="应介于 {min} 和 {max} 之间"),
                           metadata={"description": "抽取的办件数"})


class SpotCheckSchema(StrictSchema):
    outcome = fields.String(required=True, validate=validate.OneOf(("passed", "breach"),
                                                                   error="outcome 应为 passed 或 breach"),
                            error_messages=messages("抽查结论"), metadata={"enum": ["passed", "breach"]})
    comment = fields.String(validate=[validate.Length(max=1000), printable], allow_none=True,
                            metadata={"description": "核查情况（承诺不实时必填）"})
    materials = fields.List(fields.String(validate=MATERIAL_NAME), validate=validate.Length(max=50),
                            metadata={"description": "breach：承诺不实的材料名称"})


class RevealArgsSchema(StrictSchema):
    reveal = fields.Boolean(load_default=False, metadata={
        "description": "为 true 时向本人返回完整的身份证号码和手机号码（记入审计）"})


class BundleFormArgsSchema(RevealArgsSchema):
    hall_code = fields.String(validate=validate.Regexp(r"^\d{6}$", error="大厅编码应为6位数字"))


class ApplicationListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES, error="status 应为 " + "、".join(STATUSES) + " 之一"))


class HallApplicationsArgsSchema(ApplicationListArgsSchema):
    overdue = fields.Boolean(load_default=False, metadata={"description": "只看已超期（办理时限已过且仍在办理中）"})
    due_within_days = fields.Integer(validate=validate.Range(min=0, max=365, error="应介于 {min} 和 {max} 之间"),
                                     metadata={"description": "只看今后 N 个工作日内到期的在办件"})


# ---- responses


class FormFieldSchema(Schema):
    name = fields.String()
    label = fields.String()
    type = fields.String(metadata={"enum": ["text", "number", "date", "select", "id_number", "phone"]})
    required = fields.Boolean()
    options = fields.List(fields.String())
    prefill = fields.Raw(allow_none=True, metadata={"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "description": "预填值；身份证号码和手机号码默认脱敏，原样提交即可"})
    prefill_source = fields.String(allow_none=True, metadata={"enum": ["profile", "history", "wallet", None]})


class FormMaterialSchema(Schema):
    name = fields.String()
    required = fields.Boolean()
    license_type_code = fields.String(allow_none=True)
    commitment_allowed = fields.Boolean()
    missing_allowed = fields.Boolean(metadata={"description": "非核心材料可容缺后补"})
    satisfied_by = fields.Raw(allow_none=True, metadata={"anyOf": [{"type": "object"}, {"type": "string"}], 
        "description": "`{\"license_id\"}`（卡包中可用的证照）、`\"commitment\"`（可告知承诺）或 null"})


class ServiceFormSchema(Schema):
    service_code = fields.String()
    service_name = fields.String()
    hall_code = fields.String()
    audience = fields.String()
    fields_ = fields.List(fields.Nested(FormFieldSchema), data_key="fields", attribute="fields")
    materials = fields.List(fields.Nested(FormMaterialSchema))
    instant_approval = fields.Boolean()
    promised_limit_days = fields.Integer()
    several_allowed = fields.Boolean(metadata={"description": "是否允许同时有多件在办申请"})


class BundleMemberSchema(Schema):
    service_code = fields.String()
    service_name = fields.String()
    hall_code = fields.String()


class BundleFormSchema(Schema):
    bundle_code = fields.String()
    bundle_name = fields.String()
    audience = fields.String()
    hall_code = fields.String(allow_none=True)
    fields_ = fields.List(fields.Nested(FormFieldSchema), data_key="fields", attribute="fields")
    materials = fields.List(fields.Nested(FormMaterialSchema))
    instant_approval = fields.Boolean()
    members = fields.List(fields.Nested(BundleMemberSchema))


def _overdue(app) -> bool:
    return bool(app.deadline and app.status in RUNNING_STATUSES and app.deadline < beijing_today())


def _iso(value):
    return value.isoformat() if isinstance(value, date) else None


class TimelineEventSchema(Schema):
    at = fields.Function(lambda e: isoformat_z(e.at), metadata={"type": "string", "format": "date-time"})
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    actor_role = fields.String(metadata={"enum": ["applicant", "staff", "system"]})
    comment = fields.String(allow_none=True)
    details = fields.Function(lambda e: {k: v for k, v in (e.data or {}).items() if k in EVENT_DETAILS},
                              metadata={"type": "object", "description": "轮次（round）、要求补正或补交的材料、审核结论、邮件单号等"})
    shown_by = fields.Function(lambda e: (e.data or {}).get("shown_by"), metadata={"type": "object", "nullable": True, 
        "description": "亲友代办时的代办人（role、subject_id、name_masked），本人办理时为 null"})


class ApplicationSummarySchema(Schema):
    """One line of a list (the caller's applications, a hall's work list)."""

    application_id = fields.String()
    service_code = fields.String(allow_none=True)
    service_name = fields.String()
    hall_code = fields.String()
    bundle_code = fields.String(allow_none=True)
    parent_application_id = fields.String(allow_none=True)
    applicant_name = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(STATUSES)})
    status_label = fields.Function(lambda a: STATUS_LABELS.get(a.status), metadata={"type": "string", "nullable": True})
    deadline = fields.Function(lambda a: _iso(a.deadline), metadata={"type": "string", "format": "date", "nullable": True})
    overdue = fields.Function(_overdue, metadata={"type": "boolean"})
    submitted_at = fields.Function(lambda a: isoformat_z(a.submitted_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    updated_at = fields.Function(lambda a: isoformat_z(a.updated_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    completed_at = fields.Function(lambda a: isoformat_z(a.completed_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    version = fields.Integer()
    channel = fields.String(metadata={"enum": list(CHANNELS)})
    department = fields.String(allow_none=True)
    accepting_hall_code = fields.String(allow_none=True)
    pickup_status = fields.String(allow_none=True, metadata={"enum": ["ready", "handed_over", None]})


class ApplicationSchema(Schema):
    """One application in full, from an ApplicationView (application, viewer, reveal, children)."""

    application_id = fields.String(attribute="application.application_id",
                                   metadata={"example": "ap_3f9c2a7b1e4d5c6a8b90"})
    service_code = fields.String(attribute="application.service_code", allow_none=True)
    service_name = fields.String(attribute="application.service_name")
    department = fields.String(attribute="application.department", allow_none=True)
    hall_code = fields.String(attribute="application.hall_code")
    bundle_code = fields.String(attribute="application.bundle_code", allow_none=True)
    parent_application_id = fields.Method("_parent_id", metadata={"type": "string", "nullable": True})
    applicant = fields.Method("_applicant", metadata={"type": "object"})
    status = fields.String(attribute="application.status", metadata={"enum": list(STATUSES)})
    status_label = fields.Method("_status_label", metadata={"type": "string", "nullable": True})
    instant_approval = fields.Boolean(attribute="application.instant")
    deadline = fields.Method("_deadline", metadata={"type": "string", "format": "date", "nullable": True, "description": "承诺办结日期（工作日，含法定节假日与调休）"})
    overdue = fields.Method("_overdue", metadata={"type": "boolean"})
    submitted_at = fields.Method("_submitted_at", metadata={"type": "string", "format": "date-time", "nullable": True})
    updated_at = fields.Method("_updated_at", metadata={"type": "string", "format": "date-time", "nullable": True})
    completed_at = fields.Method("_completed_at", metadata={"type": "string", "format": "date-time", "nullable": True})
    version = fields.Integer(attribute="application.version")
    round = fields.Integer(attribute="application.round", metadata={"description": "提交轮次（补正一次加一）"})
    spot_check = fields.String(attribute="application.spot_check", allow_none=True,
                               metadata={"enum": ["selected", "passed", "breach", None]})
    channel = fields.String(attribute="application.channel", metadata={
        "enum": list(CHANNELS), "description": "online 本人在线申请；window 窗口一窗受理；assisted 帮办代办"})
    intake = fields.Function(lambda view: intake_of(view.application), metadata={"type": "object", "nullable": True, 
        "description": "窗口受理或帮办：工作人员（staff）、身份核验方式、帮办方式、确认时间；本人在线申请为 null"})
    accepting_hall_code = fields.String(attribute="application.accepting_hall_code", allow_none=True, metadata={
        "description": "全省通办：收件的受理大厅（办理大厅为 hall_code）；办理结果在此领取"})
    pickup_status = fields.String(attribute="application.pickup_status", allow_none=True, metadata={
        "enum": ["ready", "handed_over", None], "description": "窗口领取的办理结果：ready 待领取，handed_over 已领取"})
    form = fields.Method("_form", metadata={"type": "object"})
    materials = fields.Method("_materials", metadata={"type": "array", "items": {"type": "object"}})
    issued_license = fields.Method("_issued_license", metadata={"type": "object", "nullable": True})
    result = fields.Method("_result", metadata={"type": "object", "nullable": True, "description": "办结后：决定书（加盖电子印章的 PDF）地址、"
                                                               "签发的证照、领取或寄递情况"})
    timeline = fields.Method("_timeline", metadata={"type": "array", "items": {"type": "object"}})
    children = fields.Method("_children", metadata={"type": "array", "items": {"type": "object"}, "nullable": True})

    def _parent_id(self, view):
        return view.application.parent_application_id

    def _applicant(self, view):
        app = view.application
        return {"subject_id": app.subject_id, "subject_type": app.subject_type, "name": app.applicant_name}

    def _status_label(self, view):
        return STATUS_LABELS.get(view.application.status)

    def _deadline(self, view):
        return _iso(view.application.deadline)

    def _overdue(self, view):
        return _overdue(view.application)

    def _submitted_at(self, view):
        return isoformat_z(view.application.submitted_at)

    def _updated_at(self, view):
        return isoformat_z(view.application.updated_at)

    def _completed_at(self, view):
        return isoformat_z(view.application.completed_at)

    def _form(self, view):
        app = view.application
        values = app.form
        if view.reveal:
            return values
        types = app.form_types or {}
        return {name: mask_value(types.get(name), value) for name, value in values.items()}

    @staticmethod
    def _verified(values: dict, reveal: bool) -> dict:
        if reveal:
            return values
        out = {}
        for name, value in values.items():
            masker = SENSITIVE_LICENSE_FIELDS.get(name)
            if isinstance(value, str):
                value = masker(value) if masker else mask_pii(value)
            out[name] = value
        return out

    def _materials(self, view):
        items = []
        for row in view.application.materials:
            item = {"name": row.name, "required": row.required, "kind": row.kind, "satisfied_by": None,
                    "license": None, "file_id": None, "missing": row.kind == MISSING, "due_date": None,
                    "produced_by": row.produced_by, "round": row.round, "review": row.review,
                    "review_label": REVIEW_LABELS.get(row.review), "review_reason": row.review_reason,
                    "requested": row.requested}
            if row.kind == LICENSE:
                item["satisfied_by"] = {"license_id": row.license_id}
                item["license"] = {"license_id": row.license_id, "license_type": row.license_type,
                                   "identifier": row.license_identifier, "verified": True,
                                   "verified_at": isoformat_z(row.verified_at),
                                   "verified_fields": self._verified(row.verified_fields, view.reveal)}
            elif row.kind == COMMITMENT:
                item["satisfied_by"] = "commitment"
            elif row.kind == FILE:
                item["satisfied_by"], item["file_id"] = {"file_id": row.file_id}, row.file_id
            elif row.kind == PRODUCED:
                item["satisfied_by"] = {"produced_by": row.produced_by}
            else:
                item["due_date"] = _iso(row.due_date)
            items.append(item)
        return items

    def _issued_license(self, view):
        license_id = view.application.issued_license_id
        return {"license_id": license_id} if license_id else None

    def _result(self, view):
        return result_of(view.application)

    def _timeline(self, view):
        return TimelineEventSchema(many=True).dump(view.application.events)

    def _children(self, view):
        if not view.application.is_bundle:
            return None
        return [ApplicationSchema().dump(child) for child in view.children]


class ApplicationPageSchema(PageSchema):
    items = fields.List(fields.Nested(ApplicationSummarySchema))


class SpotCheckSampleResultSchema(Schema):
    items = fields.List(fields.Nested(ApplicationSummarySchema))
