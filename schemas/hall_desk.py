"""Schemas of the hall desk (一窗受理, 帮办代办, 受审分离, 全省通办): window intake, assisted applications
and their confirmation, the department queue, the pickup window."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.applications.assisted_models import CONTACTS, STATUS_LABELS, STATUSES
from app.applications.forms import mask_value, material_kind, service_spec
from app.applications.models import STATUSES as APPLICATION_STATUSES
from app.applications.routing import staff_card
from app.applications.window import IDENTITY_CHECK_LABELS, IDENTITY_CHECKS, WINDOW_FIELDS
from app.timeutil import isoformat_z

from .applications import ApplicationCreateSchema, MaterialEntrySchema
from .common import PageArgsSchema, PageSchema, StrictSchema, messages, printable

HALL_CODE = validate.Regexp(r"^\d{6}$", error="大厅编码应为6位数字")


def identity_check_field(**kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf(IDENTITY_CHECKS, error="identity_check 应为 "
                                                 + "、".join(IDENTITY_CHECKS) + " 之一"),
                         error_messages=messages("身份核验方式"),
                         metadata={"enum": list(IDENTITY_CHECKS), "description": "窗口如何核验申请人身份："
                                   + "；".join(f"{k} {v}" for k, v in IDENTITY_CHECK_LABELS.items())}, **kwargs)


class ApplicantSchema(StrictSchema):
    id_number = fields.String(required=True, validate=validate.Length(min=15, max=18, error="身份证号码应为15或18位"),
                              error_messages=messages("申请人身份证号码"), metadata={"example": "370102198503151238"})
    name = fields.String(required=True, validate=[validate.Length(min=1, max=64), printable],
                         error_messages=messages("申请人姓名"), metadata={"example": "张三"})


class _TakenIn(StrictSchema):
    """Fields staff add when they submit for someone (`applicant`) at a hall."""

    applicant = fields.Nested(ApplicantSchema, metadata={"description": "工作人员代为提交时：申请人（须与人口库一致）"})
    responsible_hall = fields.String(validate=HALL_CODE, metadata={
        "description": "全省通办：办理大厅（如申请人户籍所在地）；缺省为 service_code 所属大厅"})
    accepting_hall = fields.String(validate=HALL_CODE, metadata={
        "description": "受理大厅（工作人员在多个大厅任职时指明）"})


class WindowApplicationCreateSchema(ApplicationCreateSchema, _TakenIn):
    """POST /applications: the applicant's own request, or hall staff's with `applicant` (一窗受理)."""

    identity_check = identity_check_field()

    @validates_schema
    def _window_fields(self, data, **_kwargs):
        if "applicant" in data:
            if "identity_check" not in data:
                raise ValidationError("窗口代为提交时须说明如何核验申请人身份", field_name="identity_check")
            return
        extra = [name for name in WINDOW_FIELDS if name in data]
        if extra:
            raise ValidationError({name: ["仅在工作人员代申请人提交（applicant）时使用"] for name in extra})


class AssistedApplicationCreateSchema(ApplicationCreateSchema, _TakenIn):
    applicant = fields.Nested(ApplicantSchema, required=True, error_messages=messages("申请人"))
    contact = fields.String(required=True, validate=validate.OneOf(CONTACTS, error="contact 应为 phone 或 desk"),
                            error_messages=messages("帮办方式"),
                            metadata={"enum": list(CONTACTS), "description": "phone 电话帮办；desk 窗口当面帮办"})


class ConfirmationSchema(StrictSchema):
    materials = fields.List(fields.Nested(MaterialEntrySchema), load_default=list,
                            validate=validate.Length(max=50, error="材料最多 {max} 项"), error_messages=messages("材料"),
                            metadata={"description": "可选：从本人卡包提供的证照等材料，替换帮办人填写的同名材料",
                                      "example": [{"name": "居民身份证", "license_id": "lic_0123456789abcdef0123"}]})


class HandoverSchema(StrictSchema):
    identity_check = identity_check_field(required=True)
    comment = fields.String(validate=[validate.Length(max=500), printable], allow_none=True)


class DepartmentQueueArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(APPLICATION_STATUSES, error="status 不正确"),
                           metadata={"description": "缺省为 accepted（已受理、待部门审批）"})


class AssistedListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES, error="status 不正确"), metadata={"enum": list(STATUSES)})


class AssistedApplicationSchema(Schema):
    """An assisted application as its applicant (or the helper's hall) sees it before it is submitted."""

    application_id = fields.String()
    status = fields.Function(lambda d: d.state, metadata={"type": "string", "enum": list(STATUSES)})
    status_label = fields.Function(lambda d: STATUS_LABELS[d.state], metadata={"type": "string"})
    service_code = fields.String()
    service_name = fields.String()
    hall_code = fields.String(metadata={"description": "帮办人所在大厅"})
    contact = fields.String(metadata={"enum": list(CONTACTS)})
    helper = fields.Method("_helper", metadata={"type": "object", "nullable": True})
    form = fields.Method("_form", metadata={"type": "object", "description": "帮办人填写的表单（身份证号码、手机号码脱敏）"})
    materials = fields.Method("_materials", metadata={"type": "array", "items": {"type": "object"}})
    created_at = fields.Function(lambda d: isoformat_z(d.created_at), metadata={"type": "string", "format": "date-time"})
    expires_at = fields.Function(lambda d: isoformat_z(d.expires_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    decided_at = fields.Function(lambda d: isoformat_z(d.decided_at), metadata={"type": "string", "format": "date-time", "nullable": True})

    def _helper(self, draft):
        return staff_card(draft.helper_id, draft.hall_code)

    def _form(self, draft):
        types = {f.name: f.type for f in service_spec(draft.service_code).fields}
        return {name: mask_value(types.get(name), value) for name, value in draft.request["form"].items()}

    def _materials(self, draft):
        return [{"name": entry["name"], "kind": material_kind(entry)} for entry in draft.request["materials"]]


class AssistedApplicationPageSchema(PageSchema):
    items = fields.List(fields.Nested(AssistedApplicationSchema))
