"""HTTP view of 就近办: GET /service-points, the nearest halls and service points."""
from __future__ import annotations

from flask.views import MethodView

from schemas.common import ProblemSchema
from schemas.service_points import NearestArgsSchema, ServicePointListSchema

from ...extensions import ApiBlueprint

blp = ApiBlueprint("service_points", __name__, description="就近办：附近的政务服务大厅与便民服务点")


@blp.route("/service-points")
class ServicePoints(MethodView):
    @blp.arguments(NearestArgsSchema, location="query")
    @blp.response(200, ServicePointListSchema)
    @blp.alt_response(422, schema=ProblemSchema, description="经纬度不合法，或没有该基本目录编码的事项")
    def get(self, args):
        """离我最近的大厅与便民服务点（由近及远，含距离；可按能办理的事项筛选）"""
        from . import geo  # numpy: imported by the first nearest-point query, not by every command
        return {"items": geo.nearest(lat=args["lat"], lon=args["lon"], base_code=args.get("base_code"),
                                     limit=args["limit"])}
