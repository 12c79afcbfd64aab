"""好差评: one rating per completed application within 5 working days, content check, hall
summaries, and rectification tickets for bad ratings."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.applications.models import Application
from app.evaluations.models import Evaluation, RectificationTicket
from app.extensions import db
from tests.support.helpers import API, create_staff
from tests.support.applications import (JINAN, JINAN_LIXIA, JINAN_SHIZHONG, apply, count_rows, hukou_body,
                                             id_card, person_in, residence_body)


def _approved(client, app, person=None):
    """An application approved at once (居住证 秒批) at 370102."""
    person = person or person_in(client, app)
    response = apply(client, person["headers"], residence_body(person, id_card(app, person)))
    assert response.status_code == 201 and response.get_json()["status"] == "approved", response.get_json()
    return person, response.get_json()["application_id"]


def _rate(client, headers, application_id, rating=5, **extra):
    return client.post(f"{API}/applications/{application_id}/evaluation", headers=headers,
                       json={"rating": rating, **extra})


def test_rating_once_after_completion(client, app):
    alice = person_in(client, app)
    pending = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert _rate(client, alice["headers"], pending).status_code == 409  # not final yet
    _alice, done = _approved(client, app, alice)
    response = _rate(client, alice["headers"], done, 5, comment="办理很快", dimensions={
        "efficiency": 5, "guide_accuracy": 4, "convenience": 5, "attitude": 5})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["rating"] == 5 and body["rating_label"] == "非常满意" and body["rectification"] is None
    assert body["application_id"] == done and body["dimensions"]["guide_accuracy"] == 4
    assert _rate(client, alice["headers"], done, 4).status_code == 409  # twice
    assert client.get(f"{API}/applications/{done}/evaluation", headers=alice["headers"]).get_json()["rating"] == 5
    assert count_rows(app, Evaluation) == 1 and count_rows(app, RectificationTicket) == 0


def test_rejected_applications_can_be_rated_withdrawn_ones_cannot(client, app):
    alice = person_in(client, app)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    rejected = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert client.post(f"{API}/applications/{rejected}/transitions", headers=staff,
                       json={"action": "reject", "comment": "不符合落户条件"}).status_code == 200
    assert _rate(client, alice["headers"], rejected, 3).status_code == 201
    withdrawn = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert client.post(f"{API}/applications/{withdrawn}/withdraw", headers=alice["headers"]).status_code == 200
    assert _rate(client, alice["headers"], withdrawn, 3).status_code == 409


def test_rating_window_is_five_working_days(client, app):
    alice, done = _approved(client, app)
    with app.app_context():
        db.session.execute(db.update(Application).where(Application.application_id == done)
                           .values(completed_at=datetime.now(timezone.utc) - timedelta(days=30)))
        db.session.commit()
    response = _rate(client, alice["headers"], done)
    assert response.status_code == 422 and "5个工作日" in response.get_json()["detail"]
    assert count_rows(app, Evaluation) == 0


def test_bad_input_and_other_peoples_applications(client, app):
    alice, done = _approved(client, app)
    bob = person_in(client, app, name="李四")
    assert _rate(client, bob["headers"], done).status_code == 404
    assert _rate(client, alice["headers"], "ap_doesnotexist").status_code == 404
    for body in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": 5, "dimensions": {"speed": 5}},
                 {"rating": 5, "dimensions": {"attitude": 9}}, {"rating": 5, "comment": "长" * 501},
                 {"rating": 5, "extra": 1}, {}):
        response = client.post(f"{API}/applications/{done}/evaluation", headers=alice["headers"], json=body)
        assert response.status_code == 422, body
    assert client.post(f"{API}/applications/{done}/evaluation", json={"rating": 5}).status_code == 401
    assert count_rows(app, Evaluation) == 0


def test_comment_must_pass_the_content_check(client, app, monkeypatch):
    import miniprograms.content as content
    seen = []

    def check(subject_id, text):
        seen.append((subject_id, text))
        return "违规" not in text

    monkeypatch.setattr(content, "check_published_text", check)
    alice, done = _approved(client, app)
    response = _rate(client, alice["headers"], done, 1, comment="违规内容")
    assert response.status_code == 422 and "comment" in response.get_json()["errors"]
    assert count_rows(app, Evaluation) == 0 and count_rows(app, RectificationTicket) == 0
    assert seen == [(alice["subject_id"], "违规内容")]
    assert _rate(client, alice["headers"], done, 4, comment="很好").status_code == 201


def test_a_bad_rating_opens_a_ticket_the_hall_admin_works_and_closes(client, app):
    alice, done = _approved(client, app)
    response = _rate(client, alice["headers"], done, 1, comment="等了很久", dimensions={"efficiency": 1})
    assert response.status_code == 201
    ticket = response.get_json()["rectification"]
    assert ticket["status"] == "open" and ticket["due_date"]
    admin = create_staff(app, JINAN_LIXIA, "hall_admin")
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    city_admin = create_staff(app, JINAN, "hall_admin")
    other_admin = create_staff(app, JINAN_SHIZHONG, "hall_admin")
    url = f"{API}/halls/{JINAN_LIXIA}/rectifications"
    listing = client.get(url, headers=admin)
    assert listing.status_code == 200
    item = listing.get_json()["items"][0]
    assert {k: item[k] for k in ("ticket_id", "application_id", "service_code", "rating", "status", "due_date")} == {
        "ticket_id": ticket["ticket_id"], "application_id": done, "service_code": "370102-000705015000",
        "rating": 1, "status": "open", "due_date": ticket["due_date"]}
    assert listing.get_json()["total"] == 1 and listing.get_json()["page"] == 1
    assert client.get(url, headers=city_admin).get_json()["total"] == 1
    assert client.get(url, headers=staff).status_code == 403
    assert client.get(url, headers=other_admin).status_code == 403
    assert client.get(url, headers=alice["headers"]).status_code == 403
    ticket_url = f"{API}/rectifications/{ticket['ticket_id']}"
    assert client.post(ticket_url + "/follow-ups", headers=other_admin, json={"note": "x"}).status_code == 404
    assert client.post(ticket_url + "/follow-ups", headers=alice["headers"], json={"note": "x"}).status_code == 404
    followed = client.post(ticket_url + "/follow-ups", headers=admin, json={"note": "已约谈窗口人员"})
    assert followed.status_code == 201 and followed.get_json()["follow_ups"][0]["note"] == "已约谈窗口人员"
    assert client.post(ticket_url + "/follow-ups", headers=admin, json={"note": ""}).status_code == 422
    closed = client.post(ticket_url + "/close", headers=admin, json={"resolution": "已优化流程并致歉"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    assert client.post(ticket_url + "/close", headers=admin, json={"resolution": "again"}).status_code == 409
    assert client.post(ticket_url + "/follow-ups", headers=admin, json={"note": "late"}).status_code == 409
    assert client.get(url + "?status=open", headers=admin).get_json()["total"] == 0
    assert client.get(url + "?status=closed", headers=admin).get_json()["total"] == 1
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any("已优化流程并致歉" in n["body"] for n in inbox)
    assert client.get(f"{API}/halls/999999/rectifications", headers=admin).status_code == 404


@pytest.mark.parametrize("rating, ticket", [(2, True), (3, False)])
def test_which_ratings_open_tickets(client, app, rating, ticket):
    alice, done = _approved(client, app)
    assert _rate(client, alice["headers"], done, rating).status_code == 201
    assert count_rows(app, RectificationTicket) == (1 if ticket else 0)


def test_summary_per_hall_and_service(client, app):
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    ratings = []
    for rating in (5, 4, 1):
        person, done = _approved(client, app)
        ratings.append(_rate(client, person["headers"], done, rating).status_code)
    person = person_in(client, app)
    other = apply(client, person["headers"], hukou_body(person, app)).get_json()["application_id"]
    assert client.post(f"{API}/applications/{other}/transitions", headers=staff,
                       json={"action": "reject", "comment": "不符合条件"}).status_code == 200
    ratings.append(_rate(client, person["headers"], other, 2).status_code)
    assert ratings == [201] * 4
    summary = client.get(f"{API}/halls/{JINAN_LIXIA}/evaluations/summary")
    assert summary.status_code == 200
    body = summary.get_json()
    assert body["hall_code"] == JINAN_LIXIA and body["total"] == 4
    assert body["counts"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 1}
    assert body["satisfaction_rate"] == 0.5
    by_service = {item["service_code"]: item for item in body["by_service"]}
    assert by_service["370102-000705015000"]["counts"] == {"1": 1, "2": 0, "3": 0, "4": 1, "5": 1}
    assert by_service["370102-000705015000"]["satisfaction_rate"] == 0.6667
    assert by_service["370102-000705006000"]["total"] == 1
    one = client.get(f"{API}/halls/{JINAN_LIXIA}/evaluations/summary?service_code=370102-000705015000").get_json()
    assert one["total"] == 3 and [s["service_code"] for s in one["by_service"]] == ["370102-000705015000"]
    empty = client.get(f"{API}/halls/{JINAN_SHIZHONG}/evaluations/summary").get_json()
    assert empty["total"] == 0 and empty["satisfaction_rate"] == 0.0 and empty["by_service"] == []
    assert client.get(f"{API}/halls/999999/evaluations/summary").status_code == 404
