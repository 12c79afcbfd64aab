"""Working-day deadlines on the official Chinese calendar (chinesecalendar 1.11.0 knows 2004-2026)."""
from __future__ import annotations

import logging
from datetime import date

import pytest

from app.applications import deadlines, submission
from app.applications.deadlines import add_working_days, in_calendar_range, is_working_day, working_days_between
from tests.support.helpers import API
from tests.support.applications import HUKOU_MOVE, JINAN_LIXIA, apply, code, hukou_body, person_in

# Working days after Wednesday 2026-09-30, as the State Council's 2026 arrangement has them:
# 10-01..10-07 National Day (10-01..10-03 and 10-05..10-07 are weekdays off), Saturday 10-10 is
# an adjusted working day (调休上班), Sunday 10-11 is an ordinary weekend day.
AFTER_2026_09_30 = ["2026-10-08", "2026-10-09", "2026-10-10", "2026-10-12", "2026-10-13", "2026-10-14",
                    "2026-10-15", "2026-10-16", "2026-10-19", "2026-10-20", "2026-10-21", "2026-10-22"]


def test_national_day_2026_is_skipped_and_the_adjusted_saturday_counts():
    start = date(2026, 9, 30)
    assert [add_working_days(start, n).isoformat() for n in range(1, 13)] == AFTER_2026_09_30
    assert add_working_days(start, 5) == date(2026, 10, 13)
    assert not is_working_day(date(2026, 10, 1)) and not is_working_day(date(2026, 10, 7))
    assert is_working_day(date(2026, 10, 10))  # Saturday, 调休上班
    assert not is_working_day(date(2026, 10, 11))


def test_spring_festival_2026():
    # 2026-02-15 .. 02-23 off; Saturdays 02-14 and 02-28 are working days
    assert is_working_day(date(2026, 2, 14))
    assert add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert is_working_day(date(2026, 2, 28))


def test_zero_days_is_the_day_itself_and_between_counts_working_days():
    assert add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 3)
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 13)) == 5
    assert working_days_between(date(2026, 10, 13), date(2026, 9, 30)) == -5
    with pytest.raises(ValueError):
        add_working_days(date(2026, 1, 5), -1)


def test_beyond_the_calendar_falls_back_to_weekdays_and_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(deadlines, "_fallback_warned", False)
    assert not in_calendar_range(date(2031, 1, 1))
    with caplog.at_level(logging.WARNING, logger="app.applications.deadlines"):
        # Friday 2031-01-03 + 1 -> Monday 01-06 (New Year's Day of 2031 is unknown to the package)
        assert add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 6)
        assert add_working_days(date(2031, 1, 1), 5) == date(2031, 1, 8)
        assert is_working_day(date(2031, 1, 1))
    warnings = [r for r in caplog.records if r.name == "app.applications.deadlines"]
    assert len(warnings) == 1 and "Monday-Friday" in warnings[0].getMessage()


def test_a_count_crossing_into_an_unknown_year():
    # 2026-12-31 (Thursday) + 2: 2027-01-01 is a Friday the package does not know -> counted
    assert add_working_days(date(2026, 12, 31), 2) == date(2027, 1, 4)


def test_application_deadline_skips_national_day(client, app, monkeypatch):
    """Submitted on 2026-09-30 (Beijing): the deadline counts promised_limit_days working days."""
    monkeypatch.setattr(submission, "beijing_today", lambda: date(2026, 9, 30))
    alice = person_in(client, app)
    form = client.get(f"{API}/services/{code(JINAN_LIXIA, HUKOU_MOVE)}/form", headers=alice["headers"]).get_json()
    days = form["promised_limit_days"]
    assert days >= 5
    response = apply(client, alice["headers"], hukou_body(alice, app))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["deadline"] == AFTER_2026_09_30[days - 1]
    missing = next(m for m in response.get_json()["materials"] if m["missing"])
    assert missing["due_date"] == "2026-10-13"  # 容缺: 5 working days
