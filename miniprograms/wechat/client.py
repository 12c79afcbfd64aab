"""WeChat mini-program server API client: login, stable access token, phone number, notices, content check."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping

import requests

from app.errors import (ApiError, BadRequest, Forbidden, ServiceUnavailable, TooManyRequests,
                        Unauthorized, UpstreamError)

from ..base import ChannelAdapter, ChannelIdentity

logger = logging.getLogger("miniprograms.wechat")

SYSTEM_BUSY = -1
TOKEN_INVALID = frozenset({40001, 40014, 42001})
TOKEN_EARLY_REFRESH_SECONDS = 300
FORCE_REFRESH_INTERVAL_SECONDS = 30

ErrorFactory = Callable[[], ApiError]

COMMON_ERRORS: dict[int, ErrorFactory] = {
    SYSTEM_BUSY: lambda: ServiceUnavailable("微信服务繁忙，请稍后重试", retry_after=5),
    45009: lambda: ServiceUnavailable("微信接口调用已达上限，请稍后重试", retry_after=60),
    45011: lambda: TooManyRequests("微信登录过于频繁，请稍后再试", retry_after=60),
}
LOGIN_ERRORS: dict[int, ErrorFactory] = {
    40029: lambda: BadRequest("微信登录凭证 code 无效"),
    40163: lambda: Unauthorized("微信登录凭证 code 已被使用，请重新登录"),
    40226: lambda: Forbidden("微信判定该用户存在风险，已拒绝登录"),
}
PHONE_ERRORS: dict[int, ErrorFactory] = {
    40029: lambda: BadRequest("手机号授权凭证 code 无效或已过期"),
}
NOTICE_ERRORS: dict[int, ErrorFactory] = {
    40003: lambda: BadRequest("接收消息的 openid 无效"),
    43101: lambda: Forbidden("用户未订阅该消息或已拒绝接收"),
    47003: lambda: BadRequest("订阅消息的模板参数不符合要求"),
}


class WeChatClient(ChannelAdapter):
    """One mini-program's calls to the WeChat server API; failures raise app.errors.ApiError."""

    channel = "wechat"

    def __init__(self, app_id: str, app_secret: str, api_base: str, store: Any,
                 timeout: tuple[float, float] = (2, 5), session: requests.Session | None = None):
        self.app_id = app_id
        self._app_secret = app_secret
        self.api_base = api_base.rstrip("/")
        self.store = store
        self.timeout = timeout
        self.http = session or requests.Session()
        self._token_key = f"wechat:access_token:{app_id}"
        self._force_lock_key = f"wechat:access_token_force:{app_id}"

    def login(self, code: str) -> ChannelIdentity:
        return self.code2session(code)

    def code2session(self, code: str) -> ChannelIdentity:
        """Exchange a wx.login code for openid, unionid and session_key."""
        if not code:
            raise BadRequest("缺少微信登录凭证 code")
        payload = self._call("GET", "/sns/jscode2session", params={
            "appid": self.app_id, "secret": self._app_secret,
            "js_code": code, "grant_type": "authorization_code"})
        self._raise_for_errcode(payload, "jscode2session", LOGIN_ERRORS)
        openid, session_key = payload.get("openid"), payload.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise UpstreamError("微信登录接口返回的数据不完整")
        return ChannelIdentity(channel=self.channel, app_id=self.app_id, open_id=openid,
                               union_id=payload.get("unionid") or None,
                               session_secret=session_key)

    def access_token(self) -> str:
        """The stable access token, cached in the shared store until shortly before expiry."""
        return self.store.get(self._token_key) or self._fetch_token(force_refresh=False)

    def phone_number(self, code: str) -> str:
        """The phone number (without country code) behind a getPhoneNumber code."""
        if not code:
            raise BadRequest("缺少手机号授权凭证 code")
        payload = self._call_with_token("/wxa/business/getuserphonenumber", {"code": code})
        self._raise_for_errcode(payload, "getuserphonenumber", PHONE_ERRORS)
        info = payload.get("phone_info")
        if not isinstance(info, dict) or not info.get("purePhoneNumber"):
            raise UpstreamError("微信手机号接口返回的数据不完整")
        watermark = info.get("watermark")
        if isinstance(watermark, dict) and watermark.get("appid") not in (None, self.app_id):
            raise Forbidden("手机号数据水印与本小程序不符，已拒绝")
        return str(info["purePhoneNumber"])

    def send_subscribe_message(self, openid: str, template_id: str, data: Mapping[str, Any],
                               page: str | None = None) -> None:
        """Send one subscribe message; plain values are wrapped as {"value": ...}."""
        body: dict[str, Any] = {
            "touser": openid, "template_id": template_id, "lang": "zh_CN",
            "data": {key: value if isinstance(value, dict) else {"value": str(value)}
                     for key, value in data.items()},
        }
        if page:
            body["page"] = page
        payload = self._call_with_token("/cgi-bin/message/subscribe/send", body)
        self._raise_for_errcode(payload, "subscribe/send", NOTICE_ERRORS)

    def send_notice(self, open_id: str, template: str, data: Mapping[str, str]) -> None:
        self.send_subscribe_message(open_id, template, data)

    def check_text(self, open_id: str, text: str) -> bool:
        return self.msg_sec_check(open_id, text)

    def msg_sec_check(self, openid: str, content: str) -> bool:
        """True when WeChat's text security check (v2, scene 2: comments) suggests "pass"."""
        payload = self._call_with_token("/wxa/msg_sec_check", {
            "openid": openid, "content": content, "version": 2, "scene": 2})
        if payload.get("errcode") == 87014:
            return False
        self._raise_for_errcode(payload, "msg_sec_check", {})
        result = payload.get("result")
        if not isinstance(result, dict) or "suggest" not in result:
            raise UpstreamError("微信内容安全接口返回的数据不完整")
        return result["suggest"] == "pass"

    def _fetch_token(self, *, force_refresh: bool) -> str:
        payload = self._call("POST", "/cgi-bin/stable_token", json_body={
            "grant_type": "client_credential", "appid": self.app_id,
            "secret": self._app_secret, "force_refresh": force_refresh})
        self._raise_for_errcode(payload, "stable_token", {})
        token, expires_in = payload.get("access_token"), payload.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise UpstreamError("微信接口调用凭证返回的数据不完整")
        ttl = expires_in - TOKEN_EARLY_REFRESH_SECONDS
        if ttl > 0:
            self.store.set(self._token_key, token, ttl)
        return token

    def _token_after_rejection(self, rejected: str) -> str:
        """A fresh token: another worker's, or ours, forcing a refresh at most once per interval."""
        cached = self.store.get(self._token_key)
        if cached and cached != rejected:
            return cached
        self.store.delete(self._token_key)
        force = self.store.set_if_absent(self._force_lock_key, "1", FORCE_REFRESH_INTERVAL_SECONDS)
        return self._fetch_token(force_refresh=force)

    def _call_with_token(self, path: str, body: dict) -> dict:
        token = self.access_token()
        payload = self._call("POST", path, params={"access_token": token}, json_body=body)
        if payload.get("errcode") in TOKEN_INVALID:
            token = self._token_after_rejection(token)
            payload = self._call("POST", path, params={"access_token": token}, json_body=body)
        return payload

    def _call(self, method: str, path: str, *, params: dict | None = None,
              json_body: dict | None = None) -> dict:
        """One API call, retried once when WeChat answers "system busy" (errcode -1)."""
        payload = self._request(method, path, params, json_body)
        if payload.get("errcode") == SYSTEM_BUSY:
            payload = self._request(method, path, params, json_body)
        return payload

    def _request(self, method: str, path: str, params: dict | None, json_body: dict | None) -> dict:
        data = None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"} if data else None
        try:
            response = self.http.request(method, self.api_base + path, params=params, data=data,
                                         headers=headers, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError):
            logger.warning("wechat %s unreachable or timed out", path)
            raise ServiceUnavailable("微信服务暂时无法访问，请稍后重试", retry_after=5) from None
        except requests.RequestException:
            logger.warning("wechat %s request failed", path)
            raise UpstreamError("微信服务响应异常") from None
        return _parse_payload(response, path)

    @staticmethod
    def _raise_for_errcode(payload: dict, api: str, specific: Mapping[int, ErrorFactory]) -> None:
        errcode = payload.get("errcode", 0)
        if errcode in (0, None):
            return
        logger.warning("wechat %s errcode=%s", api, errcode)
        factory = specific.get(errcode) or COMMON_ERRORS.get(errcode)
        if factory is not None:
            raise factory()
        raise UpstreamError(f"微信接口返回错误（{errcode}）")


def _parse_payload(response: requests.Response, path: str) -> dict:
    if response.status_code >= 500:
        logger.warning("wechat %s http %s", path, response.status_code)
        raise ServiceUnavailable("微信服务暂不可用，请稍后重试", retry_after=5)
    if response.status_code != 200:
        logger.warning("wechat %s http %s", path, response.status_code)
        raise UpstreamError("微信服务响应异常")
    try:
        payload = json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        logger.warning("wechat %s returned a body that is not JSON", path)
        raise UpstreamError("微信服务返回了无法解析的数据") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("errcode", 0), int):
        raise UpstreamError("微信服务返回了无法解析的数据")
    return payload
