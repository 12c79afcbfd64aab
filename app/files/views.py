"""HTTP views of uploads: store a file, read it back (owner and handling staff only)."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, current_app
from flask.views import MethodView

from schemas.common import ProblemSchema
from schemas.files import FileSchema, FileUploadSchema

from ..extensions import ApiBlueprint, limiter
from ..security.rbac import auth_required, current_principal
from . import service
from .upload import received_file

blp = ApiBlueprint("files", __name__, description="材料上传：PDF、JPEG、PNG，加密存储")

BEARER = [{"bearerAuth": []}]
UPLOADERS = ("citizen", "enterprise_agent", "hall_staff", "hall_admin")
MULTIPART_BODY = {"required": True, "content": {"multipart/form-data": {"schema": FileUploadSchema}}}
FILE_CONTENT = {"content": {mime: {"schema": {"type": "string", "format": "binary"}}
                            for mime in ("application/pdf", "image/jpeg", "image/png")}}


@blp.route("/files")
class Files(MethodView):
    @auth_required(*UPLOADERS)
    @blp.doc(security=BEARER, requestBody=MULTIPART_BODY)
    @blp.response(201, FileSchema)
    @blp.alt_response(413, schema=ProblemSchema, description="文件超过 10 MiB")
    @blp.alt_response(415, schema=ProblemSchema, description="不是 PDF、JPEG 或 PNG（按内容判断）")
    @blp.alt_response(422, schema=ProblemSchema, description="空文件、损坏的文件、含脚本或附件的 PDF、压缩炸弹")
    @blp.alt_response(429, schema=ProblemSchema, description="上传过于频繁")
    def post(self):
        """上传材料文件（multipart/form-data，字段 file）"""
        principal = current_principal()
        limiter.hit(current_app.config["FILE_UPLOAD_RATE_LIMIT"], "file-upload", principal.subject_id,
                    detail="上传过于频繁，请稍后再试")
        with received_file("file") as upload:
            return service.store_upload(owner_subject_id=principal.subject_id, upload=upload), 201


@blp.route("/files/<string:file_id>")
class FileById(MethodView):
    @auth_required()
    @blp.doc(security=BEARER, responses={"200": {"description": "文件内容", **FILE_CONTENT}})
    @blp.alt_response(404, schema=ProblemSchema, description="文件不存在（或无权查看）")
    def get(self, file_id):
        """下载文件（上传者本人，以及办理使用该文件的办件的工作人员）"""
        row = service.readable_file(principal=current_principal(), file_id=file_id)
        disposition = f"attachment; filename*=UTF-8''{quote(row.name)}"
        return Response(service.plaintext(row), status=200, mimetype=row.content_type,
                        headers={"Content-Length": str(row.size), "Content-Disposition": disposition,
                                 "ETag": f'"{row.sha256}"'})
