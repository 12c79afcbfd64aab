"""GET /inbox: the caller's notifications."""
from flask.views import MethodView

from schemas.common import PageArgsSchema, paged
from schemas.notifications import InboxPageSchema

from ..extensions import ApiBlueprint
from ..security.rbac import current_principal
from .service import inbox_page

blp = ApiBlueprint("notifications", __name__, description="消息中心")


@blp.route("/inbox")
class Inbox(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, args):
        """我的消息（办件进度、亮证记录等）"""
        principal = current_principal()
        rows, total = inbox_page(principal.subject_id, page=args["page"], page_size=args["page_size"])
        return paged(rows, total, args["page"], args["page_size"])
