"""The landing page (/) that links the docs, the verifier page and the dashboards, and the
problem-type pages (/problems, /problems/<slug>) that the API's problem `type` URIs name.

Same strict Content-Security-Policy as the other pages (app/web/views.py)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy.exc import SQLAlchemyError

from .problem_docs import BY_SLUG, PROBLEM_DOCS
from .views import PAGE_CSP, PERMISSIONS_POLICY

landing = Blueprint("landing", __name__, template_folder="templates")

# (path, title, what it is); shown only when the app serves that path.
LINKS = (
    ("/docs", "接口文档（Swagger UI）", "全部接口、字段和示例，可在页面上直接调用"),
    ("/openapi.json", "OpenAPI 描述文件", "OpenAPI 3 文档，可用来生成客户端代码"),
    ("/problems", "错误类型说明", "各类 application/problem+json 错误的含义和处理方法"),
    ("/verify", "亮证核验", "酒店、银行等核验方扫描或输入持证人出示的亮证码"),
)
STATUS_LINKS = (
    ("/healthz", "存活检查"), ("/readyz", "就绪检查（数据库、Redis）"),
    ("/.well-known/jwks.json", "公钥集（JWKS）"), ("/.well-known/openid-configuration", "OpenID Connect 发现文档"),
)


@landing.after_request
def _page_headers(response):
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    response.headers["Cache-Control"] = "no-store"
    return response


def _served(path: str) -> bool:
    adapter = current_app.url_map.bind("localhost")
    return adapter.test(path, method="GET")


def _dashboard_halls() -> list:
    from ..catalogue.models import Hall
    from ..extensions import db
    try:
        return list(db.session.scalars(db.select(Hall).where(Hall.level.in_(("province", "city")))
                                       .order_by(Hall.code)))
    except SQLAlchemyError:  # a database that was never migrated: the page still links the rest
        db.session.rollback()
        return []


@landing.get("/")
def index():
    """What this server is and where to start."""
    demo = None
    if current_app.config.get("APP_ENV") == "development":
        from ..devtools.accounts import DEMO_ACCOUNTS, ROLE_NAMES
        demo = [(ROLE_NAMES[a.role], a) for a in DEMO_ACCOUNTS]
    return render_template(
        "web/landing.html", links=[link for link in LINKS if _served(link[0])],
        status_links=[link for link in STATUS_LINKS if _served(link[0])], halls=_dashboard_halls(), demo=demo)


@landing.get("/problems")
def problems():
    """Every problem type the API answers with."""
    return render_template("web/problems.html", docs=PROBLEM_DOCS, current=None)


@landing.get("/problems/<slug>")
def problem(slug: str):
    """One problem type (the target of a problem's `type` URI), with the others below it."""
    doc = BY_SLUG.get(slug)
    if doc is None:
        response = current_app.make_response((render_template(
            "web/error.html", status=404, title="没有这种错误类型", message=f"没有名为 {slug[:80]} 的错误类型。",
            hall=None), 404))
        return response
    return render_template("web/problems.html", docs=PROBLEM_DOCS, current=doc)
