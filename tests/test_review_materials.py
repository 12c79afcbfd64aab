"""Uploaded files as materials: only the applicant's own, used by nobody else, kept once attached,
readable by the handling staff; staff review each material; request_more names what to provide
again; resubmission rounds on the timeline; bad uploads and bad resubmissions write nothing."""
from __future__ import annotations

import io
import os
from datetime import timedelta

from app.applications.models import Application, ApplicationMaterial
from app.extensions import db
from app.files import service as files
from app.files.models import StoredFile
from app.timeutil import utcnow
from tests.support.helpers import API, create_staff
from tests.support.applications import (JINAN_LIXIA, JINAN_SHIZHONG, accept_files, apply, count_rows, hukou_body,
                                             id_card, pdf_scan, person_in, residence_body, upload)
from tests.support.files import HTML, SVG, png_bomb, png_declaring


def _act(client, headers, application_id, action, comment=None, **extra):
    body = {"action": action, **({"comment": comment} if comment is not None else {}), **extra}
    return client.post(f"{API}/applications/{application_id}/transitions", json=body, headers=headers)


def _review(client, headers, application_id, name, decision, reason=None):
    body = {"decision": decision, **({"reason": reason} if reason is not None else {})}
    return client.post(f"{API}/applications/{application_id}/materials/{name}/review", json=body, headers=headers)


def _material(body, name):
    return next(m for m in body["materials"] if m["name"] == name)


def test_an_attached_file_is_kept_and_readable_by_the_handling_staff_only(client, app):
    alice = person_in(client, app)
    scan = pdf_scan("household book of alice")
    book = upload(client, alice["headers"], scan)
    body = hukou_body(alice, app)
    body["materials"][1] = {"name": "户口簿", "file_id": book}
    created = apply(client, alice["headers"], body)
    assert created.status_code == 201, created.get_json()
    material = _material(created.get_json(), "户口簿")
    assert material["kind"] == "file" and material["file_id"] == book and material["review"] == "pending"
    assert material["satisfied_by"] == {"file_id": book}
    staff, county_admin = create_staff(app, JINAN_LIXIA, "hall_staff"), create_staff(app, "370100", "hall_admin")
    for reader in (alice["headers"], staff, county_admin):
        response = client.get(f"{API}/files/{book}", headers=reader)
        assert response.status_code == 200 and response.mimetype == "application/pdf" and response.data == scan
    other_hall = create_staff(app, JINAN_SHIZHONG, "hall_staff")
    bob = person_in(client, app, name="李四")
    for outsider in (other_hall, bob["headers"]):
        response = client.get(f"{API}/files/{book}", headers=outsider)
        assert response.status_code == 404 and response.get_json()["detail"] == "文件不存在"
    with app.app_context():  # attached: the collection job of unattached files keeps it
        row = db.session.get(StoredFile, book)
        assert row.attached_at is not None and row.attached_to == f"application:{created.get_json()['application_id']}"
        files.collect_unattached(now=utcnow() + timedelta(days=30))
        assert db.session.get(StoredFile, book) is not None


def test_another_persons_file_is_422_like_a_file_that_does_not_exist_and_nothing_is_written(client, app):
    alice, bob = person_in(client, app), person_in(client, app, name="李四")
    bobs = upload(client, bob["headers"])
    answers = []
    for file_id in (bobs, "f_" + "0" * 20):
        body = hukou_body(alice, app)
        body["materials"][0] = {"name": "居民身份证", "file_id": file_id}
        response = apply(client, alice["headers"], body)
        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["errors"]) == ["materials[0].file_id"]
        answers.append(response.get_json()["errors"]["materials[0].file_id"][0].replace(file_id, "<id>"))
    assert answers[0] == answers[1] and "不存在或不属于申请人" in answers[0]  # nothing tells bob's file exists
    assert count_rows(app, Application) == 0 and count_rows(app, ApplicationMaterial) == 0
    with app.app_context():
        assert db.session.get(StoredFile, bobs).attached_at is None
    malformed = hukou_body(alice, app)
    malformed["materials"][0] = {"name": "居民身份证", "file_id": "../../etc/passwd"}
    response = apply(client, alice["headers"], malformed)
    assert response.status_code == 422 and "materials.0.file_id" in response.get_json()["errors"]


def test_a_file_already_used_in_another_persons_application_is_refused(client, app):
    """A file reaches another person's application only through a hall window (staff upload
    for the applicant); the owner can then not reuse it in their own application."""
    alice, bob = person_in(client, app), person_in(client, app, name="李四")
    created = apply(client, bob["headers"], hukou_body(bob, app)).get_json()
    shared = upload(client, alice["headers"])
    with app.app_context():
        row = db.session.scalar(db.select(ApplicationMaterial).join(Application).where(
            Application.application_id == created["application_id"], ApplicationMaterial.name == "户口簿"))
        row.file_id = shared
        db.session.commit()
    body = hukou_body(alice, app)
    body["materials"][1] = {"name": "户口簿", "file_id": shared}
    response = apply(client, alice["headers"], body)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"materials[1].file_id": ["该文件已用于他人的申请，请上传您自己的文件"]}
    assert count_rows(app, Application) == 1
    # one person may use a file in several of their own applications
    scan = upload(client, alice["headers"])
    first = residence_body(alice, id_card(app, alice))
    first["materials"][1] = {"name": "居住证明", "file_id": scan}
    assert apply(client, alice["headers"], first).status_code == 201
    body["materials"][1] = {"name": "户口簿", "file_id": scan}
    assert apply(client, alice["headers"], body).status_code == 201


def test_staff_review_each_material_and_approval_waits_for_the_files(client, app):
    alice = person_in(client, app)
    created = apply(client, alice["headers"], hukou_body(alice, app)).get_json()
    application_id = created["application_id"]
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    other_hall = create_staff(app, JINAN_SHIZHONG, "hall_staff")
    assert _review(client, other_hall, application_id, "户口簿", "accepted").status_code == 404
    assert _review(client, alice["headers"], application_id, "户口簿", "accepted").status_code == 403
    assert _review(client, staff, application_id, "结婚证", "accepted").status_code == 404
    assert _review(client, staff, application_id, "合法稳定住所证明", "accepted").status_code == 409  # 容缺
    no_reason = _review(client, staff, application_id, "户口簿", "rejected")
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"]
    assert _review(client, staff, application_id, "户口簿", "maybe").status_code == 422
    assert _act(client, staff, application_id, "accept").status_code == 200
    blocked = _act(client, staff, application_id, "approve")
    assert blocked.status_code == 409
    assert blocked.get_json()["blocking"] == ["材料「居民身份证」（上传的文件）尚未审核", "材料「户口簿」（上传的文件）尚未审核"]
    assert _review(client, staff, application_id, "居民身份证", "accepted").status_code == 200
    rejected = _review(client, staff, application_id, "户口簿", "rejected", "照片模糊，无法辨认户号")
    assert rejected.status_code == 200
    book = _material(rejected.get_json(), "户口簿")
    assert book["review"] == "rejected" and book["review_reason"] == "照片模糊，无法辨认户号"
    assert book["review_label"] == "审核不通过"
    # request_more asks again for the rejected one by default
    more = _act(client, staff, application_id, "request_more", "请重新上传清晰的户口簿")
    assert more.status_code == 200, more.get_json()
    assert _material(more.get_json(), "户口簿")["requested"] is True
    assert _material(more.get_json(), "居民身份证")["requested"] is False
    assert more.get_json()["timeline"][-1]["details"]["materials"] == ["户口簿"]
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any("户口簿" in note["body"] for note in inbox if note["data"].get("status") == "request_more")
    review_events = [e for e in more.get_json()["timeline"] if e["action"] == "review"]
    assert [e["details"]["material"] for e in review_events] == ["居民身份证", "户口簿"]


def test_resubmission_rounds_and_its_refusals(client, app):
    alice = person_in(client, app)
    application_id = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    url = f"{API}/applications/{application_id}/resubmissions"
    assert _act(client, staff, application_id, "request_more", "补充材料", materials=["户口簿", "结婚证书"]).status_code == 422
    assert _act(client, staff, application_id, "request_more", "请补齐户口簿和住所证明",
                materials=["户口簿", "合法稳定住所证明"]).status_code == 200
    before = client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).get_json()
    # every material asked for must come back, and not as 容缺 again
    partial = client.post(url, headers=alice["headers"], json={
        "materials": [{"name": "户口簿", "file_id": upload(client, alice["headers"])}]})
    assert partial.status_code == 422
    assert partial.get_json()["errors"] == {"materials": ["请重新提供以下材料：合法稳定住所证明"]}
    lazy = client.post(url, headers=alice["headers"], json={"materials": [
        {"name": "户口簿", "file_id": upload(client, alice["headers"])}, {"name": "合法稳定住所证明", "missing": True}]})
    assert lazy.status_code == 422 and list(lazy.get_json()["errors"]) == ["materials[1]"]
    bob = person_in(client, app, name="李四")
    stolen = client.post(url, headers=alice["headers"], json={"materials": [
        {"name": "户口簿", "file_id": upload(client, bob["headers"])},
        {"name": "合法稳定住所证明", "commitment": True}]})
    assert stolen.status_code == 422 and "materials[0].file_id" in stolen.get_json()["errors"]
    assert client.post(url, headers=bob["headers"], json={}).status_code == 404
    unchanged = client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).get_json()
    assert unchanged["version"] == before["version"] and unchanged["materials"] == before["materials"]
    # a proper resubmission: round 2, back to submitted, the new file waits for review
    new_book = upload(client, alice["headers"])
    again = client.post(url, headers=alice["headers"], json={
        "form": {"move_reason": "投靠亲属"},
        "materials": [{"name": "户口簿", "file_id": new_book}, {"name": "合法稳定住所证明", "commitment": True}]})
    assert again.status_code == 200, again.get_json()
    data = again.get_json()
    assert data["status"] == "submitted" and data["round"] == 2 and data["form"]["move_reason"] == "投靠亲属"
    book = _material(data, "户口簿")
    assert book["file_id"] == new_book and book["round"] == 2 and book["review"] == "pending"
    assert not book["requested"] and _material(data, "居民身份证")["round"] == 1
    rounds = [(e["action"], e["details"].get("round")) for e in data["timeline"]]
    assert rounds == [("submit", 1), ("request_more", None), ("resubmit", 2)]
    assert data["timeline"][-1]["details"]["materials"] == ["户口簿", "合法稳定住所证明"]
    # and once approved, no more resubmissions
    assert _act(client, staff, application_id, "accept").status_code == 200
    accept_files(client, staff, application_id)
    assert _act(client, staff, application_id, "approve").status_code == 200
    done = client.post(url, headers=alice["headers"], json={
        "materials": [{"name": "户口簿", "file_id": upload(client, alice["headers"])}]})
    assert done.status_code == 409 and done.get_json()["detail"] == "办件当前状态为「已办结（准予）」，不能补正"
    assert done.mimetype == "application/problem+json"


def test_bad_uploads_are_refused_naming_the_file_and_leave_nothing(client, app):
    alice = person_in(client, app)
    root = app.config["FILE_STORAGE_DIR"]
    stored_before = sum(len(names) for _, _, names in os.walk(root)) if os.path.isdir(root) else 0
    cases = [(b"", "empty.pdf", 422), (SVG, "scan.pdf", 415), (HTML, "scan.png", 415),
             (b"just some text, not a scan", "scan.jpg", 415), (png_declaring(100000, 100000), "bomb.png", 422),
             (png_bomb(), "bomb2.png", 422), (pdf_scan("x")[:200], "truncated.pdf", 422)]
    for data, name, status in cases:
        response = client.post(f"{API}/files", data={"file": (io.BytesIO(data), name)}, headers=alice["headers"],
                               content_type="multipart/form-data")
        assert response.status_code == status, (name, response.get_json())
        problem = response.get_json()
        assert list(problem["errors"]) == ["file"] and any("\u4e00" <= ch <= "\u9fff" for ch in problem["detail"])
    too_big = client.post(f"{API}/files", data={"file": (io.BytesIO(b"%PDF-1.7\n" + b"0" * (10 * 1024 * 1024)),
                                                         "big.pdf")},
                          headers=alice["headers"], content_type="multipart/form-data")
    assert too_big.status_code == 413 and "file" in too_big.get_json()["errors"]
    assert count_rows(app, StoredFile) == 0
    stored_after = sum(len(names) for _, _, names in os.walk(root)) if os.path.isdir(root) else 0
    assert stored_after == stored_before
