"""Health, readiness, Prometheus metrics (loopback only) and the JWKS document."""
from __future__ import annotations

import ipaddress
import logging

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from sqlalchemy import text

from ..errors import NotFound
from ..extensions import ApiBlueprint, db, store
from ..observability import metrics_payload
from ..security.keys import published_jwks
from schemas.ops import HealthSchema, JwksSchema, ReadinessSchema

blp = ApiBlueprint("ops", __name__, description="运维：健康检查、就绪检查、指标与公钥")
logger = logging.getLogger("app.ops")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema, example={"status": "ok"})
    def get(self):
        """进程存活检查"""
        return {"status": "ok"}


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # any driver error means the database is not usable now
        logger.warning("readiness: database down: %s", exc.__class__.__name__)
        db.session.rollback()
        return False


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema, example={"database": "ok", "redis": "ok"})
    @blp.alt_response(503, schema=ReadinessSchema, description="数据库或 Redis 不可用")
    def get(self):
        """就绪检查：数据库与 Redis"""
        database = "ok" if _database_ok() else "down"
        if current_app.config.get("REDIS_URL"):
            redis_state = "ok" if store.ping() else "down"
        else:
            redis_state = "disabled"
        body = {"database": database, "redis": redis_state}
        status = 200 if database == "ok" and redis_state != "down" else 503
        response = jsonify(body)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, description="Prometheus 文本格式，仅限本机访问")
    def get(self):
        """Prometheus 指标（仅本机）"""
        if not _is_loopback(request.remote_addr) or request.headers.get("X-Forwarded-For"):
            raise NotFound("请求的地址或资源不存在")
        payload, content_type = metrics_payload()
        return Response(payload, content_type=content_type)


@blp.route("/.well-known/jwks.json")
class Jwks(MethodView):
    @blp.response(200, JwksSchema)
    def get(self):
        """公钥集合（访问令牌、电子证照、状态列表、签发方）"""
        response = jsonify({"keys": published_jwks()})
        response.headers["Cache-Control"] = "public, max-age=300"
        return response
