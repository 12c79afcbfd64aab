"""HTTP views of 一号通行 for other systems under /api/v1: the app's one-call consent and the
person's consents (listed and revocable)."""
from __future__ import annotations

from flask.views import MethodView

from ..extensions import ApiBlueprint
from ..identity.persons import acting_person
from ..security.rbac import auth_required, current_principal
from .authorize import authorize_in_app
from .consents import consents_page, revoke_consent
from schemas.common import PageArgsSchema, ProblemSchema, paged
from schemas.oidc import AuthorizationRedirectSchema, AuthorizationRequestSchema, ConsentPageSchema

blp = ApiBlueprint("oidc", __name__, description="一号通行：其他系统通过爱山东账号登录（OpenID Connect）与授权管理")

BEARER = [{"bearerAuth": []}]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/oauth/authorizations")
class Authorizations(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(AuthorizationRequestSchema, example={
        "client_id": "oc_0a1b2c3d4e5f6a7b8c9d", "redirect_uri": "https://gaj.jinan.example/oidc/callback",
        "scope": "openid profile", "state": "af0ifjsldkj", "nonce": "n-0S6_WzA2Mj",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    @blp.response(200, AuthorizationRedirectSchema)
    @blp.alt_response(403, schema=ProblemSchema,
                      description="实名认证等级低于该应用的要求（redirect_to 带 error=access_denied）")
    @blp.doc(security=BEARER)
    def post(self, data):
        """在 App 内同意授权：为该应用签发授权码

        App 展示应用名称与授权范围，用户按“同意”后调用；返回带 code 和 state 的回调地址，
        App 打开它即完成应用的登录。授权会被记住，可在授权管理中撤销。
        """
        return {"redirect_to": authorize_in_app(principal=current_principal(), data=data)}, 200, NO_STORE


@blp.route("/me/consents")
class Consents(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ConsentPageSchema)
    @blp.doc(security=BEARER)
    def get(self, args):
        """我授权过的应用（通过爱山东账号登录的系统）"""
        person = acting_person(current_principal())
        items, total = consents_page(person.subject_id, page=args["page"], page_size=args["page_size"])
        return paged(items, total, args["page"], args["page_size"])


@blp.route("/me/consents/<string:client_id>")
class ConsentsById(MethodView):
    @auth_required()
    @blp.alt_response(401, schema=ProblemSchema, description="未登录或访问令牌无效")
    @blp.response(204)
    @blp.alt_response(404, schema=ProblemSchema, description="没有对该应用的授权")
    @blp.doc(security=BEARER)
    def delete(self, client_id):
        """撤销对某应用的授权：其令牌立即失效，并通知该应用退出登录"""
        revoke_consent(person_id=acting_person(current_principal()).subject_id, client_id=client_id)
        return "", 204
