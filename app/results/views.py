"""HTTP views of results: the seal root certificate and seal verification of any PDF."""
from __future__ import annotations

from flask import Response, current_app, request
from flask.views import MethodView

from schemas.common import ProblemSchema
from schemas.results import SealVerificationSchema, SealVerificationUploadSchema

from ..errors import UnsupportedMediaType
from ..extensions import ApiBlueprint, limiter
from ..files.upload import received_file
from . import seals
from .verification import verify_pdf

blp = ApiBlueprint("results", __name__, description="办理结果：电子印章根证书与决定书验章")

PEM_MIME = "application/x-pem-file"
NOT_A_PDF = "请上传 PDF 文件"


@blp.route("/seals/ca")
class SealRoot(MethodView):
    @blp.doc(responses={"200": {"description": "电子印章根证书（PEM）",
                                "content": {PEM_MIME: {"schema": {"type": "string"}}}}})
    def get(self):
        """平台电子印章根证书（PEM，供离线验证决定书）"""
        return Response(seals.root_pem(), status=200, mimetype=PEM_MIME,
                        headers={"Cache-Control": "public, max-age=3600"})


@blp.route("/seal-verifications")
class SealVerifications(MethodView):
    @blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": SealVerificationUploadSchema}}})
    @blp.response(200, SealVerificationSchema)
    @blp.alt_response(413, schema=ProblemSchema, description="文件超过 10 MiB")
    @blp.alt_response(415, schema=ProblemSchema, description="不是 PDF")
    @blp.alt_response(429, schema=ProblemSchema, description="验证过于频繁")
    def post(self):
        """验证 PDF 上的电子印章（是否有效、盖章部门、盖章时间、是否完整）"""
        limiter.hit(current_app.config["SEAL_VERIFY_RATE_LIMIT"], "seal-verify", request.remote_addr or "unknown",
                    detail="验证过于频繁，请稍后再试")
        with received_file("file") as upload:
            with open(upload.path, "rb") as handle:
                if not handle.read(5).startswith(b"%PDF-"):
                    raise UnsupportedMediaType(f"file: {NOT_A_PDF}", errors={"file": [NOT_A_PDF]})
            return verify_pdf(upload.path)
