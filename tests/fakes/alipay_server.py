"""Fake Alipay open-platform gateway: RSA2-verified requests, signed (optionally encrypted) responses."""
from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .http_base import FakeHttpServer, FakeRequest, FakeResponse

GARBLED = "garbled"
BUSY = "busy"
LIMITED = "limited"
INVALID = "invalid"
BAD_SIGN = "bad_sign"
SHANGHAI = timezone(timedelta(hours=8))

ERRORS = {
    INVALID: {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.code-invalid",
              "sub_msg": "授权码code无效"},
    BUSY: {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error",
           "sub_msg": "系统繁忙"},
    LIMITED: {"code": "40004", "msg": "Business Failed", "sub_code": "isv.app-call-limited",
              "sub_msg": "应用调用次数超限"},
}


@dataclass
class Slow:
    seconds: float
    then: Any = None


def generate_rsa_keypair() -> tuple[str, str]:
    """A fresh RSA 2048 key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def rsa2_sign(content: str, private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(content: str, sign: str, public_pem: str) -> bool:
    key = serialization.load_pem_public_key(public_pem.encode())
    try:
        key.verify(base64.b64decode(sign), content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def aes_zero_iv(data: bytes, key_b64: str, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(base64.b64decode(key_b64)), modes.CBC(bytes(16)))
    if decrypt:
        decryptor, unpadder = cipher.decryptor(), sym_padding.PKCS7(128).unpadder()
        plain = decryptor.update(data) + decryptor.finalize()
        return unpadder.update(plain) + unpadder.finalize()
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = cipher.encryptor()
    return encryptor.update(padded) + encryptor.finalize()


class FakeAlipayGateway(FakeHttpServer):
    """Verifies requests with the app public key; signs answers with its own Alipay private key."""

    def __init__(self, app_id: str, app_public_key_pem: str, alipay_private_key_pem: str,
                 aes_key_b64: str | None = None):
        super().__init__()
        self.app_id = app_id
        self.app_public_key = app_public_key_pem
        self.alipay_private_key = alipay_private_key_pem
        self.aes_key = aes_key_b64
        self.sent_messages: list[dict] = []
        self.extra_fields: dict[str, Any] = {}
        self._scripts: dict[str, list] = {}

    def on_auth_code(self, code: str, *outcomes: Any) -> None:
        """Script answers: a success dict (user_id/open_id...), INVALID, BUSY, LIMITED,
        GARBLED, BAD_SIGN or Slow(seconds, then); the last one repeats."""
        self._scripts[code] = list(outcomes)

    def phone_payload(self, mobile: str, *, code: str = "10000") -> dict:
        """What my.getPhoneNumber hands the front end: AES-encrypted response, RSA2 over '"<response>"'."""
        plain = json.dumps({"code": code, "msg": "Success", "mobile": mobile}).encode()
        response = base64.b64encode(aes_zero_iv(plain, self.aes_key)).decode()
        return {"response": response, "sign": rsa2_sign(f'"{response}"', self.alipay_private_key),
                "sign_type": "RSA2", "encrypt_type": "AES", "charset": "UTF-8"}

    def handle(self, request: FakeRequest) -> FakeResponse:
        params = {**request.query, **request.form()}
        if not self._request_is_valid(params):
            return self._reply("error_response", {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                "sub_msg": "验签出错"}, signed=False)
        method = params["method"]
        if method == "alipay.system.oauth.token":
            return self._oauth_token(params)
        if method == "alipay.open.app.mini.templatemessage.send":
            self.sent_messages.append(self._biz_content(params))
            return self._reply(method, {"code": "10000", "msg": "Success"},
                               encrypt=params.get("encrypt_type") == "AES")
        return self._reply("error_response", {"code": "40002", "msg": "Invalid Arguments",
                                              "sub_code": "isv.invalid-method"})

    def _request_is_valid(self, params: dict[str, str]) -> bool:
        sign = params.get("sign", "")
        content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
        checks = (params.get("app_id") == self.app_id, params.get("sign_type") == "RSA2",
                  params.get("charset") == "utf-8", params.get("format") == "JSON",
                  params.get("version") == "1.0", _fresh(params.get("timestamp", "")))
        return all(checks) and rsa2_verify(content, sign, self.app_public_key)

    def _biz_content(self, params: dict[str, str]) -> dict:
        text = params.get("biz_content", "{}")
        if params.get("encrypt_type") == "AES":
            text = aes_zero_iv(base64.b64decode(text), self.aes_key, decrypt=True).decode()
        return json.loads(text)

    def _oauth_token(self, params: dict[str, str]) -> FakeResponse:
        script = self._scripts.get(params.get("code", ""))
        if params.get("grant_type") != "authorization_code" or not script:
            return self._reply("error_response", ERRORS[INVALID])
        return self._outcome(script.pop(0) if len(script) > 1 else script[0])

    def _outcome(self, outcome: Any) -> FakeResponse:
        method = "alipay.system.oauth.token"
        if isinstance(outcome, Slow):
            response = self._outcome(outcome.then or {"user_id": "2088000000000001"})
            response.delay = outcome.seconds
            return response
        if outcome == GARBLED:
            return FakeResponse.text("<html>网关错误</html>", content_type="text/html;charset=utf-8")
        if isinstance(outcome, str) and outcome in ERRORS:
            return self._reply("error_response", ERRORS[outcome])
        node = {"access_token": "authusrB" + secrets.token_hex(16), "expires_in": 1296000,
                "re_expires_in": 2592000, "refresh_token": "authusrB" + secrets.token_hex(16),
                **self.extra_fields, **(outcome if isinstance(outcome, dict) else {})}
        return self._reply(method, node, tamper=outcome == BAD_SIGN)

    def _reply(self, method: str, node: dict, *, signed: bool = True, encrypt: bool = False,
               tamper: bool = False) -> FakeResponse:
        name = method if method == "error_response" else method.replace(".", "_") + "_response"
        text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        if encrypt:
            text = json.dumps(base64.b64encode(aes_zero_iv(text.encode(), self.aes_key)).decode())
        body = f'{{"{name}":{text}'
        if signed:
            sign = rsa2_sign(text, self.alipay_private_key)
            if tamper:
                text = text.replace('"expires_in":', '"expires_in":1')
                body = f'{{"{name}":{text}'
            body += f',"sign":"{sign}"'
        return FakeResponse.text(body + "}", content_type="text/html;charset=utf-8")


def _fresh(timestamp: str) -> bool:
    try:
        sent = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        return False
    return abs(datetime.now(SHANGHAI) - sent) < timedelta(minutes=10)
