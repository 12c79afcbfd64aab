"""The OpenAPI document as SDK generators and linters take it: operation ids, explicit security, 401/429/ETag,
typed non-JSON answers, shared enum components with ASCII member names, required response fields, servers."""
from __future__ import annotations

import copy
import re

from apispec import BasePlugin
from flask import Flask
from marshmallow import fields as ma_fields, missing

from .extensions import PROBLEM_MIME, PROBLEM_REF, app_api

ALWAYS_DUMPED = (ma_fields.Function, ma_fields.Method, ma_fields.Constant)
PRESENT = "x-present"
VERBS = {"get": "get", "post": "create", "put": "replace", "patch": "update", "delete": "delete"}
ITEM_SUFFIX = re.compile(r"By(Id|Code|Channel)$")

# Operations whose verb is not "create/get/list/update/delete <resource>" (endpoint, method) -> operationId.
OPERATION_IDS = {
    ("ops.Metrics", "get"): "getMetrics",
    ("ops.Jwks", "get"): "getJwks",
    ("identity.Register", "post"): "register",
    ("identity.SmsCodes", "post"): "sendSmsCode",
    ("identity.PasswordResets", "post"): "resetPassword",
    ("identity.Logout", "post"): "logout",
    ("identity.ActAs", "post"): "actAs",
    ("identity.MePassword", "post"): "changePassword",
    ("identity.MePhone", "post"): "changePhone",
    ("identity.Enterprises", "post"): "claimEnterprise",
    ("accounts.Account", "delete"): "deleteAccount",
    ("wallet.Licenses", "post"): "issueLicense",
    ("wallet.LicenseStatus", "post"): "changeLicenseStatus",
    ("wallet.Verifications", "post"): "verifyPresentation",
    ("wallet.Bindings", "post"): "bindLicenseToDevice",
    ("wallet.AccessLog", "get"): "listLicenseAccessLog",
    ("applications.MaterialReview", "post"): "reviewMaterial",
    ("applications.ApplicationSpotCheck", "post"): "concludeSpotCheck",
    ("applications.HallSpotChecks", "post"): "drawSpotChecks",
    ("applications.ApplicationWithdraw", "post"): "withdrawApplication",
    ("hall_desk.AssistedApplicationsById", "delete"): "declineAssistedApplication",
    ("hall_desk.ApplicationConfirmations", "post"): "confirmAssistedApplication",
    ("hall_desk.ApplicationHandovers", "post"): "handOverResult",
    ("evaluations.ApplicationEvaluation", "post"): "evaluateApplication",
    ("evaluations.RectificationClose", "post"): "closeRectification",
    ("notifications.InboxItemRead", "post"): "markNotificationRead",
    ("notifications.InboxRead", "post"): "markAllNotificationsRead",
    ("files.Files", "post"): "uploadFile",
    ("files.FileById", "get"): "downloadFile",
    ("results.SealRoot", "get"): "getSealCaCertificate",
    ("results.SealVerifications", "post"): "verifySeal",
    ("appointments.AppointmentById", "delete"): "cancelAppointment",
    ("appointments.AppointmentCheckIn", "post"): "checkInAppointment",
    ("complaints.ComplaintRating", "post"): "rateComplaint",
    ("miniprograms.WeChatSessions", "post"): "loginWithWeChat",
    ("miniprograms.WeChatBindings", "post"): "bindWeChatAccount",
    ("miniprograms.WeChatPhone", "post"): "saveWeChatPhone",
    ("miniprograms.WeChatDecrypt", "post"): "decryptWeChatData",
    ("miniprograms.AlipaySessions", "post"): "loginWithAlipay",
    ("miniprograms.AlipayBindings", "post"): "bindAlipayAccount",
    ("miniprograms.AlipayPhone", "post"): "saveAlipayPhone",
    ("miniprograms.OpenPing", "get"): "pingOpenApi",
    ("oidc.Authorizations", "post"): "authorizeApplication",
    ("oidc.ConsentsById", "delete"): "revokeConsent",
}

# Successful answers that are not JSON and that the views document without a body.
NON_JSON = {
    "ops.Metrics": ("text/plain", {"type": "string"}),
    "catalogue.ServiceFormTemplates": ("application/pdf", {"type": "string", "format": "binary"}),
}
ETAG_ENDPOINTS = {"files.FileById", "catalogue.ServiceFormTemplates"}  # besides those documenting 304

# English member names of the Chinese enum values (national catalogue terms, GB/T 32169 and 国办发〔2019〕).
ENUM_NAMES = {
    "全程网办": "FULLY_ONLINE", "网上预审": "ONLINE_PRE_REVIEW", "只跑一次": "ONE_VISIT", "到现场办理": "ON_SITE",
    "行政许可": "ADMINISTRATIVE_LICENSING", "行政给付": "ADMINISTRATIVE_PAYMENT",
    "行政确认": "ADMINISTRATIVE_CONFIRMATION", "行政奖励": "ADMINISTRATIVE_REWARD",
    "行政裁决": "ADMINISTRATIVE_ADJUDICATION", "其他行政权力": "OTHER_ADMINISTRATIVE_POWER",
    "行政备案": "ADMINISTRATIVE_FILING", "公共服务": "PUBLIC_SERVICE",
}

GENERIC_FIELDS = {"Action", "Channel", "Contact", "Database", "Decision", "Kind", "Level", "Mode", "Outcome", "Reason",
                  "Redis", "Result", "Role", "Source", "Status", "Type"}  # enum names get their schema's prefix

HEADERS = {
    "RetryAfter": {"description": "再次请求前应等待的秒数", "required": True,
                   "schema": {"type": "integer", "minimum": 1}},
    "ETag": {"description": "实体标签：用于 If-None-Match（304）", "required": True, "schema": {"type": "string"}},
}
PROBLEM_CONTENT = {PROBLEM_MIME: {"schema": {"$ref": PROBLEM_REF}}}


def init_openapi(app: Flask) -> None:
    """Document the API for SDK generators: the plugin sees each operation, the hook the whole document."""
    api = app_api(app)
    spec = api._spec
    plugin = SdkReadyPlugin()
    plugin.init_spec(spec)
    spec.plugins.append(plugin)
    spec.options["servers"] = [{"url": str(app.config.get("PUBLIC_BASE_URL") or "/").rstrip("/") or "/",
                                "description": "本部署"}]
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    _note_present_fields(api.ma_plugin.converter)
    build = spec.to_dict
    spec.to_dict = lambda: sdk_ready(build())


def _note_present_fields(converter) -> None:
    """Mark (`x-present`) the fields every dump holds whatever the object: computed (Function, Method),
    constant, or with a dump default; `required` for schemas that are only answered."""
    fields2jsonschema = converter.fields2jsonschema

    def noting(fields, *, partial=None):
        result = fields2jsonschema(fields, partial=partial)
        present = [field.data_key or name for name, field in fields.items()
                   if not field.load_only and (isinstance(field, ALWAYS_DUMPED) or field.dump_default is not missing)]
        if present:
            result[PRESENT] = present
        return result

    converter.fields2jsonschema = noting


# ------------------------------------------------------------------------------------------ operations


def operation_id(endpoint: str, method: str, rule: str) -> str:
    """`createApplication`, `listWalletLicenses`, `getApplication`... from the MethodView's name."""
    if (endpoint, method) in OPERATION_IDS:
        return OPERATION_IDS[endpoint, method]
    name = endpoint.rsplit(".", 1)[-1]
    item = bool(ITEM_SUFFIX.search(name)) or rule.rstrip("/").endswith(">")
    name = ITEM_SUFFIX.sub("", name)
    verb = VERBS[method]
    if method == "get" and not item and name.endswith("s"):
        return "list" + name
    if item or method == "post":
        name = _singular(name)
    return verb + name


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith(("ss", "us")):
        return name[:-1]
    return name


class SdkReadyPlugin(BasePlugin):
    """Per operation: operationId, explicit security (`[]` when public), 401 where a credential is
    accepted, Retry-After on 423/429, ETag where the view sends one, bodies of non-JSON answers."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        endpoint = rule.endpoint if rule is not None else ""
        for method, operation in (operations or {}).items():
            if method not in VERBS or not isinstance(operation, dict):
                continue
            operation.setdefault("operationId", operation_id(endpoint, method, rule.rule if rule else path))
            security = operation.setdefault("security", [])
            responses = operation.setdefault("responses", {})
            for status in [status for status in responses if not isinstance(status, str)]:
                responses.setdefault(str(status), responses.pop(status))  # as apispec does: the text key wins
            if any(security) and "401" not in responses:
                responses["401"] = {"description": "未登录、令牌无效或已过期，或签名校验未通过", "content": PROBLEM_CONTENT}
            for status in ("423", "429"):
                if isinstance(responses.get(status), dict):
                    responses[status].setdefault("headers", {})["Retry-After"] = {
                        "$ref": "#/components/headers/RetryAfter"}
            if endpoint in NON_JSON:
                mime, schema = NON_JSON[endpoint]
                success = next(status for status in responses if str(status).startswith("2"))
                responses[success].setdefault("content", {mime: {"schema": schema}})
            if "304" in responses or endpoint in ETAG_ENDPOINTS:
                for status in ("200", "304"):
                    if isinstance(responses.get(status), dict):
                        responses[status].setdefault("headers", {})["ETag"] = {"$ref": "#/components/headers/ETag"}


# -------------------------------------------------------------------------------------- whole document


def sdk_ready(document: dict) -> dict:
    """A copy of the document with shared enum components and required response fields."""
    document = copy.deepcopy(document)
    share_enums(document)
    require_response_fields(document)
    for schema in document.get("components", {}).get("schemas", {}).values():
        _tidy(schema)
    return document


def _tidy(schema) -> None:
    """Drop the `x-present` notes; `nullable` goes with a `type` (OpenAPI 3.0): into each alternative
    of an anyOf/oneOf, and away from a schema of any type (which holds null already)."""
    if isinstance(schema, list):
        for item in schema:
            _tidy(item)
        return
    if not isinstance(schema, dict):
        return
    schema.pop(PRESENT, None)
    if schema.get("nullable") and "type" not in schema and "$ref" not in schema:
        del schema["nullable"]
        for keyword in ("anyOf", "oneOf"):
            for branch in schema.get(keyword) or ():
                if "type" in branch:
                    branch["nullable"] = True
    for key, value in schema.items():
        if key in ("properties",):
            for sub in value.values():
                _tidy(sub)
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf"):
            _tidy(value)


def _sites(document: dict):
    """(holder, key, schema, owner, name) for every inline schema with an `enum`."""
    def walk(holder, key, schema, owner, name):
        if not isinstance(schema, dict):
            return
        if "enum" in schema and "$ref" not in schema:
            yield holder, key, schema, owner, name
            return
        for prop, sub in (schema.get("properties") or {}).items():
            yield from walk(schema["properties"], prop, sub, owner, prop)
        for keyword in ("items", "additionalProperties"):
            if isinstance(schema.get(keyword), dict):
                yield from walk(schema, keyword, schema[keyword], owner, _singular(name))
        for keyword in ("allOf", "oneOf", "anyOf"):
            for index, sub in enumerate(schema.get(keyword) or ()):
                yield from walk(schema[keyword], index, sub, owner, name)

    for component, schema in document.get("components", {}).get("schemas", {}).items():
        if "enum" not in schema:
            yield from walk(None, None, schema, component, component)
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in VERBS:
                continue
            for parameter in operation.get("parameters") or ():
                yield from walk(parameter, "schema", parameter.get("schema"), operation.get("operationId", ""),
                                parameter.get("name", ""))
            for body in (operation.get("requestBody") or {}).get("content", {}).values():
                yield from walk(body, "schema", body.get("schema"), operation.get("operationId", ""), "body")


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", text) if part)


def enum_member_names(values) -> list[str]:
    """ASCII, unique upper-case member names (`x-enum-varnames`) for the non-null values."""
    names: list[str] = []
    for index, value in enumerate(v for v in values if v is not None):
        text = ENUM_NAMES.get(value) or re.sub(r"[^0-9A-Za-z]+", "_", str(value)).strip("_").upper() or f"VALUE_{index}"
        if text[0].isdigit():
            text = "VALUE_" + text
        base, suffix = text, 2
        if str(value) != str(value).upper() and text in names:
            text = base + "_LOWER"
        while text in names:
            text, suffix = f"{base}_{suffix}", suffix + 1
        names.append(text)
    return names


def share_enums(document: dict) -> None:
    """One component per value list (`x-enum-varnames` with ASCII names), referenced where it was inline."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    groups: dict[tuple, list] = {}
    for site in list(_sites(document)):
        schema = site[2]
        groups.setdefault((schema.get("type", "string"), tuple(schema["enum"])), []).append(site)
    by_field: dict[str, set] = {}
    for key, sites in groups.items():
        for *_, owner, name in sites:
            by_field.setdefault(_pascal(name), set()).add(key)
    for key, sites in sorted(groups.items(), key=lambda item: str(item[0])):
        kind, values = key
        component = _enum_name(sites, by_field, schemas)
        schemas[component] = {"type": kind, "enum": list(values), "x-enum-varnames": enum_member_names(values),
                              **({"nullable": True} if None in values else {})}
        for holder, prop, schema, *_ in sites:
            kept = {k: v for k, v in schema.items() if k == "description"}
            holder[prop] = {"$ref": "#/components/schemas/" + component, **kept}


def _enum_name(sites: list, by_field: dict, schemas: dict) -> str:
    """The field's name when no other value list shares it and it says what it is (`OnlineDepth`),
    else prefixed with the schema holding it (`ApplicationStatus`)."""
    owners = sorted({(owner[:1].islower(), len(owner), owner, _pascal(name)) for *_, owner, name in sites})
    unique = [(o, field) for *_, o, field in owners if len(by_field[field]) == 1 and field not in GENERIC_FIELDS]
    owner, field = unique[0] if unique else owners[0][2:]
    prefixed = _pascal(owner) if _pascal(owner).endswith(field) else _pascal(owner) + field
    for candidate in ((field, prefixed) if unique else (prefixed,)):
        if candidate not in schemas:
            return candidate
    return prefixed + "Enum"


def _references(node, found: set) -> set:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/components/schemas/"):
            found.add(node["$ref"].rsplit("/", 1)[-1])
        for value in node.values():
            _references(value, found)
    elif isinstance(node, list):
        for value in node:
            _references(value, found)
    return found


def _closure(names: set, schemas: dict) -> set:
    seen: set = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo.extend(_references(schemas[name], set()))
    return seen


def require_response_fields(document: dict) -> None:
    """Fields every dump holds are `required` in the schemas that are only answered (never sent)."""
    schemas = document.get("components", {}).get("schemas", {})
    sent, answered = set(), set()
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in VERBS:
                _references([operation.get("requestBody"), operation.get("parameters")], sent)
                _references(operation.get("responses"), answered)
    for name in _closure(answered, schemas) - _closure(sent, schemas):
        _require(schemas[name])


def _require(schema: dict) -> None:
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = [name for name in properties if name in schema.get(PRESENT, ())]
        if required:
            schema["required"] = sorted(set(schema.get("required", ())) | set(required), key=list(properties).index)
        for sub in properties.values():
            if isinstance(sub, dict):
                _require(sub)
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            _require(schema[keyword])
