"""Alipay open-platform gateway client for mini-programs: signed calls, login, phone number, notices."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import requests

from app.errors import BadRequest, ServiceUnavailable, TooManyRequests, UpstreamError

from ..base import ChannelAdapter, ChannelIdentity
from .crypto import AlipayCryptoError, aes_decrypt, aes_encrypt
from .signing import (SUCCESS_CODE, load_private_key, load_public_key, sign_params,
                      verify_content, verify_response)

logger = logging.getLogger("miniprograms.alipay")

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
SYSTEM_PARAMS = frozenset({
    "app_id", "method", "format", "charset", "sign_type", "sign", "timestamp", "version",
    "encrypt_type", "app_auth_token", "notify_url", "return_url"})
INVALID_CODE_SUB_CODES = frozenset({"isv.code-invalid"})


class AlipayClient(ChannelAdapter):
    """One Alipay app's calls to the open-platform gateway; failures raise app.errors.ApiError."""

    channel = "alipay"

    def __init__(self, app_id: str, app_private_key_pem: str, alipay_public_key_pem: str,
                 gateway: str, aes_key_b64: str | None = None,
                 timeout: tuple[float, float] = (2, 5), session: requests.Session | None = None):
        load_private_key(app_private_key_pem)
        load_public_key(alipay_public_key_pem)
        self.app_id = app_id
        self._private_key = app_private_key_pem
        self._alipay_public_key = alipay_public_key_pem
        self.gateway = gateway
        self._aes_key = aes_key_b64 or None
        self.timeout = timeout
        self.http = session or requests.Session()

    def call(self, method: str, biz_content: dict | None = None, *, encrypt: bool = False,
             **params: Any) -> dict:
        """Call one gateway method; returns the verified response node when code is 10000."""
        request = self._signed_request(method, biz_content, encrypt, params)
        data = self._post(method, request)
        if _is_busy(data):
            data = self._post(method, request)
        _raise_for_code(method, data)
        return data

    def oauth_token(self, auth_code: str) -> ChannelIdentity:
        """Exchange a my.getAuthCode code for the user's open_id / user_id."""
        if not auth_code:
            raise BadRequest("缺少支付宝授权码 auth_code")
        data = self.call("alipay.system.oauth.token", grant_type="authorization_code",
                         code=auth_code)
        user_id, open_id = data.get("user_id") or None, data.get("open_id") or None
        if not (open_id or user_id):
            raise UpstreamError("支付宝授权接口返回的数据不完整")
        return ChannelIdentity(channel=self.channel, app_id=self.app_id,
                               open_id=str(open_id or user_id),
                               union_id=str(user_id) if user_id else None,
                               session_secret=data.get("access_token"))

    def login(self, code: str) -> ChannelIdentity:
        return self.oauth_token(code)

    def decrypt_phone(self, response_payload: Mapping[str, Any] | str) -> str:
        """The mobile from a my.getPhoneNumber result, after signature check and decryption."""
        payload = _phone_payload(response_payload)
        content, sign = payload["response"], payload["sign"]
        encrypted = not content.startswith("{")
        signed_content = f'"{content}"' if encrypted else content
        if not verify_content(signed_content, sign, self._alipay_public_key):
            raise BadRequest("支付宝手机号数据验签失败")
        data = _parse_object(self._decrypt(content) if encrypted else content)
        if data.get("code") != SUCCESS_CODE or not data.get("mobile"):
            logger.warning("alipay getPhoneNumber code=%s", data.get("code"))
            raise UpstreamError("支付宝未返回手机号")
        return str(data["mobile"])

    def phone_number(self, proof: Mapping[str, Any] | str) -> str:
        return self.decrypt_phone(proof)

    def send_template_message(self, open_id: str, template_id: str, data: Mapping[str, Any],
                              page: str | None = None) -> None:
        """Send a subscribed mini-program message (alipay.open.app.mini.templatemessage.send)."""
        recipient = "to_user_id" if open_id.startswith("2088") else "to_open_id"
        keywords = {key: value if isinstance(value, dict) else {"value": str(value)}
                    for key, value in data.items()}
        biz = {recipient: open_id, "user_template_id": template_id,
               "data": json.dumps(keywords, ensure_ascii=False, separators=(",", ":"))}
        if page:
            biz["page"] = page
        self.call("alipay.open.app.mini.templatemessage.send", biz)

    def send_notice(self, open_id: str, template: str, data: Mapping[str, str]) -> None:
        self.send_template_message(open_id, template, data)

    def _signed_request(self, method: str, biz_content: dict | None, encrypt: bool,
                        params: dict[str, Any]) -> dict[str, str]:
        request = {
            "app_id": self.app_id, "method": method, "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "version": "1.0",
            "timestamp": datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
        }
        request.update({key: str(value) for key, value in params.items() if value is not None})
        if biz_content is not None:
            text = json.dumps(biz_content, ensure_ascii=False, separators=(",", ":"))
            if encrypt:
                request["encrypt_type"] = "AES"
                text = aes_encrypt(text, self._require_aes_key())
            request["biz_content"] = text
        request["sign"] = sign_params(request, self._private_key)
        return request

    def _post(self, method: str, request: dict[str, str]) -> dict:
        query = {key: value for key, value in request.items() if key in SYSTEM_PARAMS}
        form = {key: value for key, value in request.items() if key not in SYSTEM_PARAMS}
        try:
            response = self.http.post(
                self.gateway, params=query, data=form, timeout=self.timeout,
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        except (requests.Timeout, requests.ConnectionError):
            logger.warning("alipay %s unreachable or timed out", method)
            raise ServiceUnavailable("支付宝服务暂时无法访问，请稍后重试", retry_after=5) from None
        except requests.RequestException:
            logger.warning("alipay %s request failed", method)
            raise UpstreamError("支付宝服务响应异常") from None
        return verify_response(_body_text(response, method), method, self._alipay_public_key,
                               aes_key_b64=self._aes_key)

    def _decrypt(self, ciphertext_b64: str) -> str:
        try:
            return aes_decrypt(ciphertext_b64, self._require_aes_key())
        except AlipayCryptoError:
            raise BadRequest("支付宝加密数据解密失败") from None

    def _require_aes_key(self) -> str:
        if not self._aes_key:
            raise ServiceUnavailable("未配置支付宝内容加密密钥")
        return self._aes_key


def _body_text(response: requests.Response, method: str) -> str:
    if response.status_code >= 500:
        logger.warning("alipay %s http %s", method, response.status_code)
        raise ServiceUnavailable("支付宝服务暂不可用，请稍后重试", retry_after=5)
    if response.status_code != 200:
        logger.warning("alipay %s http %s", method, response.status_code)
        raise UpstreamError("支付宝服务响应异常")
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise UpstreamError("支付宝返回了无法解析的数据") from None


def _is_busy(data: Mapping[str, Any]) -> bool:
    sub_code = str(data.get("sub_code") or "")
    return (data.get("code") == "20000" or sub_code.startswith("isp.")
            or sub_code.upper().endswith("SYSTEM_ERROR"))


def _raise_for_code(method: str, data: Mapping[str, Any]) -> None:
    code, sub_code = data.get("code", SUCCESS_CODE), str(data.get("sub_code") or "")
    if code == SUCCESS_CODE:
        return
    logger.warning("alipay %s code=%s sub_code=%s", method, code, sub_code)
    if _is_busy(data):
        raise ServiceUnavailable("支付宝服务繁忙，请稍后重试", retry_after=5)
    if "limit" in sub_code.lower():
        raise TooManyRequests("支付宝接口调用过于频繁，请稍后再试", retry_after=60)
    if sub_code in INVALID_CODE_SUB_CODES:
        raise BadRequest("支付宝授权码 auth_code 无效或已过期")
    raise UpstreamError(f"支付宝接口返回错误（{sub_code or code}）")


def _phone_payload(raw: Mapping[str, Any] | str) -> dict:
    payload = _parse_object(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(payload.get("response"), str) or not isinstance(payload.get("sign"), str):
        raise BadRequest("手机号数据缺少 response 或 sign")
    if (payload.get("sign_type") or "RSA2") != "RSA2":
        raise BadRequest("仅支持 RSA2 签名的手机号数据")
    if (payload.get("encrypt_type") or "AES") != "AES":
        raise BadRequest("仅支持 AES 加密的手机号数据")
    if str(payload.get("charset") or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise BadRequest("仅支持 UTF-8 编码的手机号数据")
    return payload


def _parse_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise BadRequest("手机号数据不是合法的 JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("手机号数据格式不正确")
    return value
