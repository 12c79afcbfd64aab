"""The channel adapter interface the core depends on, whatever the mini-program platform."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from app.errors import BadRequest


@dataclass(frozen=True)
class ChannelIdentity:
    """Who the platform says the mini-program user is.

    `open_id` is per app; `union_id` spans the operator's apps (WeChat unionid,
    Alipay user_id); `session_secret` is the platform session credential
    (WeChat session_key, Alipay access_token) and never appears in repr.
    """

    channel: str
    app_id: str
    open_id: str
    union_id: str | None = None
    session_secret: str | None = field(default=None, repr=False)


@runtime_checkable
class ChannelAdapter(Protocol):
    """What every mini-program channel offers; failures raise app.errors.ApiError subclasses.

    Adapters subclass it and inherit what a channel without the feature answers: no content
    check, no session credential kept, no open data."""

    channel: str
    app_id: str
    # Seconds the platform session credential is kept (encrypted, server-side) after a sign-in,
    # for `decrypt_open_data`; 0: never kept.
    session_secret_ttl: int = 0

    def login(self, code: str) -> ChannelIdentity:
        """Exchange the front-end login code for the user's identity."""
        ...

    def phone_number(self, proof: Any) -> str:
        """The verified phone number from the channel proof (WeChat code, Alipay payload)."""
        ...

    def send_notice(self, open_id: str, template: str, data: Mapping[str, str]) -> None:
        """Send a subscribed template notice to the user."""
        ...

    def check_text(self, open_id: str, text: str) -> bool:
        """Whether `text` by this user may be published: True here, not checked (the channel
        has no content check, or it is switched off)."""
        return True

    def decrypt_open_data(self, session_secret: str, encrypted_data: str, iv: str) -> dict:
        """The user's open data, decrypted with the kept session credential (400 here: the
        channel has none)."""
        raise BadRequest("本渠道不提供开放数据解密")
