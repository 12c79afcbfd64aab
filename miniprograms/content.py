"""Content security for text users publish (rating comments), through the channel adapters."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.identity.models import ChannelBinding

from .adapters import adapter_for


def check_published_text(subject_id: str, text: str) -> bool:
    """False when a channel the author is bound to judges `text` unfit to publish (WeChat's
    msgSecCheck v2, scene: comment, when WECHAT_MSG_SEC_CHECK is on); True otherwise.

    Each configured channel checks once, with the author's first binding to its app (the check
    needs the author's openid). When a channel cannot answer, the 502/503 ApiError propagates,
    so nothing is published unchecked; callers that prefer to publish anyway may catch it.
    """
    if not (text or "").strip():
        return True
    checked = set()
    for channel, app_id, open_id in db.session.execute(
            select(ChannelBinding.channel, ChannelBinding.app_id, ChannelBinding.open_id)
            .where(ChannelBinding.subject_id == subject_id).order_by(ChannelBinding.id)):
        adapter = adapter_for(channel)
        if channel in checked or adapter is None or adapter.app_id != app_id:
            continue
        checked.add(channel)
        if adapter.check_text(open_id, text) is False:
            return False
    return True
