"""受审分离: the front desk accepts, the deciding department works its queue and decides, results go
back to one pickup window; staff records carry a department."""
from __future__ import annotations

import json

from sqlalchemy import select

from app.identity.models import StaffAssignment
from app.extensions import db
from tests.support.helpers import API, valid_id_number
from tests.support.applications import accept_files, upload
from tests.support.window import (HUKOU_MOVE, LIXIA, SHIZHONG, act, department_of, service_code, staff_member,
                                  take_in, walk_in)
from tests.support.world import is_problem


def _queue(client, headers, department, hall=LIXIA, **params):
    return client.get(f"{API}/halls/{hall}/queues/{department}", headers=headers, query_string=params)


def _intake(client, app, desk, code=None):
    code = code or service_code(app, LIXIA)
    response = take_in(client, desk["headers"], walk_in(app), code, upload(client, desk["headers"]))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["application_id"]


def test_front_desk_accepts_department_decides_pickup_window_hands_out(client, app):
    code = service_code(app, LIXIA)
    department = department_of(app, code)  # 济南市历下区人力资源和社会保障局
    other_department = department_of(app, service_code(app, LIXIA, HUKOU_MOVE))  # the police
    desk = staff_member(app, LIXIA, name="前台")
    decider = staff_member(app, LIXIA, department=department, name="人社审批")
    police = staff_member(app, LIXIA, department=other_department, name="公安审批")
    application_id = _intake(client, app, desk, code)

    refused = act(client, decider["headers"], application_id, "accept")
    assert refused.status_code == 403 and "综合受理窗口" in refused.get_json()["detail"]
    accepted = act(client, desk["headers"], application_id, "accept")
    assert accepted.status_code == 200
    routed = accepted.get_json()["timeline"][-1]
    assert routed["action"] == "routed" and routed["details"] == {"department": department}

    queue = _queue(client, decider["headers"], department)
    assert queue.status_code == 200 and [i["application_id"] for i in queue.get_json()["items"]] == [application_id]
    assert queue.get_json()["items"][0]["department"] == department
    assert _queue(client, police["headers"], other_department).get_json()["total"] == 0

    accept_files(client, decider["headers"], application_id)
    assert act(client, desk["headers"], application_id, "approve").status_code == 403  # the department decides
    assert act(client, police["headers"], application_id, "approve").status_code == 403  # another department
    assert act(client, desk["headers"], application_id, "reject", "不符合条件").status_code == 403
    approved = act(client, decider["headers"], application_id, "approve")
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert _queue(client, decider["headers"], department).get_json()["total"] == 0

    # the front desk releases the result to the pickup window and hands it over there
    assert act(client, decider["headers"], application_id, "dispatch").status_code == 403
    released = act(client, desk["headers"], application_id, "dispatch")
    assert released.status_code == 200 and released.get_json()["pickup_status"] == "ready"
    pickups = client.get(f"{API}/halls/{LIXIA}/pickups", headers=desk["headers"]).get_json()
    assert [i["application_id"] for i in pickups["items"]] == [application_id]
    assert pickups["items"][0]["pickup_status"] == "ready"
    handed = client.post(f"{API}/applications/{application_id}/handovers", headers=desk["headers"],
                         json={"identity_check": "id_card_reader", "comment": "本人领取"})
    assert handed.status_code == 200 and handed.get_json()["pickup_status"] == "handed_over"
    assert handed.get_json()["timeline"][-1]["comment"] == "本人领取"
    again = client.post(f"{API}/applications/{application_id}/handovers", headers=desk["headers"],
                        json={"identity_check": "id_card_reader"})
    assert again.status_code == 409
    assert act(client, desk["headers"], application_id, "dispatch").get_json()["pickup_status"] == "handed_over"
    assert client.get(f"{API}/halls/{LIXIA}/pickups", headers=desk["headers"]).get_json()["total"] == 0


def test_without_department_staff_the_front_desk_decides_and_admins_always_may(client, app):
    code = service_code(app, LIXIA)
    desk = staff_member(app, LIXIA)
    admin = staff_member(app, LIXIA, role="hall_admin", name="王管理")
    first = _intake(client, app, desk, code)
    assert act(client, desk["headers"], first, "accept").get_json()["timeline"][-1]["action"] == "accept"  # not routed
    accept_files(client, desk["headers"], first)
    assert act(client, desk["headers"], first, "approve").status_code == 200

    staff_member(app, LIXIA, department=department_of(app, code), name="人社审批")
    second = _intake(client, app, desk, code)
    assert act(client, desk["headers"], second, "accept").status_code == 200
    accept_files(client, admin["headers"], second)  # the department reviews now (or an admin)
    assert act(client, desk["headers"], second, "approve").status_code == 403
    assert act(client, admin["headers"], second, "approve").status_code == 200


def _review(client, headers, application_id, decision="accepted", reason=None):
    return client.post(f"{API}/applications/{application_id}/materials/居民身份证/review", headers=headers,
                       json={"decision": decision, **({"reason": reason} if reason else {})})


def _reviews(client, headers, application_id) -> list:
    detail = client.get(f"{API}/applications/{application_id}", headers=headers).get_json()
    return [(m["review"], m["review_reason"]) for m in detail["materials"]]


def test_only_the_deciding_department_reviews_materials_once_accepted(client, app):
    code = service_code(app, LIXIA)
    department = department_of(app, code)
    other_department = department_of(app, service_code(app, LIXIA, HUKOU_MOVE))
    desk = staff_member(app, LIXIA, name="前台")
    decider = staff_member(app, LIXIA, department=department, name="人社审批")
    police = staff_member(app, LIXIA, department=other_department, name="公安审批")
    application_id = _intake(client, app, desk, code)

    early = _review(client, decider["headers"], application_id)  # not yet accepted by the front desk
    assert early.status_code == 403 and is_problem(early, 403) and "受理后" in early.get_json()["detail"]
    assert act(client, desk["headers"], application_id, "accept").status_code == 200

    wrong_department = _review(client, police["headers"], application_id, "rejected", "照片模糊")
    assert wrong_department.status_code == 403 and is_problem(wrong_department, 403)
    assert department in wrong_department.get_json()["detail"]
    assert other_department in wrong_department.get_json()["detail"]
    front_desk = _review(client, desk["headers"], application_id, "rejected", "照片模糊")
    assert front_desk.status_code == 403 and department in front_desk.get_json()["detail"]
    assert _reviews(client, desk["headers"], application_id) == [("pending", None)]  # nothing written
    for action, comment in (("reject", "不符合条件"), ("request_more", "请补正"), ("approve", None)):
        assert act(client, police["headers"], application_id, action, comment).status_code == 403, action

    reviewed = _review(client, decider["headers"], application_id, "rejected", "照片模糊")
    assert reviewed.status_code == 200, reviewed.get_json()
    assert _reviews(client, desk["headers"], application_id) == [("rejected", "照片模糊")]
    assert act(client, decider["headers"], application_id, "request_more", "请重新上传身份证").status_code == 200


def test_nothing_to_hand_over_and_who_may_see_the_queues(client, app):
    code = service_code(app, LIXIA)
    department = department_of(app, code)
    desk = staff_member(app, LIXIA)
    elsewhere = staff_member(app, SHIZHONG)
    application_id = _intake(client, app, desk, code)
    not_ready = client.post(f"{API}/applications/{application_id}/handovers", headers=desk["headers"],
                            json={"identity_check": "documents"})
    assert not_ready.status_code == 409
    assert client.post(f"{API}/applications/{application_id}/handovers", headers=elsewhere["headers"],
                       json={"identity_check": "documents"}).status_code == 404
    assert client.post(f"{API}/applications/{application_id}/handovers", headers=desk["headers"],
                       json={}).status_code == 422
    assert _queue(client, elsewhere["headers"], department).status_code == 403
    assert _queue(client, desk["headers"], "不存在的部门").status_code == 404
    assert _queue(client, desk["headers"], department, hall="379999").status_code == 404
    assert _queue(client, desk["headers"], department, status="nonsense").status_code == 422
    submitted = _queue(client, desk["headers"], department, status="submitted").get_json()
    assert [i["application_id"] for i in submitted["items"]] == [application_id]


def test_staff_create_with_a_department(app):
    runner = app.test_cli_runner()
    code = service_code(app, LIXIA)
    department = department_of(app, code)
    id_number = valid_id_number()
    base = ["staff", "create", "--role", "hall_staff", "--hall", LIXIA, "--id-number", id_number, "--name", "人社审批",
            "--password", "Passw0rd2025"]
    unknown = runner.invoke(args=base + ["--department", "不存在的部门"])
    assert unknown.exit_code != 0
    made = runner.invoke(args=base + ["--department", department])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["department"] == department
    with app.app_context():
        rows = db.session.scalars(select(StaffAssignment).where(StaffAssignment.hall_code == LIXIA)).all()
        assert [(row.role, row.department) for row in rows] == [("hall_staff", department)]
