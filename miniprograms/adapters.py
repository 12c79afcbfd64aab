"""Channel adapters built from the current app's configuration, one per channel and app.

`adapter_for("wechat" | "alipay")` is what the core (notifications, the mini-program views,
content checks) calls; it answers None when the channel is not configured. The WeChat
access token is cached in the shared store, so every worker uses the same one. WeChat's
content check runs when WECHAT_MSG_SEC_CHECK is on; its session_key is kept for
WECHAT_SESSION_KEY_TTL seconds to decrypt open data up to WECHAT_OPEN_DATA_MAX_AGE old.

Notices: the core names a template ("application_status") and hands a flat payload
({"title","body", ...data}). `WECHAT_NOTICE_TEMPLATES` / `ALIPAY_NOTICE_TEMPLATES` (a dict,
or its JSON text) map each name to the platform template:

    {"application_status": {"template_id": "Xy...", "page": "pages/applications/detail?id={application_id}",
                             "fields": {"thing1": "title", "phrase2": "status", "time3": "updated_at"}}}

`fields` maps the template's keywords to payload keys. Without a mapping the template id is
the name and every scalar payload value is sent under its own key. Values are cut to what
WeChat allows per keyword type (thing 20 characters, phrase 5, ...).
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from flask import current_app

from .alipay.client import AlipayClient
from .base import ChannelAdapter, ChannelIdentity
from .wechat.client import WeChatClient
from .wechat.crypto import decrypt_encrypted_data

logger = logging.getLogger("miniprograms.adapters")

CACHE_KEY = "miniprogram_adapters"
DEFAULT_TIMEOUT = (2.0, 5.0)
SESSION_KEY_TTL = 3 * 24 * 3600  # WECHAT_SESSION_KEY_TTL overrides
OPEN_DATA_MAX_AGE = 300          # seconds an encryptedData watermark is accepted; WECHAT_OPEN_DATA_MAX_AGE overrides
# WeChat subscribe-message keyword types and their length limits (characters).
KEYWORD_LIMITS = (("character_string", 32), ("thing", 20), ("phrase", 5), ("name", 10),
                  ("number", 32), ("letter", 32), ("symbol", 5), ("car_number", 8))


def adapter_for(channel: str) -> ChannelAdapter | None:
    """The adapter of `channel` for the current app, or None when the channel is not configured."""
    app = current_app._get_current_object()
    cache = app.extensions.setdefault(CACHE_KEY, {})
    if channel not in cache:
        builder = _BUILDERS.get(channel)
        cache[channel] = builder(app) if builder else None
    return cache[channel]


class _ClientAdapter(ChannelAdapter):
    """What both adapters share: the platform client and the notice templates."""

    def __init__(self, client, templates: Mapping[str, Any]):
        self.client = client
        self.templates = dict(templates)

    @property
    def app_id(self) -> str:
        return self.client.app_id


class WeChatAdapter(_ClientAdapter):
    """WeChat mini-program behind ChannelAdapter, plus open-data keys and content checks."""

    channel = "wechat"
    client: WeChatClient

    def __init__(self, client: WeChatClient, templates: Mapping[str, Any], *, text_check: bool = False,
                 session_key_ttl: int = SESSION_KEY_TTL, open_data_max_age: int = OPEN_DATA_MAX_AGE):
        super().__init__(client, templates)
        self.text_check = text_check
        self.session_secret_ttl = session_key_ttl
        self.open_data_max_age = open_data_max_age

    def login(self, code: str) -> ChannelIdentity:
        return self.client.code2session(code)

    def phone_number(self, proof: Any) -> str:
        return self.client.phone_number(proof)

    def send_notice(self, open_id: str, template: str, data: Mapping[str, Any]) -> None:
        template_id, page, values = notice_for(self.templates, template, data)
        self.client.send_subscribe_message(open_id, template_id, values, page=page)

    def check_text(self, open_id: str, text: str) -> bool:
        """WeChat msgSecCheck v2 (scene: comment) when switched on; True when the text may be published."""
        return self.client.msg_sec_check(open_id, text) if self.text_check else True

    def decrypt_open_data(self, session_secret: str, encrypted_data: str, iv: str) -> dict:
        """encryptedData decrypted with the session_key (watermark app and age checked)."""
        return decrypt_encrypted_data(session_secret, encrypted_data, iv, app_id=self.app_id,
                                      max_age_seconds=self.open_data_max_age)


class AlipayAdapter(_ClientAdapter):
    """Alipay mini-program behind ChannelAdapter."""

    channel = "alipay"
    client: AlipayClient

    def login(self, code: str) -> ChannelIdentity:
        return self.client.oauth_token(code)

    def phone_number(self, proof: Any) -> str:
        return self.client.decrypt_phone(proof)

    def send_notice(self, open_id: str, template: str, data: Mapping[str, Any]) -> None:
        template_id, page, values = notice_for(self.templates, template, data)
        self.client.send_template_message(open_id, template_id, values, page=page)

    def check_text(self, open_id: str, text: str) -> bool:
        """Not checked: this platform calls no Alipay content check."""
        return True


def notice_for(templates: Mapping[str, Any], template: str,
               payload: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str]]:
    """(platform template id, page or None, keyword -> text) for one notice."""
    spec = templates.get(template) or {}
    if isinstance(spec, str):
        spec = {"template_id": spec}
    fields = spec.get("fields")
    if fields:
        pairs = [(keyword, payload.get(key)) for keyword, key in fields.items()]
    else:
        pairs = list(payload.items())
    values = {keyword: _fit(keyword, value) for keyword, value in pairs
              if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != ""}
    page = spec.get("page")
    if page:
        try:
            page = page.format(**{k: v for k, v in payload.items() if isinstance(v, (str, int))})
        except (KeyError, IndexError, ValueError):
            page = None
    return spec.get("template_id") or template, page or None, values


def _fit(keyword: str, value: Any) -> str:
    text = str(value)
    for prefix, limit in KEYWORD_LIMITS:
        if keyword.startswith(prefix):
            return text if len(text) <= limit else text[:limit - 1] + "…"
    return text


def _templates(app, name: str) -> dict:
    value = app.config.get(name) or {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            logger.error("%s is not valid JSON; notices use the template names as ids", name)
            return {}
    return value if isinstance(value, dict) else {}


def _timeout(app) -> tuple[float, float]:
    value = app.config.get("MINIPROGRAM_HTTP_TIMEOUT") or DEFAULT_TIMEOUT
    return (float(value[0]), float(value[1])) if isinstance(value, (tuple, list)) else (float(value),) * 2


def _wechat(app) -> WeChatAdapter | None:
    app_id, secret = app.config.get("WECHAT_APP_ID"), app.config.get("WECHAT_APP_SECRET")
    if not (app_id and secret):
        return None
    client = WeChatClient(app_id, secret, app.config.get("WECHAT_API_BASE") or "https://api.weixin.qq.com",
                          app.extensions["shared_store"], timeout=_timeout(app))
    return WeChatAdapter(client, _templates(app, "WECHAT_NOTICE_TEMPLATES"),
                         text_check=bool(app.config.get("WECHAT_MSG_SEC_CHECK")),
                         session_key_ttl=int(app.config.get("WECHAT_SESSION_KEY_TTL", SESSION_KEY_TTL)),
                         open_data_max_age=int(app.config.get("WECHAT_OPEN_DATA_MAX_AGE", OPEN_DATA_MAX_AGE)))


def _alipay(app) -> AlipayAdapter | None:
    app_id = app.config.get("ALIPAY_APP_ID")
    private_key, public_key = app.config.get("ALIPAY_APP_PRIVATE_KEY"), app.config.get("ALIPAY_PUBLIC_KEY")
    if not (app_id and private_key and public_key):
        return None
    try:
        client = AlipayClient(app_id, private_key, public_key,
                              app.config.get("ALIPAY_GATEWAY") or "https://openapi.alipay.com/gateway.do",
                              aes_key_b64=app.config.get("ALIPAY_AES_KEY"), timeout=_timeout(app))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        logger.error("ALIPAY_APP_PRIVATE_KEY or ALIPAY_PUBLIC_KEY is not a valid RSA key; Alipay is disabled")
        return None
    return AlipayAdapter(client, _templates(app, "ALIPAY_NOTICE_TEMPLATES"))


_BUILDERS = {"wechat": _wechat, "alipay": _alipay}
