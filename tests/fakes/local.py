"""The protocol fakes for a laptop (`flask --app wsgi fakes wechat|alipay|all`): every login code works.

A login code names its user by the part before the first "." ("lisi.1", "lisi.2" are the same
WeChat or Alipay user, each code used once, as wx.login / my.getAuthCode codes are); an 11-digit
mobile number is a valid WeChat phone code for that number. `GET /dev/phone?mobile=...` on the
Alipay fake answers what my.getPhoneNumber hands the mini-program front end, to post to
`/miniprograms/alipay/phone`. Credentials and keys are kept in a JSON file so the printed
environment stays valid across restarts.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

from .alipay_server import FakeAlipayGateway, generate_rsa_keypair
from .http_base import FakeRequest, FakeResponse
from .wechat_server import FakeWeChatServer

MOBILE = re.compile(r"1[3-9][0-9]{9}")


def user_of(code: str) -> str:
    return code.split(".", 1)[0]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class LocalWeChatServer(FakeWeChatServer):
    """FakeWeChatServer that answers every new login code and every mobile-number phone code."""

    def _jscode2session(self, request: FakeRequest) -> FakeResponse:
        code = request.query.get("js_code", "")
        if code and code not in self._scripts and code not in self._used_codes:
            user = user_of(code)
            self.add_user(code, "o" + _digest("openid:" + user)[:27], unionid="u" + _digest("unionid:" + user)[:27])
        return super()._jscode2session(request)

    def _phone(self, request: FakeRequest) -> FakeResponse:
        code = str(request.json().get("code", ""))
        if MOBILE.fullmatch(code):
            self.phone_codes.setdefault(code, code)
        return super()._phone(request)


class LocalAlipayGateway(FakeAlipayGateway):
    """FakeAlipayGateway that answers every auth code, plus the front end's phone payload."""

    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.method == "GET" and request.path == "/dev/phone":
            mobile = request.query.get("mobile", "")
            if not MOBILE.fullmatch(mobile):
                return FakeResponse.json({"error": "mobile 应为11位手机号码"}, status=400)
            return FakeResponse.json(self.phone_payload(mobile))
        return super().handle(request)

    def _oauth_token(self, params: dict[str, str]) -> FakeResponse:
        code = params.get("code", "")
        if code and code not in self._scripts:
            user = user_of(code)
            self.on_auth_code(code, {"user_id": "2088" + str(int(_digest("user:" + user), 16))[:12],
                                     "open_id": "0" + _digest("open:" + user)[:31]})
        return super()._oauth_token(params)


def bare_key(pem: str) -> str:
    """A PEM key as the one-line base64 that the Alipay console shows (the app accepts both)."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def load_state(path: Path) -> dict:
    """Credentials of the local fakes, created on first use and kept (0600) for the next start."""
    state = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    if "wechat" not in state:
        state["wechat"] = {"app_id": "wx" + secrets.token_hex(8), "app_secret": secrets.token_hex(16)}
        changed = True
    if "alipay" not in state:
        app_private, app_public = generate_rsa_keypair()
        alipay_private, alipay_public = generate_rsa_keypair()
        state["alipay"] = {"app_id": "2021" + "".join(secrets.choice("0123456789") for _ in range(12)),
                           "app_private": app_private, "app_public": app_public,
                           "alipay_private": alipay_private, "alipay_public": alipay_public,
                           "aes": base64.b64encode(secrets.token_bytes(16)).decode()}
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state, indent=2))
        os.chmod(path, 0o600)
    return state


def start_wechat(state: dict, port: int = 0) -> tuple[LocalWeChatServer, dict[str, str]]:
    """The WeChat fake, started; with the variables that point the app at it."""
    server = LocalWeChatServer(state["wechat"]["app_id"], state["wechat"]["app_secret"]).start(port)
    return server, {"WECHAT_API_BASE": server.base_url, "WECHAT_APP_ID": server.app_id,
                    "WECHAT_APP_SECRET": server.app_secret}


def start_alipay(state: dict, port: int = 0) -> tuple[LocalAlipayGateway, dict[str, str]]:
    """The Alipay gateway fake, started; with the variables that point the app at it."""
    keys = state["alipay"]
    server = LocalAlipayGateway(keys["app_id"], keys["app_public"], keys["alipay_private"],
                                aes_key_b64=keys["aes"]).start(port)
    return server, {"ALIPAY_GATEWAY": server.base_url + "/gateway.do", "ALIPAY_APP_ID": keys["app_id"],
                    "ALIPAY_APP_PRIVATE_KEY": bare_key(keys["app_private"]),
                    "ALIPAY_PUBLIC_KEY": bare_key(keys["alipay_public"]), "ALIPAY_AES_KEY": keys["aes"]}


STARTERS = {"wechat": start_wechat, "alipay": start_alipay}
