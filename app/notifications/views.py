"""The inbox: GET /inbox (filters and the unread count), mark one or all read."""
from flask import request
from flask.views import MethodView

from schemas.common import ProblemSchema, paged
from schemas.notifications import InboxArgsSchema, InboxPageSchema, InboxReadAllSchema, NotificationSchema

from .. import journal, personal_pages
from ..extensions import BEARER, ApiBlueprint, store
from ..page_server import EarlyPage, early_reads, serve_early
from ..security.rbac import auth_reading, auth_required, current_principal
from .service import inbox_page, mark_all_read, mark_read, unread_count

blp = ApiBlueprint("notifications", __name__, description="消息中心")
INBOX_PAGE = InboxPageSchema()

NOTICE_EXAMPLE = {"id": 42, "kind": "application_status", "title": "申请已受理：户口迁移",
                  "body": "您的「户口迁移」申请已受理，承诺办结日期 2026-12-10。",
                  "data": {"application_id": "ap_3f9c2a7b1e4d5c6a8b90", "status": "accepted"},
                  "created_at": "2026-12-01T08:00:00Z", "read_at": None}


serve_early(EarlyPage("notifications.Inbox", "inbox", after_journal=True))


@blp.route("/inbox")
class Inbox(MethodView):
    @auth_reading(lambda claims: [])  # the token's keys: the page's must wait for the journal (below)
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(InboxArgsSchema, location="query")
    @blp.response(200, InboxPageSchema, example={"items": [NOTICE_EXAMPLE], "total": 1, "page": 1, "page_size": 20,
                                                 "unread_count": 1})
    @blp.doc(security=BEARER)
    def get(self, args, reads):
        """我的消息（办件进度、亮证记录等），可按未读、类型筛选，附未读条数

        未知的查询参数返回 422 并指明参数名。
        """
        principal = current_principal()
        opening = personal_pages.opening_keys("inbox", principal.claims)
        tried = bool(opening)  # catch up with the journal before the versions are read: see personal_pages
        early = early_reads(request.environ, opening) if tried else None  # read once her entries were written
        caught_up = tried and (early is not None or journal.caught_up(reader=principal.subject_id))

        def read_page() -> dict:
            rows, total, unread = inbox_page(principal.subject_id, page=args["page"], page_size=args["page_size"],
                                             unread=args.get("unread"), kind=args.get("kind"), caught_up=tried)
            return {**paged(rows, total, args["page"], args["page_size"]), "unread_count": unread}

        if not caught_up:
            return read_page()
        reads = early if early is not None else dict(zip(opening, store.get_many(*opening)))
        return personal_pages.opened("inbox", principal.subject_id, reads, read_page=read_page, schema=INBOX_PAGE)


@blp.route("/inbox/<string:notification_id>/read")
class InboxItemRead(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, NotificationSchema, example={**NOTICE_EXAMPLE, "read_at": "2026-12-01T09:00:00Z"})
    @blp.alt_response(404, schema=ProblemSchema, description="消息不存在或不属于您")
    @blp.doc(security=BEARER)
    def post(self, notification_id):
        """标记一条消息为已读"""
        return mark_read(current_principal().subject_id, notification_id)


@blp.route("/inbox/read")
class InboxRead(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(200, InboxReadAllSchema, example={"updated": 3, "unread_count": 0})
    @blp.doc(security=BEARER)
    def post(self):
        """全部标记为已读"""
        subject_id = current_principal().subject_id
        return {"updated": mark_all_read(subject_id), "unread_count": unread_count(subject_id)}
