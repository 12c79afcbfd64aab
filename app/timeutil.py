"""The app's clock (real time unless a test installs another): aware UTC now, Beijing time, epoch
seconds, monotonic seconds."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


class Clock:
    """Real time. Tests install a subclass they can move forward (`use_clock`)."""

    def now(self, tz: timezone) -> datetime:
        return datetime.now(tz)

    def timestamp(self) -> float:
        """Wall-clock seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds that never go back, for intervals and cache lifetimes."""
        return time.monotonic()


_clock = Clock()


def use_clock(clock: Clock) -> Clock:
    """Make `clock` the app's clock; returns the one it replaces."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def timestamp() -> float:
    return _clock.timestamp()


def monotonic() -> float:
    return _clock.monotonic()


def epoch() -> int:
    return int(_clock.timestamp())


def utcnow() -> datetime:
    return _clock.now(timezone.utc)


def beijing_now() -> datetime:
    return _clock.now(BEIJING)


def beijing_today():
    return beijing_now().date()


def as_aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; treat them as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def isoformat_z(value: datetime | None) -> str | None:
    value = as_aware(value)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def isoformat_beijing(value: datetime | None) -> str | None:
    """A time on a hall's clock: Beijing time with its offset ("2026-12-02T09:00:00+08:00")."""
    value = as_aware(value)
    return value.astimezone(BEIJING).isoformat() if value else None
