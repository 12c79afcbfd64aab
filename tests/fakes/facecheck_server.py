"""Fake Tencent Cloud FaceID (实名核身鉴权, API 3.0 version 2018-03-01) for the face-check tests.

It follows the documented shape of the real service: one endpoint, `POST /`, JSON bodies,
the action in `X-TC-Action`, requests signed with TC3-HMAC-SHA256 (checked here independently of
the app's client: Credential scope `date/faceid/tc3_request`, signed headers `content-type;host`,
timestamps more than 5 minutes off refused), answers `{"Response": {..., "RequestId"}}` and
errors `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`.
- `DetectAuth` {RuleId, IdCard, Name, RedirectUrl} -> {BizToken, Url}
- `GetDetectInfoEnhanced` {BizToken, RuleId, InfoType} -> {Text: {ErrCode, ErrMsg, IdCard, Name, Sim, ...}};
  `ErrCode` is null until the person has finished on the H5 page.
What the person does on the H5 page is played by the test: `finish(token, passed=..., sim=...)`
(or `GET /h5/<token>/finish?result=pass|fail` by hand).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import datetime, timezone

from .http_base import FakeHttpServer, FakeRequest, FakeResponse

CONTENT_TYPE = "application/json; charset=utf-8"


def _expected_signature(secret_key: str, request: FakeRequest, timestamp: int) -> str:
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    headers = request.headers  # lower-cased names
    canonical_headers = f"content-type:{headers.get('content-type', '')}\nhost:{headers.get('host', '')}\n"
    canonical = f"POST\n/\n\n{canonical_headers}\ncontent-type;host\n{hashlib.sha256(request.body).hexdigest()}"
    scope = f"{date}/faceid/tc3_request"
    string_to_sign = (f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n"
                      f"{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}")
    secret_date = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    secret_service = hmac.new(secret_date, b"faceid", hashlib.sha256).digest()
    secret_signing = hmac.new(secret_service, b"tc3_request", hashlib.sha256).digest()
    return hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()


class FakeFaceIdServer(FakeHttpServer):
    def __init__(self, secret_id: str = "AKIDfakefaceid0001", secret_key: str = "fake-faceid-secret-key",
                 rule_id: str = "1"):
        super().__init__()
        self.secret_id, self.secret_key, self.rule_id = secret_id, secret_key, rule_id
        self.checks: dict[str, dict] = {}
        self.actions: list[str] = []

    # ---- what the person does on the H5 page

    def finish(self, token: str, *, passed: bool = True, sim: str = "92.36", id_card: str | None = None,
               name: str | None = None) -> None:
        with self.lock:
            check = self.checks[token]
            check["result"] = {"ErrCode": 0 if passed else 1001, "ErrMsg": "成功" if passed else "活体检测未通过",
                               "Sim": sim if passed else "0.00", "IdCard": id_card or check["IdCard"],
                               "Name": name or check["Name"]}

    def token_for(self, id_card: str) -> str:
        with self.lock:
            return next(token for token, check in reversed(list(self.checks.items())) if check["IdCard"] == id_card)

    # ---- the API

    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.method == "GET" and request.path.startswith("/h5/"):
            token = request.path.split("/")[2]
            if request.path.endswith("/finish") and token in self.checks:
                self.finish(token, passed=request.query.get("result", "pass") == "pass")
                return FakeResponse.text("核验完成")
            return FakeResponse.text("<html><body>人脸核验（模拟）</body></html>", "text/html; charset=utf-8")
        if request.method != "POST" or request.path != "/":
            return FakeResponse.text("not found", status=404)
        action = request.headers.get("x-tc-action", "")
        self.actions.append(action)
        problem = self._authentication_problem(request)
        if problem:
            return self._error(*problem)
        params = request.json()
        if action == "DetectAuth":
            return self._detect_auth(params)
        if action == "GetDetectInfoEnhanced":
            return self._detect_info(params)
        return self._error("InvalidAction", f"The action {action} is not supported.")

    def _authentication_problem(self, request: FakeRequest) -> tuple[str, str] | None:
        if request.headers.get("x-tc-version") != "2018-03-01":
            return "InvalidParameterValue", "X-TC-Version must be 2018-03-01"
        authorization = request.headers.get("authorization", "")
        try:
            timestamp = int(request.headers.get("x-tc-timestamp", ""))
            algorithm, _, rest = authorization.partition(" ")
            parts = dict(part.strip().split("=", 1) for part in rest.split(","))
            secret_id, date, service, terminator = parts["Credential"].split("/")
        except (ValueError, KeyError):
            return "AuthFailure.InvalidAuthorization", "Authorization header is malformed"
        if algorithm != "TC3-HMAC-SHA256" or service != "faceid" or terminator != "tc3_request" \
                or parts.get("SignedHeaders") != "content-type;host":
            return "AuthFailure.InvalidAuthorization", "Credential scope or signed headers are wrong"
        if secret_id != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found"
        if abs(time.time() - timestamp) > 300:
            return "AuthFailure.SignatureExpire", "The request has expired"
        if date != datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d"):
            return "AuthFailure.InvalidAuthorization", "Credential date does not match X-TC-Timestamp"
        if not hmac.compare_digest(parts.get("Signature", ""), _expected_signature(self.secret_key, request, timestamp)):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated"
        return None

    def _detect_auth(self, params: dict) -> FakeResponse:
        if params.get("RuleId") != self.rule_id:
            return self._error("InvalidParameterValue.RuleIdNotExist", "RuleId does not exist")
        if not params.get("IdCard") or not params.get("Name"):
            return self._error("InvalidParameter", "IdCard and Name are required here")
        token = str(uuid.uuid4()).upper()
        with self.lock:
            self.checks[token] = {"IdCard": params["IdCard"], "Name": params["Name"],
                                  "RedirectUrl": params.get("RedirectUrl"), "result": None}
        return self._ok({"Url": f"{self.base_url}/h5/{token}?redirect={secrets.token_hex(4)}", "BizToken": token})

    def _detect_info(self, params: dict) -> FakeResponse:
        check = self.checks.get(params.get("BizToken", ""))
        if check is None or params.get("RuleId") != self.rule_id:
            return self._error("InvalidParameterValue.BizTokenIllegal", "BizToken is illegal")
        result = check["result"]
        text = {"ErrCode": None, "ErrMsg": None, "IdCard": "", "Name": "", "Sim": None} if result is None else result
        return self._ok({"Text": {**text, "LiveStatus": text["ErrCode"], "Comparestatus": text["ErrCode"]},
                         "IdCardData": None, "BestFrame": None})

    @staticmethod
    def _ok(payload: dict) -> FakeResponse:
        return FakeResponse.json({"Response": {**payload, "RequestId": str(uuid.uuid4())}})

    @staticmethod
    def _error(code: str, message: str) -> FakeResponse:
        return FakeResponse.json({"Response": {"Error": {"Code": code, "Message": message},
                                               "RequestId": str(uuid.uuid4())}})
