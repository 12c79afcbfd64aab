"""Schemas of the catalogue domain: halls, services (list, detail, create, update), coverage,
topics, bundles and the search arguments.

Inputs reject unknown fields with Chinese messages naming the field. `high_frequency` is
derived here from `high_frequency_rank`; list items are the index's docs in the shape of
`ServiceSchema` (see app/catalogue/index.py `list_item`).
"""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, validate, validates_schema

from app.catalogue.seed_data import license_type_name
from app.timeutil import isoformat_z
from schemas.common import PageArgsSchema, PageSchema, StrictSchema, labelled

ITEM_TYPES = ("行政许可", "行政给付", "行政确认", "行政奖励", "行政裁决", "其他行政权力", "行政备案", "公共服务")
ONLINE_DEPTHS = ("全程网办", "网上预审", "只跑一次", "到现场办理")
AUDIENCES = ("person", "legal")
CHANNELS = ("app", "wechat", "alipay")
FIELD_TYPES = ("text", "number", "date", "select", "id_number", "phone")
HALL_LEVELS = ("province", "city", "county", "township", "village")
LABELS = {
    "code": "事项编码", "base_code": "基本编码", "name": "事项名称", "aliases": "别名", "item_type": "事项类型",
    "department": "实施部门", "legal_basis": "设定依据", "materials": "申请材料",
    "statutory_limit_days": "法定办结时限", "promised_limit_days": "承诺办结时限", "fee": "收费标准",
    "online_depth": "网办深度", "audience": "服务对象", "topics": "主题", "channels": "服务渠道",
    "instant_approval": "即办件", "produces_license": "办理结果证照类型", "address": "办理地点", "form": "表单",
    "status": "状态", "q": "搜索词", "hall": "大厅", "topic": "主题", "channel": "渠道", "city": "城市",
    "high_frequency": "高频事项",
}

SERVICE_EXAMPLE = {
    "code": "370102-000705012000", "base_code": "000705012000", "name": "户口迁移", "hall_code": "370102",
    "hall_name": "济南市历下区", "department": "济南市公安局历下区分局", "audience": "person", "item_type": "行政确认",
    "online_depth": "全程网办", "channels": ["app", "wechat", "alipay"], "high_frequency": True,
    "topics": ["person-household"], "promised_limit_days": 5, "instant_approval": False,
}
MATERIAL_EXAMPLE = {"name": "居民户口簿", "required": True, "license_type_code": "11100000000013100M003",
                    "commitment_allowed": False}


_messages = labelled(LABELS)


def _one_of(choices, label):
    return validate.OneOf(choices, error=f"{label}应为 " + "、".join(choices) + " 之一")


def _length(label, *, min=1, max=200):  # noqa: A002 - marshmallow's own names
    return validate.Length(min=min, max=max, error=f"{label}长度应为 {{min}} 至 {{max}} 个字符")


# ---------------------------------------------------------------------------------------------- halls


class HallNodeSchema(Schema):
    """One hall in the tree, with its children (cities under the province, counties under a city)."""

    code = fields.String(metadata={"example": "370100"})
    name = fields.String(metadata={"example": "济南市"})
    full_name = fields.String(metadata={"example": "济南市"})
    level = fields.String(metadata={"enum": ["province", "city", "county"]})
    parent_code = fields.String(allow_none=True, metadata={"example": "370000"})
    service_count = fields.Integer(metadata={"description": "已发布事项数（按请求渠道计）", "example": 275})
    children = fields.List(fields.Nested(lambda: HallNodeSchema()))


class HallTreeSchema(Schema):
    items = fields.List(fields.Nested(HallNodeSchema))


class HallSchema(Schema):
    """One hall with the number of services it publishes."""

    code = fields.String(metadata={"example": "370102"})
    name = fields.String(metadata={"example": "历下区"})
    full_name = fields.String(metadata={"example": "济南市历下区"})
    level = fields.String(metadata={"enum": list(HALL_LEVELS)})
    parent_code = fields.String(allow_none=True, metadata={"example": "370100"})
    parent_name = fields.String(allow_none=True, metadata={"example": "济南市"})
    address = fields.String(allow_none=True, metadata={"example": "山东省济南市历下区·历下区政务服务中心"})
    service_count = fields.Integer(metadata={"example": 180})
    children = fields.List(fields.Dict(), metadata={
        "description": "下级大厅 [{code, name, level}]", "example": []})


class CoverageSchema(Schema):
    """How complete a hall's list is: at least 200 services and all 50 high-frequency ones."""

    hall_code = fields.String(metadata={"example": "370100"})
    service_count = fields.Integer(metadata={"example": 275})
    high_frequency_present = fields.Integer(metadata={"description": "已上线的高频事项数（共50项）", "example": 50})
    high_frequency_missing = fields.List(fields.String(), metadata={"example": []})
    target_service_count = fields.Integer(metadata={"example": 200})
    meets_target = fields.Boolean(metadata={"example": True})


# ------------------------------------------------------------------------------------------- services


class MaterialSchema(StrictSchema):
    """One application material; `license_type_code` names the e-license that satisfies it."""

    name = fields.String(required=True, validate=_length("材料名称", max=100), error_messages=_messages("name"))
    required = fields.Boolean(load_default=True, error_messages=_messages("required"))
    license_type_code = fields.String(load_default=None, allow_none=True, validate=_length("证照类型编码", max=40))
    commitment_allowed = fields.Boolean(metadata={
        "description": "可以告知承诺代替；不填时沿用基本目录的设定"})
    license_type_name = fields.Function(lambda m: license_type_name(m.get("license_type_code")), dump_only=True,
                                        metadata={"type": "string", "nullable": True, "description": "可代替该材料的电子证照（授权调用后免交纸质材料）",
                                                  "example": "居民户口簿"})


class ServiceFormFieldSchema(StrictSchema):
    """One field of the application form."""

    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$",
                                                                 error="字段名应为小写字母开头的字母、数字或下划线"))
    label = fields.String(required=True, validate=_length("字段标签", max=50))
    type = fields.String(required=True, validate=_one_of(FIELD_TYPES, "字段类型"))
    required = fields.Boolean(load_default=False)
    options = fields.List(fields.String(validate=_length("选项", max=50)), validate=validate.Length(max=50))
    profile = fields.String(load_default=None, allow_none=True, validate=_length("预填来源", max=40),
                            metadata={"description": "从个人资料预填的字段（name、id_number、phone、address）"})

    @validates_schema
    def _select_has_options(self, data, **kwargs):
        if data.get("type") == "select" and not data.get("options"):
            raise ValidationError({"options": ["select 类型的字段必须提供选项"]})


class ServiceSchema(Schema):
    """A service in a list (served from the search index)."""

    code = fields.String(metadata={"example": SERVICE_EXAMPLE["code"]})
    base_code = fields.String(metadata={"example": SERVICE_EXAMPLE["base_code"]})
    name = fields.String(metadata={"example": "户口迁移"})
    hall_code = fields.String(metadata={"example": "370102"})
    hall_name = fields.String(metadata={"example": "济南市历下区"})
    department = fields.String(metadata={"example": "济南市公安局历下区分局"})
    audience = fields.String(metadata={"enum": list(AUDIENCES)})
    item_type = fields.String(metadata={"enum": list(ITEM_TYPES)})
    online_depth = fields.String(metadata={"enum": list(ONLINE_DEPTHS)})
    channels = fields.List(fields.String(metadata={"enum": list(CHANNELS)}))
    high_frequency = fields.Boolean()
    topics = fields.List(fields.String(), metadata={"example": ["person-household"]})
    promised_limit_days = fields.Integer(metadata={"example": 5})
    instant_approval = fields.Boolean()
    hall_count = fields.Integer(allow_none=True, metadata={
        "description": "不指定大厅检索时：提供该事项的大厅数（每个事项只出现一次）；指定大厅时为 null", "example": 153})


class FacetValueSchema(Schema):
    value = fields.String(metadata={"example": "370100"})
    label = fields.String(metadata={"example": "济南市"})
    count = fields.Integer(metadata={"example": 12})


class FacetsSchema(Schema):
    hall = fields.List(fields.Nested(FacetValueSchema))
    audience = fields.List(fields.Nested(FacetValueSchema))
    topic = fields.List(fields.Nested(FacetValueSchema))
    item_type = fields.List(fields.Nested(FacetValueSchema))


class ServiceListSchema(PageSchema):
    """A page of services, best match first with `q`, and facet counts over the whole result."""

    items = fields.List(fields.Nested(ServiceSchema))
    facets = fields.Nested(FacetsSchema)


class SituationSchema(Schema):
    """A handling situation (办理项) of the item with its own materials."""

    code = fields.String(metadata={"example": "expiry"})
    name = fields.String(metadata={"example": "有效期满换领"})
    description = fields.String(allow_none=True)
    materials = fields.List(fields.Nested(MaterialSchema))


class ProcessStepSchema(Schema):
    step = fields.Integer(metadata={"example": 1})
    name = fields.String(metadata={"example": "网上申请"})
    description = fields.String()


class FormTemplatesSchema(Schema):
    blank = fields.String(metadata={"example": "/api/v1/services/370102-000705012000/form-templates/blank"})
    sample = fields.String(metadata={"example": "/api/v1/services/370102-000705012000/form-templates/sample"})


class ServiceDetailSchema(Schema):
    """A service in full (办事指南)."""

    code = fields.String(metadata={"example": SERVICE_EXAMPLE["code"]})
    base_code = fields.String(metadata={"example": SERVICE_EXAMPLE["base_code"]})
    name = fields.String(metadata={"example": "户口迁移"})
    aliases = fields.List(fields.String(), metadata={"example": ["迁户口", "户口迁入"]})
    item_type = fields.String(metadata={"enum": list(ITEM_TYPES)})
    department = fields.String(metadata={"example": "济南市公安局历下区分局"})
    hall_code = fields.String(metadata={"example": "370102"})
    hall_name = fields.String(metadata={"example": "济南市历下区"})
    level = fields.String(metadata={"enum": list(HALL_LEVELS), "description": "实施大厅的层级"})
    legal_basis = fields.List(fields.String(), allow_none=True, metadata={
        "example": ["《中华人民共和国户口登记条例》"], "description": "设定依据；来源未载明时为 null（见 legal_basis_note）"})
    materials = fields.List(fields.Nested(MaterialSchema), metadata={"example": [MATERIAL_EXAMPLE]})
    statutory_limit_days = fields.Integer(metadata={"description": "法定办结时限（工作日）", "example": 20})
    promised_limit_days = fields.Integer(metadata={"description": "承诺办结时限（工作日）", "example": 5})
    fee = fields.String(allow_none=True, metadata={"example": "不收费"})
    online_depth = fields.String(metadata={"enum": list(ONLINE_DEPTHS)})
    channels = fields.List(fields.String(metadata={"enum": list(CHANNELS)}))
    audience = fields.String(metadata={"enum": list(AUDIENCES)})
    topics = fields.List(fields.String(), metadata={"example": ["person-household"]})
    high_frequency = fields.Boolean()
    high_frequency_rank = fields.Integer(allow_none=True, metadata={"example": 7})
    instant_approval = fields.Boolean()
    produces_license = fields.String(allow_none=True, metadata={"description": "办理结果的电子证照类型编码"})
    cross_region = fields.Boolean(metadata={"description": "全省通办：可在省内任一大厅窗口受理，转交本大厅办理"})
    address = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": ["published", "withdrawn"]})
    version = fields.Integer(metadata={"description": "修改时可放入 If-Match 头", "example": 1})
    updated_at = fields.Function(lambda service: isoformat_z(service.updated_at), metadata={"type": "string", "format": "date-time", "nullable": True})
    conditions = fields.List(fields.String(), metadata={"description": "办理条件"})
    process = fields.List(fields.Nested(ProcessStepSchema), metadata={"description": "办理流程"})
    situations = fields.List(fields.Nested(SituationSchema), metadata={
        "description": "办理项（情形），各有自己的申请材料；没有时为空"})
    phone = fields.String(metadata={"description": "咨询电话", "example": "12345"})
    phone_note = fields.String()
    legal_basis_note = fields.String(allow_none=True, metadata={
        "description": "没有设定依据时的说明（legal_basis 为 null）", "example": "来源目录未载明设定依据"})
    limit_note = fields.String(allow_none=True, metadata={"description": "办结时限的依据或说明"})
    guide_note = fields.String(metadata={"description": "办事指南各部分的来源"})
    parent_item = fields.String(allow_none=True, metadata={"description": "来源目录中的主项名称"})
    source_ref = fields.String(allow_none=True, metadata={"description": "导入事项的来源（仓库#事项编码）"})
    form_templates = fields.Method("_form_templates", allow_none=True, metadata={"type": "object", 
        "description": "高频事项的空白申请表与填写样例（PDF）"})

    @staticmethod
    def _form_templates(service):
        if getattr(service, "high_frequency_rank", None) is None:
            return None
        base = f"/api/v1/services/{service.code}/form-templates"
        return {"blank": f"{base}/blank", "sample": f"{base}/sample"}

    @post_dump
    def _no_legal_basis_is_null(self, data, **kwargs):
        if "legal_basis" in data and not data["legal_basis"]:
            data["legal_basis"] = None
        return data


class _ServiceWriteFields(StrictSchema):
    """Fields a hall admin may set; the 四级六同 ones must match the other halls' services."""

    name = fields.String(validate=_length("事项名称", max=200), error_messages=_messages("name"))
    aliases = fields.List(fields.String(validate=_length("别名", max=30)), validate=validate.Length(max=20))
    item_type = fields.String(validate=_one_of(ITEM_TYPES, "事项类型"), error_messages=_messages("item_type"))
    department = fields.String(validate=_length("实施部门", max=100), error_messages=_messages("department"))
    legal_basis = fields.List(fields.String(validate=_length("设定依据", max=300)), validate=validate.Length(max=30))
    materials = fields.List(fields.Nested(MaterialSchema), validate=validate.Length(max=50))
    statutory_limit_days = fields.Integer(strict=True, validate=validate.Range(
        min=0, max=3650, error="法定办结时限应为 {min} 至 {max} 个工作日"), error_messages=_messages(
        "statutory_limit_days"))
    promised_limit_days = fields.Integer(strict=True, validate=validate.Range(
        min=0, max=3650, error="承诺办结时限应为 {min} 至 {max} 个工作日"), error_messages=_messages(
        "promised_limit_days"))
    fee = fields.String(allow_none=True, validate=_length("收费标准", min=0, max=500))
    online_depth = fields.String(validate=_one_of(ONLINE_DEPTHS, "网办深度"))
    audience = fields.String(validate=_one_of(AUDIENCES, "服务对象"))
    topics = fields.List(fields.String(validate=_length("主题编码", max=40)), validate=validate.Length(max=10))
    channels = fields.List(fields.String(validate=_one_of(CHANNELS, "服务渠道")),
                           validate=validate.Length(min=1, max=3, error="至少开放一个服务渠道"))
    instant_approval = fields.Boolean(error_messages=_messages("instant_approval"))
    produces_license = fields.String(allow_none=True, validate=_length("证照类型编码", max=40))
    address = fields.String(allow_none=True, validate=_length("办理地点", min=0, max=255))
    form = fields.List(fields.Nested(ServiceFormFieldSchema), validate=validate.Length(max=60))


class ServiceCreateSchema(_ServiceWriteFields):
    """A new service of a hall. Fields left out are taken from the base item (other halls' services
    of the same `base_code`); `code` is `{hall}-{base_code}` when absent."""

    code = fields.String(validate=validate.Regexp(r"^[0-9A-Za-z][0-9A-Za-z\-]{5,39}$",
                                                  error="事项编码应为6至40位字母、数字或连字符"))
    base_code = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{12}$", error="基本编码应为12位数字"),
                              error_messages=_messages("base_code"))


class ServiceUpdateSchema(_ServiceWriteFields):
    """Changes to a hall's service; `status` "published" re-publishes a withdrawn one."""

    status = fields.String(validate=_one_of(("published", "withdrawn"), "状态"))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("至少需要修改一个字段")


class ServiceQueryArgsSchema(PageArgsSchema):
    """Search and filter arguments of GET /services (unknown arguments are ignored)."""

    class Meta:
        unknown = EXCLUDE

    q = fields.String(validate=validate.Length(max=100, error="搜索词不能超过 {max} 个字符"),
                      metadata={"description": "搜索词：中文、拼音全拼或首字母、别名、口语（如 户口本丢了怎么办、yibao、sfz）",
                                "example": "公积金提取"})
    hall = fields.String(validate=_length("大厅编码", max=12), metadata={"example": "370100"})
    audience = fields.String(validate=_one_of(AUDIENCES, "服务对象"))
    topic = fields.String(validate=_length("主题编码", max=40), metadata={"example": "person-household"})
    item_type = fields.String(validate=_one_of(ITEM_TYPES, "事项类型"))
    channel = fields.String(validate=_one_of(CHANNELS, "渠道"),
                            metadata={"description": "只看开放到该渠道的事项（小程序与第三方客户端始终只看到本渠道的事项）"})
    high_frequency = fields.Boolean(error_messages={"invalid": "high_frequency 应为 true 或 false"})
    instant_approval = fields.Boolean(error_messages={"invalid": "instant_approval 应为 true 或 false"},
                                      metadata={"description": "true：只看秒批（即办）事项"})
    city = fields.String(validate=validate.Regexp(r"^37\d{2}00$", error="city 应为山东省的市级行政区划代码（如 370100）"),
                         metadata={"description": "不指定 hall 时，每个事项取该市（或其县区）大厅的事项", "example": "370100"})


class RevisionSchema(Schema):
    """One entry of a service's change history."""

    version = fields.Integer()
    action = fields.String(metadata={"enum": ["create", "update", "withdraw", "publish"]})
    actor = fields.String(allow_none=True)
    changed_fields = fields.List(fields.String())
    snapshot = fields.Dict()
    created_at = fields.Function(lambda revision: isoformat_z(revision.created_at), metadata={"type": "string", "format": "date-time"})


class RevisionListSchema(Schema):
    items = fields.List(fields.Nested(RevisionSchema))


# ------------------------------------------------------------------------------------- topics, bundles


class TopicSchema(Schema):
    code = fields.String(metadata={"example": "person-birth"})
    name = fields.String(metadata={"example": "出生"})
    audience = fields.String(metadata={"enum": list(AUDIENCES)})


class TopicListSchema(Schema):
    items = fields.List(fields.Nested(TopicSchema))


class BundleMemberRefSchema(Schema):
    """A member base item; with `?hall=` also the service that handles it for that hall."""

    base_code = fields.String(metadata={"example": "000123001000"})
    name = fields.String(metadata={"example": "企业设立登记"})
    level = fields.String(metadata={"enum": ["province", "city", "county"], "description": "办理层级"})
    item_type = fields.String(allow_none=True, metadata={"enum": list(ITEM_TYPES)})
    audience = fields.String(allow_none=True, metadata={"enum": list(AUDIENCES)})
    high_frequency = fields.Boolean()
    available = fields.Boolean(metadata={"description": "是否有大厅发布了该事项"})
    service_code = fields.String(allow_none=True, metadata={
        "description": "带 hall 参数时：为该大厅办理此项的事项编码（本级或上级大厅）", "example": "370102-000123001000"})
    hall_code = fields.String(allow_none=True, metadata={"example": "370102"})


class BundleArgsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    hall = fields.String(validate=_length("大厅编码", max=12), metadata={
        "description": "解析到该大厅（及其上级大厅）实际办理的事项", "example": "370102"})


class BundleSchema(Schema):
    """一件事: several base items applied for together."""

    code = fields.String(metadata={"example": "enterprise-opening"})
    name = fields.String(metadata={"example": "企业开办一件事"})
    audience = fields.String(metadata={"enum": list(AUDIENCES)})
    description = fields.String(allow_none=True)
    members = fields.List(fields.Nested(BundleMemberRefSchema))


class BundleListSchema(Schema):
    items = fields.List(fields.Nested(BundleSchema))
