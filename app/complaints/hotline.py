"""The 12345 hotline platform (一号呼叫): the adapter interface the complaints core depends on, and
its HTTP implementation.

Honesty first: each province runs its own 12345 platform and its interface to the units it
dispatches work orders to is provincial and not public. The shape below is ours; it follows the
work-order life cycle that public national material describes (国办发〔2020〕53号 on consolidating the
hotlines, and the 12345 data-exchange practice of 派单 dispatch, 签收 acceptance, 答复/办结 reply,
退单 return of a misrouted order) as far as that material goes. Swapping in the real interface means
writing another `HotlineAdapter`; the core does not change.

Transport: JSON over HTTPS, UTF-8. Every request carries

    X-App-Id:    the unit's application id at the platform (HOTLINE12345_APP_ID)
    X-Timestamp: unix seconds (the platform refuses more than 300 s of skew)
    X-Nonce:     16-64 characters [A-Za-z0-9_-], never reused
    X-Signature: base64(HMAC-SHA256(HOTLINE12345_SECRET, canonical))
    canonical  = METHOD "\\n" PATH ["?" QUERY] "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))

(the same canonical request as our own open API, app/security/signed_requests.py). Answers are
`{"code": 0, "message": "ok", "data": {...}}`; a non-zero `code` is a refusal (40001 bad signature,
40400 unknown work order, 40900 the order is not in a state for this).

    GET  /api/v1/workorders?status=dispatched&limit=50
         data: {"items": [{"ticket_no", "kind": "咨询"|"求助"|"投诉"|"举报"|"建议", "content",
                           "unit_code" (our hall code), "service_code"?, "caller": {"name", "phone"},
                           "received_at" (ISO 8601), "due_date" (ISO date)?}]}
         orders dispatched to this unit and not yet accepted
    POST /api/v1/workorders/{ticket_no}/acceptance  {"accepted_at", "local_id"}  -> data {"status": "accepted"}
    POST /api/v1/workorders/{ticket_no}/replies     {"reply_id", "content", "final", "replied_at"}
         -> data {"status": "replied"|"closed"}   (`final`: the unit considers the order done: 办结)
    POST /api/v1/workorders/{ticket_no}/return      {"reason"}  -> data {"status": "returned"} (not ours: 退单)
"""
from __future__ import annotations

import json
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from flask import current_app

from ..errors import ServiceUnavailable, UpstreamError
from ..security.signed_requests import sign

KINDS = {"咨询": "consultation", "求助": "consultation", "投诉": "complaint", "举报": "report", "建议": "suggestion"}


@dataclass(frozen=True)
class HotlineTicket:
    """A work order the platform dispatched to us."""

    ticket_no: str
    category: str
    content: str
    hall_code: str
    service_code: str | None
    caller_name: str | None
    caller_phone: str | None
    received_at: datetime | None
    due_date: date | None


class HotlineAdapter(ABC):
    """What the complaints core needs from a 12345 platform."""

    @abstractmethod
    def dispatched(self, limit: int = 50) -> list[HotlineTicket]:
        """Work orders dispatched to this unit and not yet accepted."""

    @abstractmethod
    def accept(self, ticket_no: str, *, local_id: str) -> None:
        """签收: tell the platform the order is ours now."""

    @abstractmethod
    def reply(self, ticket_no: str, *, reply_id: str, content: str, final: bool, replied_at: datetime) -> None:
        """答复 (and with `final`, 办结)."""

    @abstractmethod
    def give_back(self, ticket_no: str, *, reason: str) -> None:
        """退单: the order is not this unit's."""


class HttpHotline(HotlineAdapter):
    """The documented shape over HTTP (see the module docstring); failures raise UpstreamError (502)
    or ServiceUnavailable (503)."""

    def __init__(self, base_url: str, app_id: str, secret: str, *, timeout: tuple[float, float] = (3, 10),
                 session: requests.Session | None = None):
        self.base_url, self.app_id, self._secret = base_url.rstrip("/"), app_id, secret
        self.timeout = timeout
        self.http = session or requests.Session()

    def _call(self, method: str, path: str, *, query: dict | None = None, body: dict | None = None) -> Any:
        full_path = urlsplit(self.base_url).path + path
        query_text = urlencode(query or {})
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") if body is not None else b""
        timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(16)
        headers = {"X-App-Id": self.app_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
                   "X-Signature": sign(self._secret, method, full_path, query_text, timestamp, nonce, payload),
                   "Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        url = self.base_url + path + ("?" + query_text if query_text else "")
        try:
            response = self.http.request(method, url, data=payload or None, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable("12345 平台暂时无法连接", retry_after=60) from exc
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamError(f"12345 平台返回了无法解析的应答（HTTP {response.status_code}）") from None
        if not isinstance(answer, dict) or answer.get("code") != 0:
            message = answer.get("message") if isinstance(answer, dict) else None
            code = answer.get("code") if isinstance(answer, dict) else None
            raise UpstreamError(f"12345 平台拒绝了请求（{code}：{message}）", extra={"hotline_code": code})
        return answer.get("data") or {}

    def dispatched(self, limit: int = 50) -> list[HotlineTicket]:
        data = self._call("GET", "/api/v1/workorders", query={"status": "dispatched", "limit": limit})
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise UpstreamError("12345 平台返回的工单列表格式不正确")
        return [_ticket(item) for item in items]

    def accept(self, ticket_no: str, *, local_id: str) -> None:
        self._call("POST", f"/api/v1/workorders/{quote(ticket_no, safe='')}/acceptance",
                   body={"accepted_at": _now_iso(), "local_id": local_id})

    def reply(self, ticket_no: str, *, reply_id: str, content: str, final: bool, replied_at: datetime) -> None:
        self._call("POST", f"/api/v1/workorders/{quote(ticket_no, safe='')}/replies",
                   body={"reply_id": reply_id, "content": content, "final": final, "replied_at": replied_at.isoformat()})

    def give_back(self, ticket_no: str, *, reason: str) -> None:
        self._call("POST", f"/api/v1/workorders/{quote(ticket_no, safe='')}/return", body={"reason": reason})


def _now_iso() -> str:
    from ..timeutil import beijing_now
    return beijing_now().isoformat(timespec="seconds")


def _ticket(item: Any) -> HotlineTicket:
    if not isinstance(item, dict) or not isinstance(item.get("ticket_no"), str) or not isinstance(item.get("content"), str):
        raise UpstreamError("12345 平台返回的工单缺少编号或内容")
    caller = item.get("caller") if isinstance(item.get("caller"), dict) else {}
    try:
        received = datetime.fromisoformat(item["received_at"]) if item.get("received_at") else None
        due = date.fromisoformat(item["due_date"]) if item.get("due_date") else None
    except (TypeError, ValueError):
        raise UpstreamError(f"12345 工单 {item['ticket_no']} 的时间格式不正确") from None
    return HotlineTicket(ticket_no=item["ticket_no"][:64], category=KINDS.get(item.get("kind"), "consultation"),
                         content=item["content"], hall_code=str(item.get("unit_code") or ""),
                         service_code=item.get("service_code") or None, caller_name=caller.get("name") or None,
                         caller_phone=caller.get("phone") or None, received_at=received, due_date=due)


def hotline_adapter() -> HotlineAdapter | None:
    """The configured platform (HOTLINE12345_BASE_URL, _APP_ID, _SECRET), or None when it is not set up."""
    config = current_app.config
    if not (config.get("HOTLINE12345_BASE_URL") and config.get("HOTLINE12345_APP_ID")
            and config.get("HOTLINE12345_SECRET")):
        return None
    return HttpHotline(config["HOTLINE12345_BASE_URL"], config["HOTLINE12345_APP_ID"], config["HOTLINE12345_SECRET"])
