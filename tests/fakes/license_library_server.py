"""Fake license library (电子证照库) speaking the JSON shape documented in app/wallet/collection.py.

That shape is the project's own, modelled on the national electronic-license sharing service's
metadata (GB/T 36903: 证照标识, 证照类型代码, 持证主体 and its code type "111" = 居民身份证,
颁证单位 and its code, 有效期) and on DigiLocker's issuer pull API (a holder identity in, the
documents issued to it out), as far as public material describes them; neither real interface is
public in full, so this is not their wire format.

    POST /api/licenses/query   X-App-Id, X-Timestamp, X-Nonce, X-Signature (base64 HMAC-SHA256 of
                               METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body)))
         {"holder_identity_type": "111", "holder_identity_number", "request_id"}
      -> {"code": 0, "message": "ok", "data": {"items": [...]}}; 40001 bad signature, 40000 bad body

The signature is checked with hashlib/hmac directly (the 12345 fake's check), not with the app's
signing code.
"""
from __future__ import annotations

import json

from .hotline12345_server import FakeHotline12345Server
from .http_base import FakeHttpServer, FakeRequest, FakeResponse


class FakeLicenseLibraryServer(FakeHttpServer):
    """Items are added with add(); `queries` lists the ID numbers asked about, in order."""

    def __init__(self, app_id: str = "wallet-370000", secret: str = "library-test-secret"):
        super().__init__()
        self.app_id, self.secret = app_id, secret
        self.items: dict[str, list[dict]] = {}
        self.queries: list[str] = []
        self.seen_nonces: set[str] = set()
        self.rejected: list[str] = []
        self.unavailable = False

    def add(self, item: dict) -> dict:
        self.items.setdefault(item["holder_identity_number"], []).append(item)
        return item

    # the same signed-request check as the 12345 fake (the same canonical request)
    _signature_problem = FakeHotline12345Server._signature_ok
    _answer = staticmethod(FakeHotline12345Server._answer)

    def handle(self, request: FakeRequest) -> FakeResponse:
        if self.unavailable:
            return FakeResponse.text("maintenance", status=503)
        if request.method != "POST" or request.path != "/api/licenses/query":
            return self._answer(40400, "no such interface", status=404)
        problem = self._signature_problem(request)
        if problem:
            self.rejected.append(problem)
            return self._answer(40001, f"signature check failed: {problem}", status=401)
        try:
            body = json.loads(request.body)
            number = body["holder_identity_number"]
            assert body["holder_identity_type"] == "111" and isinstance(body["request_id"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._answer(40000, "holder_identity_type 111 and holder_identity_number required", status=400)
        self.queries.append(number)
        return self._answer(data={"items": list(self.items.get(number, []))})
