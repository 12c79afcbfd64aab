"""Face-check provider client: Tencent Cloud FaceID 实名核身鉴权 (API 3.0, version 2018-03-01).

`DetectAuth` (RuleId, IdCard, Name, RedirectUrl) opens a check and answers `BizToken` and `Url`,
the H5 liveness page; `GetDetectInfoEnhanced` (BizToken, RuleId, InfoType "0") answers `Text`
with `ErrCode` (null while the person has not finished, 0 when liveness and the comparison with
the ID photo passed), `ErrMsg`, `IdCard`, `Name` and `Sim` (similarity, 0-100). Every call is a
JSON POST signed with TC3-HMAC-SHA256 (the "签名方法 v3" of the API 3.0 documentation: canonical
request, credential scope `date/faceid/tc3_request`, a key derived from the SecretKey by date and
service). Settings: FACEID_SECRET_ID, FACEID_SECRET_KEY, FACEID_RULE_ID, FACEID_REGION
(`ap-guangzhou`), FACEID_API_BASE (`https://faceid.tencentcloudapi.com`, a local fake in tests).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

from ..errors import ServiceUnavailable, UpstreamError
from .face_check import FaceCheckOutcome, FaceCheckProvider, FaceCheckStart

logger = logging.getLogger("app.identity.faceid")

SERVICE = "faceid"
VERSION = "2018-03-01"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
DEFAULT_BASE = "https://faceid.tencentcloudapi.com"
NOT_CONFIGURED = "未开通人脸核验服务：需设置 FACEID_SECRET_ID、FACEID_SECRET_KEY 和 FACEID_RULE_ID"


def tc3_authorization(*, secret_id: str, secret_key: str, host: str, body: bytes, timestamp: int,
                      service: str = SERVICE) -> str:
    """The Authorization header of a JSON POST to `/` (TC3-HMAC-SHA256, headers content-type and host)."""
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join(["POST", "/", "", f"content-type:{CONTENT_TYPE}\nhost:{host}\n", "content-type;host",
                           hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"


class TencentFaceId(FaceCheckProvider):
    name = "tencent-faceid"

    def __init__(self, config):
        self.secret_id = config.get("FACEID_SECRET_ID")
        self.secret_key = config.get("FACEID_SECRET_KEY")
        self.rule_id = config.get("FACEID_RULE_ID")
        if not (self.secret_id and self.secret_key and self.rule_id):
            raise ServiceUnavailable(NOT_CONFIGURED)
        self.base = (config.get("FACEID_API_BASE") or DEFAULT_BASE).rstrip("/")
        self.region = config.get("FACEID_REGION") or "ap-guangzhou"
        self.timeout = float(config.get("MINIPROGRAM_HTTP_TIMEOUT") or 5)

    def _call(self, action: str, params: dict) -> dict:
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        host, timestamp = urlsplit(self.base).netloc, int(time.time())
        headers = {"Content-Type": CONTENT_TYPE, "Host": host, "X-TC-Action": action, "X-TC-Version": VERSION,
                   "X-TC-Timestamp": str(timestamp), "X-TC-Region": self.region,
                   "Authorization": tc3_authorization(secret_id=self.secret_id, secret_key=self.secret_key,
                                                      host=host, body=body, timestamp=timestamp)}
        try:
            answer = requests.post(self.base + "/", data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise ServiceUnavailable("人脸核验服务响应超时，请稍后重试", retry_after=5) from exc
        except requests.RequestException as exc:
            raise ServiceUnavailable("人脸核验服务暂不可用，请稍后重试", retry_after=5) from exc
        try:
            response = answer.json()["Response"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError("人脸核验服务返回了无法识别的内容") from exc
        error = response.get("Error") if isinstance(response, dict) else None
        if error or not isinstance(response, dict):
            code = (error or {}).get("Code", "unknown")
            logger.warning("faceid %s failed: %s", action, code)
            if str(code).startswith(("RequestLimitExceeded", "InternalError")):
                raise ServiceUnavailable("人脸核验服务繁忙，请稍后重试", retry_after=5)
            raise UpstreamError(f"人脸核验服务返回错误（{code}）")
        return response

    def start(self, *, id_number, name, redirect_url):
        response = self._call("DetectAuth", {"RuleId": self.rule_id, "IdCard": id_number, "Name": name,
                                             "RedirectUrl": redirect_url})
        if not response.get("BizToken") or not response.get("Url"):
            raise UpstreamError("人脸核验服务未返回核验地址")
        return FaceCheckStart(token=response["BizToken"], url=response["Url"])

    def outcome(self, token):
        text = self._call("GetDetectInfoEnhanced", {"BizToken": token, "RuleId": self.rule_id,
                                                    "InfoType": "0"}).get("Text") or {}
        code = text.get("ErrCode")
        if code is None:
            return FaceCheckOutcome("pending")
        try:
            similarity = float(text.get("Sim")) if text.get("Sim") not in (None, "") else None
        except (TypeError, ValueError):
            similarity = None
        return FaceCheckOutcome("passed" if code == 0 else "failed", similarity=similarity,
                                id_number=text.get("IdCard"), name=text.get("Name"),
                                reason=None if code == 0 else f"{text.get('ErrMsg') or '核验未通过'}（{code}）")
