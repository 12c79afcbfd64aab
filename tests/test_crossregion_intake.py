"""全省通办: a hall takes in a cross-region item for another hall and hands it over; both halls list
it, the responsible hall decides it, the result is handed out where it was taken in."""
from __future__ import annotations

from sqlalchemy import select

from app.applications.models import Application
from app.catalogue.models import Service
from app.extensions import db
from tests.support.helpers import API, create_staff
from tests.support.applications import accept_files, upload
from tests.support.window import (HUKOU_MOVE, LIXIA, QINGDAO_SHINAN, SHIZHONG, act, application_row, count,
                                  service_code, staff_member, take_in, walk_in)
from tests.support.world import is_problem

QINGDAO = "370200"  # the city above 青岛市市南区


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["application_id"] for item in response.get_json()["items"]]


def test_the_catalogue_flags_cross_region_items(client, app):
    detail = client.get(f"{API}/services/{service_code(app, LIXIA)}").get_json()
    assert detail["cross_region"] is True
    assert client.get(f"{API}/services/{service_code(app, LIXIA, HUKOU_MOVE)}").get_json()["cross_region"] is False
    with app.app_context():
        flagged = set(db.session.scalars(select(Service.name).where(Service.cross_region.is_(True))))
    assert {"社会保障卡申领", "居住证签发", "居民身份证换领"} <= flagged and "户口迁移" not in flagged


def test_taken_in_at_qingdao_handled_at_lixia_handed_out_at_qingdao(client, app):
    visitor = walk_in(app, region=LIXIA)
    qingdao = staff_member(app, QINGDAO_SHINAN, name="青岛窗口")
    lixia = staff_member(app, LIXIA, name="历下审批")
    scan = upload(client, qingdao["headers"])
    created = take_in(client, qingdao["headers"], visitor, service_code(app, LIXIA), scan)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    application_id = body["application_id"]
    # the scan is the applicant's now; the staff of both halls may still read it, others may not
    assert client.get(f"{API}/files/{scan}", headers=qingdao["headers"]).status_code == 200
    assert client.get(f"{API}/files/{scan}", headers=lixia["headers"]).status_code == 200
    assert client.get(f"{API}/files/{scan}", headers=staff_member(app, SHIZHONG)["headers"]).status_code == 404
    assert body["hall_code"] == LIXIA and body["accepting_hall_code"] == QINGDAO_SHINAN
    assert body["intake"]["staff"]["hall_code"] == QINGDAO_SHINAN
    hand_over = next(e for e in body["timeline"] if e["action"] == "cross_region_hand_over")
    assert hand_over["details"]["from_hall"] == QINGDAO_SHINAN and hand_over["details"]["to_hall"] == LIXIA
    assert [e["action"] for e in body["timeline"]] == ["window_intake", "cross_region_hand_over", "submit"]

    # both halls list it and may read it; only the responsible hall decides
    assert application_id in _ids(client.get(f"{API}/halls/{QINGDAO_SHINAN}/applications", headers=qingdao["headers"]))
    assert application_id in _ids(client.get(f"{API}/halls/{LIXIA}/applications", headers=lixia["headers"]))
    assert client.get(f"{API}/applications/{application_id}", headers=qingdao["headers"]).status_code == 200
    refused = act(client, qingdao["headers"], application_id, "accept")
    assert refused.status_code == 403 and LIXIA in refused.get_json()["detail"]  # it can see it, may not decide
    assert act(client, lixia["headers"], application_id, "accept").status_code == 200
    accept_files(client, lixia["headers"], application_id)
    assert act(client, lixia["headers"], application_id, "approve").status_code == 200
    assert act(client, lixia["headers"], application_id, "dispatch").status_code == 200  # 窗口领取: sent to the window

    # the result waits at the hall that took it in
    assert _ids(client.get(f"{API}/halls/{QINGDAO_SHINAN}/pickups", headers=qingdao["headers"])) == [application_id]
    assert _ids(client.get(f"{API}/halls/{LIXIA}/pickups", headers=lixia["headers"])) == []
    wrong_window = client.post(f"{API}/applications/{application_id}/handovers", headers=lixia["headers"],
                               json={"identity_check": "id_card_reader"})
    assert wrong_window.status_code == 403
    handed = client.post(f"{API}/applications/{application_id}/handovers", headers=qingdao["headers"],
                         json={"identity_check": "face"})
    assert handed.status_code == 200, handed.get_json()
    assert handed.get_json()["pickup_status"] == "handed_over"
    last = handed.get_json()["timeline"][-1]
    assert last["action"] == "handed_over" and last["details"]["pickup_hall"] == QINGDAO_SHINAN
    assert last["details"]["identity_check"] == "face" and last["details"]["staff"]["name"] == "青岛窗口"


def test_the_responsible_hall_can_be_named(client, app):
    visitor = walk_in(app, region=LIXIA)
    qingdao = staff_member(app, QINGDAO_SHINAN)
    own = service_code(app, QINGDAO_SHINAN)
    created = take_in(client, qingdao["headers"], visitor, own, upload(client, qingdao["headers"]),
                      responsible_hall=LIXIA)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["service_code"] == service_code(app, LIXIA)
    assert created.get_json()["accepting_hall_code"] == QINGDAO_SHINAN
    local = take_in(client, qingdao["headers"], walk_in(app, region=QINGDAO_SHINAN, name="孙九"), own,
                    upload(client, qingdao["headers"]))
    assert local.status_code == 201 and local.get_json()["accepting_hall_code"] is None
    assert local.get_json()["hall_code"] == QINGDAO_SHINAN


def test_what_cannot_cross_regions(client, app):
    visitor = walk_in(app, region=LIXIA)
    qingdao = staff_member(app, QINGDAO_SHINAN)
    scan = upload(client, qingdao["headers"])
    not_cross = take_in(client, qingdao["headers"], visitor, service_code(app, LIXIA, HUKOU_MOVE), scan)
    assert not_cross.status_code == 422 and list(not_cross.get_json()["errors"]) == ["service_code"]
    nowhere = take_in(client, qingdao["headers"], visitor, service_code(app, LIXIA), scan, responsible_hall="379999")
    assert nowhere.status_code == 422 and list(nowhere.get_json()["errors"]) == ["responsible_hall"]
    not_mine = take_in(client, qingdao["headers"], visitor, service_code(app, LIXIA), scan, accepting_hall=LIXIA)
    assert not_mine.status_code == 422 and list(not_mine.get_json()["errors"]) == ["accepting_hall"]
    assert count(app, Application) == 0


def _review(client, headers, application_id, decision="accepted", reason=None):
    return client.post(f"{API}/applications/{application_id}/materials/居民身份证/review", headers=headers,
                       json={"decision": decision, **({"reason": reason} if reason else {})})


def _refused_as_the_accepting_hall(response, what: str) -> None:
    assert response.status_code == 403 and is_problem(response, 403), response.get_json()
    body = response.get_json()
    assert body["detail"].startswith("全省通办") and what in body["detail"]
    assert (body["hall_code"], body["accepting_hall_code"]) == (LIXIA, QINGDAO_SHINAN)


def test_the_accepting_hall_sees_it_but_gets_403_for_every_decision_and_others_get_404(client, app):
    visitor = walk_in(app, region=LIXIA)
    qingdao = staff_member(app, QINGDAO_SHINAN, name="青岛窗口")
    lixia = staff_member(app, LIXIA, name="历下审批")
    city_admin = create_staff(app, QINGDAO, role="hall_admin")  # acts for the county halls of 青岛
    stranger = staff_member(app, SHIZHONG)
    created = take_in(client, qingdao["headers"], visitor, service_code(app, LIXIA), upload(client, qingdao["headers"]))
    application_id = created.get_json()["application_id"]
    version = application_row(app, application_id).version

    for headers in (qingdao["headers"], city_admin):
        assert client.get(f"{API}/applications/{application_id}", headers=headers).status_code == 200
        _refused_as_the_accepting_hall(act(client, headers, application_id, "accept"), "受理")
        _refused_as_the_accepting_hall(act(client, headers, application_id, "reject", "材料不全"), "不予办理")
        _refused_as_the_accepting_hall(act(client, headers, application_id, "request_more", "请补正"), "要求补正")
        _refused_as_the_accepting_hall(_review(client, headers, application_id), "材料审核")
    # staff who cannot see it learn nothing, not even that it exists
    for response in (act(client, stranger["headers"], application_id, "accept"),
                     _review(client, stranger["headers"], application_id)):
        assert response.status_code == 404 and is_problem(response, 404)
        assert LIXIA not in response.get_json()["detail"] and "全省通办" not in response.get_json()["detail"]
    unknown = act(client, qingdao["headers"], "a_00000000000000000000", "accept")
    assert unknown.status_code == 404
    row = application_row(app, application_id)
    assert (row.status, row.version) == ("submitted", version)  # nothing was written by the refusals
    detail = client.get(f"{API}/applications/{application_id}", headers=lixia["headers"]).get_json()
    assert [m["review"] for m in detail["materials"]] == ["pending"]

    # the responsible hall reviews and decides; at the end the accepting hall still only reads
    assert _review(client, lixia["headers"], application_id).status_code == 200
    assert act(client, lixia["headers"], application_id, "accept").status_code == 200
    _refused_as_the_accepting_hall(act(client, qingdao["headers"], application_id, "approve"), "办结")
    assert act(client, lixia["headers"], application_id, "approve").status_code == 200
    _refused_as_the_accepting_hall(act(client, qingdao["headers"], application_id, "dispatch"), "寄出")
