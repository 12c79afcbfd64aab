"""HTTP views of the catalogue domain: /halls, /services, /topics, /bundles and hall admins' lists.

Reads (halls, services, topics, bundles) are answered from the worker's search index, rendered once
per catalogue version (`_kept_read`: the next identical request of a caller who sees the same channel is
answered before Flask, `kept_reads`), and carry a weak ETag (catalogue version + URL + channel; If-None-Match
gives 304 before any work) and `Cache-Control: public, max-age=60` (private when the request carries
a token or a client signature). A request through a mini-program token or a signed third-party
client only sees services exposed to its channel.
"""
from __future__ import annotations

from flask import current_app, g, request, url_for
from flask.views import MethodView
from werkzeug.wrappers import Response

from ..extensions import BEARER, OPTIONAL_BEARER, ApiBlueprint, limiter
from ..json_output import json_bytes
from ..security.rbac import auth_required, current_principal, request_channel
from ..security.signed_requests import SECURITY as SIGNED, signed_client
from ..store import StoreUnavailable
from . import bundles, form_templates, halls, kept_reads, publishing, region, service
from .index import fresh_index
from schemas.catalogue import (SERVICE_EXAMPLE, BundleArgsSchema, BundleListSchema, BundleSchema, CoverageSchema,
                               HallSchema, HallTreeSchema, RevisionListSchema, ServiceCreateSchema,
                               ServiceDetailSchema, ServiceListSchema, ServiceQueryArgsSchema, ServiceUpdateSchema,
                               TopicListSchema)
from schemas.common import ProblemSchema

blp = ApiBlueprint("catalogue", __name__, description="政务服务事项目录与分厅（1+16+N）：大厅、事项检索、办事指南、主题、一件事")

CATALOGUE_SCOPE = "catalogue:read"
READERS = OPTIONAL_BEARER[:1] + SIGNED + OPTIONAL_BEARER[1:]  # a token, a signed client, or nobody
SERVICE_DETAIL = ServiceDetailSchema()
HALL_TREE, HALL, TOPIC_LIST = HallTreeSchema(), HallSchema(), TopicListSchema()
BUNDLE_LIST, BUNDLE = BundleListSchema(), BundleSchema()
SERVICE_QUERY_ARGS = ServiceQueryArgsSchema()  # one instance: webargs would build a schema per request from a class


# ------------------------------------------------------------------------------------ caching helpers


def _read_context() -> tuple[str | None, str]:
    """(channel the caller sees, weak ETag for this URL at the catalogue version this worker serves).

    A signed third-party request needs the `catalogue:read` scope (403 otherwise)."""
    signed_client(CATALOGUE_SCOPE)
    channel = request_channel()
    return channel, _etag(channel)


def _etag(channel: str | None) -> str:
    return kept_reads.etag(fresh_index().tag, channel, *_url())


def _url() -> tuple[str, str]:
    return request.environ.get("PATH_INFO", ""), request.environ.get("QUERY_STRING", "")


def _private() -> bool:
    return bool(request.headers.get("Authorization")) or g.get("signed_client") is not None


def _render_key(key: tuple, query_args: bool, channel: str | None, city: str | None) -> tuple:
    """Where a rendered body is kept: by the raw URL, the caller's channel and the city a search is answered for
    (as the page server looks it up: `kept_reads`), but by `key` for a signed client. A query string on a read
    that takes no arguments changes nothing, so it is kept by `key`: random ones cannot fill the byte budget
    with copies of one body."""
    path, query = _url()
    if g.get("signed_client") is not None or (query and not query_args):
        return key
    return kept_reads.url_key(path, query, channel, city)


def _cache_headers(etag: str) -> dict:
    return dict(kept_reads.cache_headers(etag, private=_private()))


def _not_modified(etag: str) -> Response | None:
    if kept_reads.not_modified(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=_cache_headers(etag))
    return None


def _kept_read(key: tuple, render, etag: str, *, channel: str | None, query_args: bool = False,
               city: str | None = None) -> Response:
    """304 when If-None-Match names `etag`; else the JSON of `render()`, rendered once per `key` (or URL,
    `_render_key`) and catalogue version in this worker. `channel`: the one `etag` names; `query_args`: the view
    reads the query string; `city`: the caller's city a search is answered for."""
    cached = _not_modified(etag)
    if cached is not None:
        return cached
    payload = fresh_index().cached_response(_render_key(key, query_args, channel, city),
                                            lambda: json_bytes(render()))
    return Response(payload, status=200, mimetype="application/json", headers=_cache_headers(etag))


def _limit_search() -> None:
    """Per-client-IP limit on searches the index has to compute (answers it already rendered for
    this catalogue version cost no more than /healthz and are not counted); without the shared
    store the catalogue keeps serving."""
    limit = current_app.config.get("SEARCH_RATE_LIMIT")
    if not limit or str(limit).lower() in ("0", "off", "none"):
        return
    try:
        limiter.hit(limit, "search", request.remote_addr or "unknown", detail="检索过于频繁，请稍后再试")
    except StoreUnavailable:
        pass


# ---------------------------------------------------------------------------------------------- halls


@blp.route("/halls")
class Halls(MethodView):
    @blp.response(200, HallTreeSchema, example={"items": [{
        "code": "370000", "name": "山东省", "full_name": "山东省", "level": "province", "parent_code": None,
        "service_count": 41, "children": [{"code": "370100", "name": "济南市", "full_name": "济南市", "level": "city",
                                           "parent_code": "370000", "service_count": 275, "children": [
                                               {"code": "370102", "name": "历下区", "full_name": "济南市历下区",
                                                "level": "county", "parent_code": "370100", "service_count": 180,
                                                "children": []}]}]}]})
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(403, schema=ProblemSchema, description="签名的第三方客户端没有 catalogue:read 授权")
    @blp.doc(security=READERS)
    def get(self):
        """大厅树（省、16市、县区）

        山东省厅之下为16个市级分厅，市级分厅之下为县（市、区）分厅；编码为 GB/T 2260 行政区划代码。
        """
        channel, etag = _read_context()
        return _kept_read(("halls", channel), lambda: HALL_TREE.dump({"items": halls.hall_tree(channel=channel)}), etag,
                          channel=channel)


@blp.route("/halls/<string:code>")
class HallsById(MethodView):
    @blp.response(200, HallSchema)
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(403, schema=ProblemSchema, description="签名的第三方客户端没有 catalogue:read 授权")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    @blp.doc(security=READERS)
    def get(self, code):
        """大厅详情（含已发布事项数）"""
        channel, etag = _read_context()
        return _kept_read(("hall", code, channel), lambda: HALL.dump(halls.hall_detail(code, channel=channel)), etag,
                          channel=channel)


@blp.route("/halls/<string:code>/coverage")
class HallCoverage(MethodView):
    @blp.response(200, CoverageSchema, example={"hall_code": "370100", "service_count": 275,
                                                "high_frequency_present": 50, "high_frequency_missing": [],
                                                "target_service_count": 200, "meets_target": True})
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    def get(self, code):
        """大厅事项覆盖情况（不少于200项且50项高频事项齐全）"""
        return halls.coverage(code)


@blp.route("/halls/<string:code>/services")
class HallServices(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(ServiceCreateSchema, example={"base_code": "000705012000", "department": "济南市公安局历下区分局",
                                                 "promised_limit_days": 3, "channels": ["app", "wechat"]})
    @blp.response(201, ServiceDetailSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是本大厅（或其上级市级大厅）的管理员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="本大厅已发布该基本编码的事项，或事项编码已被使用")
    @blp.alt_response(422, schema=ProblemSchema,
                      description="参数错误；违反四级六同时 errors 逐项列出与其他大厅不一致的字段"
                                  "（name、item_type、legal_basis、materials、statutory_limit_days）")
    @blp.doc(security=BEARER)
    def post(self, data, code):
        """在本大厅发布事项（四级六同）

        `base_code` 必填；未提供的字段取自其他大厅同一基本编码的事项（或基本目录），事项编码缺省为
        `{大厅编码}-{基本编码}`。事项名称、类型、设定依据、申请材料、法定时限须与其他大厅一致。
        """
        created = publishing.create_service(principal=current_principal(), hall_code=code, data=data)
        location = url_for("catalogue.ServicesById", code=created.code)
        return created, 201, {"Location": location}


@blp.route("/halls/<string:code>/services/<string:service_code>")
class HallServicesById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(ServiceUpdateSchema, example={"promised_limit_days": 2, "channels": ["app", "wechat", "alipay"]})
    @blp.response(200, ServiceDetailSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是本大厅（或其上级市级大厅）的管理员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅或本大厅的该事项不存在")
    @blp.alt_response(409, schema=ProblemSchema, description="同时修改冲突，或重新发布时本大厅已有同一基本编码的事项")
    @blp.alt_response(412, schema=ProblemSchema, description="If-Match 中的版本已不是当前版本")
    @blp.alt_response(422, schema=ProblemSchema, description="参数错误或违反四级六同（errors 逐项列出不一致的字段）")
    @blp.doc(security=BEARER, parameters=[{"in": "header", "name": "If-Match", "required": False,
                                           "schema": {"type": "string"}, "description": "事项的 version，如 \"3\""}])
    def patch(self, data, code, service_code):
        """修改本大厅的事项（每次修改留存版本）"""
        return publishing.update_service(principal=current_principal(), hall_code=code, service_code=service_code,
                                         data=data, if_match=request.headers.get("If-Match"))

    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(403, schema=ProblemSchema, description="不是本大厅（或其上级市级大厅）的管理员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅或本大厅的该事项不存在")
    @blp.alt_response(412, schema=ProblemSchema, description="If-Match 中的版本已不是当前版本")
    @blp.doc(security=BEARER)
    def delete(self, code, service_code):
        """撤下本大厅的事项（状态改为 withdrawn，历史保留）"""
        publishing.withdraw_service(principal=current_principal(), hall_code=code, service_code=service_code,
                                    if_match=request.headers.get("If-Match"))


@blp.route("/halls/<string:code>/services/<string:service_code>/revisions")
class HallServiceRevisions(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, RevisionListSchema)
    @blp.alt_response(403, schema=ProblemSchema, description="不是本大厅（或其上级市级大厅）的工作人员")
    @blp.alt_response(404, schema=ProblemSchema, description="大厅或本大厅的该事项不存在")
    @blp.doc(security=BEARER)
    def get(self, code, service_code):
        """事项的修改记录"""
        return {"items": publishing.list_revisions(principal=current_principal(), hall_code=code,
                                                   service_code=service_code)}


# ------------------------------------------------------------------------------------------- services


@blp.route("/services")
class Services(MethodView):
    @blp.arguments(SERVICE_QUERY_ARGS, location="query")
    @blp.response(200, ServiceListSchema, example={
        "items": [SERVICE_EXAMPLE], "total": 1, "page": 1, "page_size": 20,
        "facets": {"hall": [{"value": "370102", "label": "济南市历下区", "count": 1}],
                   "audience": [{"value": "person", "label": "个人", "count": 1}],
                   "topic": [{"value": "person-household", "label": "户籍", "count": 1}],
                   "item_type": [{"value": "行政确认", "label": "行政确认", "count": 1}]}})
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(403, schema=ProblemSchema, description="签名的第三方客户端没有 catalogue:read 授权")
    @blp.alt_response(422, schema=ProblemSchema, description="参数错误（如 page_size 超过100、q 超过100个字符）")
    @blp.alt_response(429, schema=ProblemSchema, description="检索过于频繁（带 Retry-After）")
    @blp.doc(security=READERS)
    def get(self, args):
        """检索政务服务事项

        支持中文、拼音全拼与首字母、别名和口语化问法（如“户口本丢了怎么办”“yibao”“sfz”）；
        有 q 时按相关度排序，否则按高频与热度排序。facets 给出结果在大厅、服务对象、主题、事项类型上的分布。
        """
        channel, etag = _read_context()
        args, city = region.with_caller_city(args)

        def render() -> dict:
            _limit_search()
            return service.search_services(visible_channel=channel, **args)

        return _kept_read(("services", channel, tuple(sorted(args.items()))), render, kept_reads.for_city(etag, city),
                          channel=channel, query_args=True, city=city)


@blp.route("/services/<string:code>")
class ServicesById(MethodView):
    @blp.response(200, ServiceDetailSchema)
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(403, schema=ProblemSchema, description="签名的第三方客户端没有 catalogue:read 授权")
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在、已撤下或未在当前渠道开放")
    @blp.doc(security=READERS)
    def get(self, code):
        """办事指南（事项详情）

        The body is rendered once per code, channel and catalogue version in each worker, and kept
        with the worker's index (a republished catalogue changes the version and the ETag).
        """
        channel, etag = _read_context()
        return _kept_read(("service", code, channel),
                          lambda: SERVICE_DETAIL.dump(service.get_service(code, channel=channel)), etag, channel=channel)


@blp.route("/services/<string:code>/form-templates/<string:kind>")
class ServiceFormTemplates(MethodView):
    @blp.response(200, content_type="application/pdf", description="PDF 申请表（blank 空白表，sample 填写样例）")
    @blp.alt_response(404, schema=ProblemSchema, description="事项不存在、不是高频事项或模板类型不存在")
    @blp.doc(security=READERS)
    def get(self, code, kind):
        """下载高频事项的申请表（空白表或填写样例）"""
        channel, etag = _read_context()
        cached = _not_modified(etag)
        if cached is not None:
            return cached
        pdf = form_templates.render(service.get_service(code, channel=channel), kind)
        headers = _cache_headers(etag)
        headers["Content-Disposition"] = f"attachment; filename=\"{code}-{kind}.pdf\""
        return Response(pdf, status=200, mimetype="application/pdf", headers=headers)


# --------------------------------------------------------------------------------------- topics, bundles


@blp.route("/topics")
class Topics(MethodView):
    @blp.response(200, TopicListSchema,
                  example={"items": [{"code": "person-birth", "name": "出生", "audience": "person"}]})
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(403, schema=ProblemSchema, description="签名的第三方客户端没有 catalogue:read 授权")
    @blp.doc(security=READERS)
    def get(self):
        """主题（个人生命周期事件、企业全生命周期阶段）"""
        channel, etag = _read_context()
        return _kept_read(("topics",), lambda: TOPIC_LIST.dump({"items": service.list_topics()}), etag, channel=channel)


@blp.route("/bundles")
class Bundles(MethodView):
    @blp.response(200, BundleListSchema)
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    def get(self):
        """一件事列表"""
        return _kept_read(("bundles",), lambda: BUNDLE_LIST.dump({"items": bundles.list_bundles()}), _etag(None),
                          channel=None)


@blp.route("/bundles/<string:code>")
class BundlesById(MethodView):
    @blp.arguments(BundleArgsSchema, location="query")
    @blp.response(200, BundleSchema)
    @blp.alt_response(304, description="未修改（If-None-Match 命中）")
    @blp.alt_response(404, schema=ProblemSchema, description="一件事或大厅不存在")
    def get(self, args, code):
        """一件事详情（成员解析到基本目录事项；带 hall 时解析到该大厅实际办理的事项）"""
        hall = args.get("hall")
        return _kept_read(("bundle", code, hall), lambda: BUNDLE.dump(bundles.get_bundle(code, hall_code=hall)),
                          _etag(None), channel=None, query_args=True)
