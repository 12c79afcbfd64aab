"""Fake 12345 hotline platform speaking the shape documented in app/complaints/hotline.py: work
orders dispatched to units, acceptance, replies and returns, every request HMAC-signed.

The signature is checked here with hashlib/hmac directly (not with the app's signing code), so a
wrong canonical request on the app's side fails against this server.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlencode

from .http_base import FakeHttpServer, FakeRequest, FakeResponse

ORDER_PATH = re.compile(r"^/api/v1/workorders/([^/]+)/(acceptance|replies|return)$")
MAX_SKEW = 300


class FakeHotline12345Server(FakeHttpServer):
    """Orders are added with dispatch(); what the unit did is in `orders[ticket_no]`."""

    def __init__(self, app_id: str = "unit-370102", secret: str = "hotline-test-secret"):
        super().__init__()
        self.app_id, self.secret = app_id, secret
        self.orders: dict[str, dict] = {}
        self.seen_nonces: set[str] = set()
        self.rejected: list[str] = []
        self.fail_replies = 0  # answer the next N reply calls with HTTP 503

    def dispatch(self, ticket_no: str, *, kind: str, content: str, unit_code: str, caller_name: str = "王先生",
                 caller_phone: str = "13900001111", service_code: str | None = None, due_date: str | None = None,
                 received_at: str = "2026-12-01T09:30:00+08:00") -> dict:
        order = {"ticket_no": ticket_no, "kind": kind, "content": content, "unit_code": unit_code,
                 "caller": {"name": caller_name, "phone": caller_phone}, "received_at": received_at}
        if service_code:
            order["service_code"] = service_code
        if due_date:
            order["due_date"] = due_date
        self.orders[ticket_no] = {"order": order, "status": "dispatched", "replies": [], "accepted": None,
                                  "return_reason": None}
        return order

    # ---- protocol

    def _signature_ok(self, request: FakeRequest) -> str | None:
        headers = request.headers
        if headers.get("x-app-id") != self.app_id:
            return "unknown app id"
        timestamp, nonce = headers.get("x-timestamp", ""), headers.get("x-nonce", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW:
            return "timestamp"
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce) or nonce in self.seen_nonces:
            return "nonce"
        query = urlencode(request.query)
        target = request.path + ("?" + query if query else "")
        canonical = "\n".join((request.method, target, timestamp, nonce, hashlib.sha256(request.body).hexdigest()))
        expected = base64.b64encode(hmac.new(self.secret.encode(), canonical.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, headers.get("x-signature", "")):
            return "signature"
        self.seen_nonces.add(nonce)
        return None

    @staticmethod
    def _answer(code: int = 0, message: str = "ok", data=None, status: int = 200) -> FakeResponse:
        return FakeResponse.json({"code": code, "message": message, "data": data}, status=status)

    def handle(self, request: FakeRequest) -> FakeResponse:
        problem = self._signature_ok(request)
        if problem:
            self.rejected.append(problem)
            return self._answer(40001, f"signature check failed: {problem}", status=401)
        if request.method == "GET" and request.path == "/api/v1/workorders":
            limit = int(request.query.get("limit", "50"))
            items = [o["order"] for o in self.orders.values() if o["status"] == "dispatched"][:limit]
            return self._answer(data={"items": items})
        match = ORDER_PATH.fullmatch(request.path)
        if request.method != "POST" or not match:
            return self._answer(40400, "no such interface", status=404)
        ticket_no, action = match.groups()
        entry = self.orders.get(ticket_no)
        if entry is None:
            return self._answer(40400, "unknown work order", status=404)
        body = json.loads(request.body or b"{}")
        if action == "acceptance":
            if entry["status"] != "dispatched":
                return self._answer(40900, "order already accepted or returned", status=409)
            entry["status"], entry["accepted"] = "accepted", body
            return self._answer(data={"ticket_no": ticket_no, "status": "accepted"})
        if action == "return":
            if entry["status"] != "dispatched":
                return self._answer(40900, "only a dispatched order can be returned", status=409)
            entry["status"], entry["return_reason"] = "returned", body.get("reason")
            return self._answer(data={"ticket_no": ticket_no, "status": "returned"})
        if self.fail_replies:
            self.fail_replies -= 1
            return FakeResponse.text("upstream maintenance", status=503)
        if entry["status"] not in ("accepted", "replied"):
            return self._answer(40900, "order is not being handled by this unit", status=409)
        if not isinstance(body.get("content"), str) or not isinstance(body.get("final"), bool):
            return self._answer(40000, "content and final are required", status=400)
        entry["replies"].append(body)
        entry["status"] = "closed" if body["final"] else "replied"
        return self._answer(data={"ticket_no": ticket_no, "status": entry["status"]})
