"""A page of a prebuilt statement that counts its own matches (`count(*) OVER ()` labelled `total`)."""
from __future__ import annotations

from sqlalchemy import func, select

from .extensions import db


def counted_page(query, params: dict) -> tuple[list, int]:
    """(rows, total) of `query` run with `params` (which bind `offset` and `limit`): one read when the page
    has rows; an empty page past the first counts the matches on its own."""
    rows = db.session.execute(query, params).all()
    if rows:
        return rows, rows[0].total
    if params["offset"] == 0:
        return [], 0
    everything = query.order_by(None).offset(None).limit(None).subquery()
    return [], db.session.scalar(select(func.count()).select_from(everything), params)
