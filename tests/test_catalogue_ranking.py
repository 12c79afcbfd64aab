"""The 50 high-frequency items come from application counts (`flask catalogue rank-high-frequency`, a monthly
job), falling back to the reference list while there are too few applications."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from app.applications.models import Application
from app.catalogue import ranking
from app.catalogue.halls import high_frequency_items
from app.catalogue.models import Service
from app.extensions import db
from tests.support.catalogue import API

REFERENCE_FIRST = "居民身份证换领"


def _base(name: str) -> str:
    return db.session.scalars(select(Service.base_code).where(Service.name == name)).first()


def _applications(base_code: str, count: int, *, days_ago: int = 1, bundle_parent: bool = False) -> None:
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    for _ in range(count):
        number = db.session.scalar(select(func.count()).select_from(Application)) + 1
        db.session.add(Application(
            application_id=f"a_rank{number:08d}", subject_id="p_rank", subject_type="person", actor_id="p_rank",
            service_code=None if bundle_parent else f"370102-{base_code}", base_code=base_code,
            service_name="x", bundle_code="newborn" if bundle_parent else None, hall_code="370102",
            status="submitted", submitted_at=when, created_at=when, updated_at=when))
        db.session.flush()
    db.session.commit()


def test_too_few_applications_keep_the_reference_list(app, catalogue_guard):  # noqa: F811
    with app.app_context():
        _applications(_base("犬类准养证核发"), 3)
        result = ranking.rank_high_frequency(min_applications=10)
        assert result["source"] == "reference" and result["applications"] == 3 and result["changed"] == 0
        assert high_frequency_items()[0][2] == REFERENCE_FIRST and len(high_frequency_items()) == 50


def test_ranks_follow_application_counts(app, client, catalogue_guard):  # noqa: F811
    with app.app_context():
        dog, hotel, first = _base("犬类准养证核发"), _base("旅馆业特种行业许可证核发"), _base(REFERENCE_FIRST)
        _applications(dog, 12)
        _applications(hotel, 7)
        _applications(first, 5)
        _applications(hotel, 40, days_ago=60)  # outside the window
        _applications(dog, 30, bundle_parent=True)  # bundle parents are not applications for the item
        result = ranking.rank_high_frequency(days=30, min_applications=20)
        assert result["source"] == "applications" and result["applications"] == 24
        assert result["top"][:3] == [dog, hotel, first]
        items = high_frequency_items()
        assert len(items) == 50 and [base for _, base, _ in items[:3]] == [dog, hotel, first]
        ranks = dict(db.session.execute(select(Service.base_code, func.min(Service.high_frequency_rank))
                                        .where(Service.base_code.in_([dog, hotel])).group_by(Service.base_code)).all())
        assert ranks == {dog: 1, hotel: 2}
        assert db.session.scalar(select(func.count(func.distinct(Service.base_code))).where(
            Service.high_frequency_rank.is_not(None))) == 50
    listed = client.get(f"{API}/services", query_string={"high_frequency": "true", "page_size": 100}).get_json()
    assert {item["base_code"] for item in listed["items"]} >= {dog, hotel}
    with app.app_context():  # the same counts again change nothing
        assert ranking.rank_high_frequency(days=30, min_applications=20)["changed"] == 0


def test_cli_falls_back_and_the_monthly_job_is_due_next_month(app, catalogue_guard):  # noqa: F811
    result = app.test_cli_runner().invoke(args=["catalogue", "rank-high-frequency", "--min-applications", "100000"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "reference"
    now = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
    assert ranking.seconds_to_next_month(now) == int((datetime(2027, 1, 1, 2, tzinfo=timezone.utc) - now)
                                                     .total_seconds())
