"""Content security for text users publish (rating comments): WeChat msgSecCheck v2."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.identity.models import ChannelBinding

from .adapters import adapter_for


def check_published_text(subject_id: str, text: str) -> bool:
    """False when WeChat's text check (scene: comment) judges `text` unfit to publish.

    Runs only when WECHAT_MSG_SEC_CHECK is on, WeChat is configured and the subject has a
    binding to this WeChat mini-program (the check needs the author's openid); True otherwise.
    When WeChat cannot answer, the 502/503 ApiError propagates, so nothing is published
    unchecked; callers that prefer to publish anyway may catch it.
    """
    if not current_app.config.get("WECHAT_MSG_SEC_CHECK") or not (text or "").strip():
        return True
    adapter = adapter_for("wechat")
    if adapter is None:
        return True
    open_id = db.session.scalar(select(ChannelBinding.open_id).where(
        ChannelBinding.subject_id == subject_id, ChannelBinding.channel == "wechat",
        ChannelBinding.app_id == adapter.app_id).order_by(ChannelBinding.id).limit(1))
    if open_id is None:
        return True
    return adapter.check_text(open_id, text)
