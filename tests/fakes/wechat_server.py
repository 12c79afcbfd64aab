"""Fake WeChat server API: jscode2session, stable_token, getuserphonenumber, subscribe/send, msg_sec_check."""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from .http_base import FakeHttpServer, FakeRequest, FakeResponse

GARBLED = "garbled"

ERRMSG = {
    -1: "system error", 40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid", 40013: "invalid appid", 40029: "invalid code",
    40125: "invalid appsecret", 40163: "code been used", 40226: "high risk user",
    43101: "user refuse to accept the msg", 45011: "api minute-quota reach limit",
    47003: "argument invalid! data.thing1.value invalid",
}


@dataclass
class Slow:
    """Answer `then` only after `seconds` (to exceed the client's read timeout)."""

    seconds: float
    then: Any = None


class FakeWeChatServer(FakeHttpServer):
    """Login codes are scripted per test with on_code(); tokens rotate like stable_token."""

    def __init__(self, app_id: str = "wx0123456789abcdef", app_secret: str = "test-app-secret"):
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_requests: list[dict] = []
        self.current_token = _new_token()
        self.expires_in = 7200
        self.phone_codes: dict[str, str] = {}
        self.sent_messages: list[dict] = []
        self.refused_openids: set[str] = set()
        self.risky_words: set[str] = set()
        self._scripts: dict[str, list] = {}
        self._used_codes: set[str] = set()

    def on_code(self, code: str, *outcomes: Any) -> None:
        """Script answers for a login code, one per call, the last repeating.

        An outcome is a success dict (openid, session_key, unionid), an errcode int,
        GARBLED, or Slow(seconds, then). A code that succeeded once answers 40163 after.
        """
        self._scripts[code] = list(outcomes)

    def add_user(self, code: str, openid: str, unionid: str | None = None,
                 session_key: str | None = None) -> dict:
        session = {"openid": openid, "session_key": session_key or _new_session_key()}
        if unionid:
            session["unionid"] = unionid
        self.on_code(code, session)
        return session

    def invalidate_token(self) -> None:
        """Rotate the token as if another party forced a refresh: the old one answers 40001."""
        self.current_token = _new_token()

    @property
    def token_calls(self) -> int:
        return len(self.token_requests)

    def handle(self, request: FakeRequest) -> FakeResponse:
        routes = {
            ("GET", "/sns/jscode2session"): self._jscode2session,
            ("POST", "/cgi-bin/stable_token"): self._stable_token,
            ("POST", "/wxa/business/getuserphonenumber"): self._phone,
            ("POST", "/cgi-bin/message/subscribe/send"): self._subscribe_send,
            ("POST", "/wxa/msg_sec_check"): self._msg_sec_check,
        }
        route = routes.get((request.method, request.path))
        if route is None:
            return FakeResponse.text("not found", status=404)
        if request.path.startswith(("/wxa/", "/cgi-bin/message/")):
            if request.query.get("access_token") != self.current_token:
                return _error(40001)
        return route(request)

    def _jscode2session(self, request: FakeRequest) -> FakeResponse:
        query = request.query
        if query.get("appid") != self.app_id:
            return _error(40013)
        if query.get("secret") != self.app_secret:
            return _error(40125)
        if query.get("grant_type") != "authorization_code":
            return _error(40029)
        code = query.get("js_code", "")
        if code in self._used_codes:
            return _error(40163)
        script = self._scripts.get(code)
        if not script:
            return _error(40029)
        return self._answer(code, script.pop(0) if len(script) > 1 else script[0])

    def _answer(self, code: str, outcome: Any) -> FakeResponse:
        if isinstance(outcome, Slow):
            response = self._answer(code, outcome.then or {"openid": "o-slow", "session_key": "x"})
            response.delay = outcome.seconds
            return response
        if outcome == GARBLED:
            return FakeResponse.text("<html><body>502 Bad Gateway</body></html>",
                                     content_type="text/html")
        if isinstance(outcome, int):
            return _error(outcome)
        self._used_codes.add(code)
        return FakeResponse.json(outcome, content_type="text/plain")

    def _stable_token(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        self.token_requests.append(body)
        if body.get("grant_type") != "client_credential" or body.get("appid") != self.app_id:
            return _error(40013)
        if body.get("secret") != self.app_secret:
            return _error(40125)
        if body.get("force_refresh") is True:
            self.current_token = _new_token()
        return FakeResponse.json({"access_token": self.current_token, "expires_in": self.expires_in})

    def _phone(self, request: FakeRequest) -> FakeResponse:
        code = request.json().get("code")
        phone = self.phone_codes.pop(code, None)
        if phone is None:
            return _error(40029)
        return FakeResponse.json({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86",
            "watermark": {"timestamp": 1700000000, "appid": self.app_id}}})

    def _subscribe_send(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        data = body.get("data")
        if not body.get("touser") or not body.get("template_id"):
            return _error(40003)
        if not isinstance(data, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()):
            return _error(47003)
        if body["touser"] in self.refused_openids:
            return _error(43101)
        self.sent_messages.append(body)
        return FakeResponse.json({"errcode": 0, "errmsg": "ok", "msgid": len(self.sent_messages)})

    def _msg_sec_check(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        if body.get("version") != 2 or body.get("scene") not in (1, 2, 3, 4) or not body.get("openid"):
            return _error(47003)
        risky = any(word in body.get("content", "") for word in self.risky_words)
        suggest, label = ("risky", 20001) if risky else ("pass", 100)
        return FakeResponse.json({"errcode": 0, "errmsg": "ok", "trace_id": secrets.token_hex(8),
                                  "result": {"suggest": suggest, "label": label}, "detail": []})


def _error(errcode: int) -> FakeResponse:
    return FakeResponse.json({"errcode": errcode,
                              "errmsg": f"{ERRMSG.get(errcode, 'error')} rid: {secrets.token_hex(4)}"})


def _new_token() -> str:
    return "ACCESS_" + secrets.token_urlsafe(24)


def _new_session_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()
