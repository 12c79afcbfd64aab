"""Clock helpers: aware UTC now, Beijing time, epoch seconds."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def beijing_now() -> datetime:
    return datetime.now(BEIJING)


def beijing_today():
    return beijing_now().date()


def epoch() -> int:
    return int(time.time())


def as_aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; treat them as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def isoformat_z(value: datetime | None) -> str | None:
    value = as_aware(value)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None
