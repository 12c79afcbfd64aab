"""Working days of the official Chinese calendar (法定节假日 and 调休 working days).

Deadlines of applications (办理时限), 容缺 material due dates, rating windows and
rectification tickets are counted in working days. The calendar comes from the
`chinesecalendar` package (pinned 1.11.0), which knows the State Council's holiday
arrangements up to and including 2026: public holidays are days off even on weekdays,
and adjusted working days (调休上班, e.g. Saturday 2026-10-10) are working days.

For dates outside the package's range (a later year whose arrangement it does not know
yet) the count falls back to Monday-Friday and logs one warning per process; upgrade the
pin when the State Council publishes the next year's arrangement (usually in November).

"N working days after D" starts counting on the day after D: submitted on Wednesday
2026-09-30 with 5 working days, the deadline is Tuesday 2026-10-13 (10-01..10-07 National
Day, 10-08, 10-09, 10-10 (adjusted Saturday), 10-12, 10-13). Zero days means D itself.
"""
from __future__ import annotations

import logging
import threading
from datetime import date, timedelta

import chinese_calendar

logger = logging.getLogger("app.applications.deadlines")

_fallback_warned = False
_warn_lock = threading.Lock()


def _warn_fallback(day: date) -> None:
    global _fallback_warned
    with _warn_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    logger.warning("chinesecalendar %s does not know %s: counting Monday-Friday as working days "
                   "(holidays of that year are not taken into account)",
                   getattr(chinese_calendar, "__version__", "?"), day.isoformat())


def in_calendar_range(day: date) -> bool:
    """Whether the official calendar data covers `day`."""
    try:
        chinese_calendar.is_workday(day)
        return True
    except NotImplementedError:
        return False


def is_working_day(day: date) -> bool:
    """A working day of the official calendar (Mon-Fri outside its range, with a warning)."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        _warn_fallback(day)
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date `days` working days after `start` (start itself when `days` is 0)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            left -= 1
    return current


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]; negative when `end` is before `start`."""
    if end < start:
        return -working_days_between(end, start)
    count, current = 0, start
    while current < end:
        current += timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count
