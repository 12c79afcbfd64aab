"""Submission: 免证办 (licenses from the wallet), 告知承诺, 容缺, 秒批 with license issuance,
idempotency, companies, and bad input that writes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.applications.models import Application, ApplicationEvent, IdempotencyKey
from app.errors import ValidationFailed
from app.extensions import db
from app.identity import registries
from app.security import audit
from app.wallet.models import AccessLogEntry, License
from tests.support.helpers import API, auth_headers
from app.wallet import issuance
from tests.support.helpers import create_staff
from tests.support.statements import statements
from tests.support.applications import (BUSINESS_LICENSE_TYPE, JINAN, JINAN_LIXIA, RESIDENCE_PERMIT,
                                             RESIDENCE_PERMIT_TYPE, TALENT_CARD, TALENT_CARD_TYPE, apply, code,
                                             count_rows, household_book, hukou_body, id_card, issue_license,
                                             new_key, person_in, residence_body, upload)


def test_residence_permit_is_approved_instantly_and_lands_in_the_wallet(client, app):
    alice = person_in(client, app)
    id_license = id_card(app, alice)
    response = apply(client, alice["headers"], residence_body(alice, id_license))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "approved" and body["instant_approval"] is True
    assert body["application_id"].startswith("ap_") and body["deadline"]
    assert response.headers["Location"].endswith(f"/api/v1/applications/{body['application_id']}")
    assert [e["action"] for e in body["timeline"]] == ["submit", "instant_approve"]
    issued = body["issued_license"]["license_id"]
    assert body["result"]["license_id"] == issued
    # the 居住证 is in the applicant's wallet, issued by the department that runs the service
    with app.app_context():
        permit_row = db.session.scalar(db.select(License).where(License.license_id == issued))
        assert permit_row.issuer_name == "济南市公安局历下区分局" and permit_row.issuer_client_id != "platform"
    held = client.get(f"{API}/wallet/licenses", headers=alice["headers"]).get_json()["items"]
    permit = next(item for item in held if item["license_id"] == issued)
    assert permit["license_type"] == RESIDENCE_PERMIT_TYPE and permit["status"] == "valid"
    detail = client.get(f"{API}/wallet/licenses/{issued}?reveal=true", headers=alice["headers"])
    assert detail.status_code == 200, detail.get_json()
    values = {item["name"]: item["value"] for item in detail.get_json()["fields"]}
    assert values["name"] == alice["name"] and values["id_number"] == alice["id_number"]
    assert values["residence_address"] == "济南市历下区泺源大街1号"
    assert values["issuing_authority"] == "济南市公安局历下区分局"
    # the ID card's use is in its access log; the application records the verified reference
    log = client.get(f"{API}/wallet/licenses/{id_license}/access-log", headers=alice["headers"]).get_json()["items"]
    assert any(entry["purpose"] and "居住证签发" in entry["purpose"] for entry in log)
    material = next(m for m in body["materials"] if m["name"] == "居民身份证")
    assert material["satisfied_by"] == {"license_id": id_license}
    assert material["license"]["verified"] is True and material["license"]["identifier"].startswith("1.2.156.3005.2.")
    masked = alice["id_number"][:6] + "********" + alice["id_number"][-4:]
    assert material["license"]["verified_fields"]["id_number"] == masked
    assert next(m for m in body["materials"] if m["name"] == "居住证明")["satisfied_by"] == "commitment"
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any(n["kind"] == "application_status" and n["data"]["application_id"] == body["application_id"]
               and n["data"]["status"] == "approved" for n in inbox)


def test_talent_card_needs_a_person_for_its_uploaded_proof_then_lands_in_the_wallet(client, app):
    """秒批 never passes an uploaded file: the 人才层次认定材料 scan goes to the city hall's staff,
    and the approval issues the card with the category and employer the form gives."""
    alice = person_in(client, app)
    id_license = id_card(app, alice)
    body = {"service_code": code(JINAN, TALENT_CARD),
            "form": {"name": alice["name"], "id_number": alice["id_number"], "phone": alice["phone"],
                     "talent_category": "C类", "employer_name": "山东大学"},
            "materials": [{"name": "居民身份证", "license_id": id_license},
                          {"name": "人才层次认定材料", "file_id": upload(client, alice["headers"])}]}
    form = client.get(f"{API}/services/{body['service_code']}/form", headers=alice["headers"]).get_json()
    assert form["instant_approval"] is False
    response = apply(client, alice["headers"], body)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["status"] == "submitted" and created["issued_license"] is None
    staff = create_staff(app, JINAN, "hall_staff")
    url = f"{API}/applications/{created['application_id']}"
    assert client.post(f"{url}/transitions", headers=staff, json={"action": "accept"}).status_code == 200
    assert client.post(f"{url}/materials/人才层次认定材料/review", headers=staff,
                       json={"decision": "accepted"}).status_code == 200
    approved = client.post(f"{url}/transitions", headers=staff, json={"action": "approve"})
    assert approved.status_code == 200, approved.get_json()
    issued = approved.get_json()["issued_license"]["license_id"]
    with app.app_context():
        license = db.session.scalar(db.select(License).where(License.license_id == issued))
        assert license.license_type_code == TALENT_CARD_TYPE
        assert license.field_values["talent_category"] == "C类" and license.field_values["employer"] == "山东大学"
        assert license.issuer_name == approved.get_json()["department"]


def test_missing_material_blocks_instant_approval_and_gets_a_due_date(client, app):
    alice = person_in(client, app)
    body = residence_body(alice, id_card(app, alice))
    body["materials"][1] = {"name": "居住证明", "missing": True}
    response = apply(client, alice["headers"], body)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["status"] == "submitted" and data["issued_license"] is None
    assert [e["action"] for e in data["timeline"]] == ["submit", "instant_declined"]
    missing = next(m for m in data["materials"] if m["name"] == "居住证明")
    assert missing["missing"] is True and missing["due_date"] >= data["submitted_at"][:10]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(License)
                                 .where(License.license_type_code == RESIDENCE_PERMIT_TYPE)) == 0


def test_severe_discredit_rules_out_commitments(client, app):
    alice = person_in(client, app)
    with app.app_context():
        registries.set_credit(id_or_code=alice["id_number"], credit_class="严重失信")
        db.session.commit()
    form = client.get(f"{API}/services/{code(JINAN_LIXIA, RESIDENCE_PERMIT)}/form", headers=alice["headers"]).get_json()
    proof = next(m for m in form["materials"] if m["name"] == "居住证明")
    assert proof["commitment_allowed"] is False and proof["satisfied_by"] is None
    response = apply(client, alice["headers"], residence_body(alice, id_card(app, alice)))
    assert response.status_code == 422
    assert response.get_json()["errors"]["materials[1]"] == ["申请人信用等级为严重失信，不适用告知承诺制"]
    assert count_rows(app, Application) == 0


def test_material_rules(client, app):
    alice = person_in(client, app)
    id_license = id_card(app, alice)
    no_commitment = residence_body(alice, id_license)
    no_commitment["materials"][0] = {"name": "居民身份证", "commitment": True}
    response = apply(client, alice["headers"], no_commitment)
    assert response.status_code == 422 and "不适用告知承诺制" in response.get_json()["errors"]["materials[0]"][0]
    core_missing = residence_body(alice, id_license)
    core_missing["materials"][0] = {"name": "居民身份证", "missing": True}
    response = apply(client, alice["headers"], core_missing)
    assert response.status_code == 422 and "核心材料" in response.get_json()["errors"]["materials[0]"][0]
    absent = residence_body(alice, id_license)
    absent["materials"] = absent["materials"][:1]
    response = apply(client, alice["headers"], absent)
    assert response.status_code == 422 and "居住证明" in response.get_json()["errors"]["materials"][0]
    duplicate = residence_body(alice, id_license)
    duplicate["materials"].append({"name": "居民身份证", "file_id": upload(client, alice["headers"])})
    response = apply(client, alice["headers"], duplicate)
    assert response.status_code == 422 and "重复" in response.get_json()["errors"]["materials[2].name"][0]
    free_text = residence_body(alice, id_license)
    free_text["materials"][1] = {"name": "居住证明", "attachment": "upload-778"}
    response = apply(client, alice["headers"], free_text)
    assert response.status_code == 422
    assert "居住证明" in response.get_json()["errors"]["materials.1.attachment"][0]
    wrong_type = residence_body(alice, household_book(app, alice))
    response = apply(client, alice["headers"], wrong_type)
    assert response.status_code == 422 and "materials[0].license_id" in response.get_json()["errors"]
    assert count_rows(app, Application) == 0


def test_someone_elses_license_is_404_and_nothing_is_written(client, app):
    alice = person_in(client, app)
    bob = person_in(client, app, name="李四")
    bobs_card = id_card(app, bob)
    with app.app_context():
        before = {model: db.session.scalar(db.select(db.func.count()).select_from(model))
                  for model in (Application, ApplicationEvent, IdempotencyKey, AccessLogEntry)}
    key = new_key()
    response = apply(client, alice["headers"], residence_body(alice, bobs_card), key=key)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    with app.app_context():
        after = {model: db.session.scalar(db.select(db.func.count()).select_from(model)) for model in before}
    assert after == before
    assert client.get(f"{API}/wallet/licenses/{bobs_card}/access-log", headers=bob["headers"]).get_json()["total"] == 0
    # the failed request did not use up the key
    response = apply(client, alice["headers"], residence_body(alice, id_card(app, alice)), key=key)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers


def test_same_key_same_body_replays_the_first_answer(client, app):
    alice = person_in(client, app)
    body, key = hukou_body(alice, app), new_key()
    first = apply(client, alice["headers"], body, key=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = apply(client, alice["headers"], body, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    other = apply(client, alice["headers"], hukou_body(alice, app, move_to_address="济南市历城区1号"), key=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
    assert count_rows(app, Application) == 1
    # keys belong to the subject: another person may use the same key
    bob = person_in(client, app, name="李四")
    assert apply(client, bob["headers"], hukou_body(bob, app), key=key).status_code == 201
    listing = client.get(f"{API}/applications", headers=alice["headers"]).get_json()
    assert listing["total"] == 1 and listing["items"][0]["application_id"] == first.get_json()["application_id"]


def test_an_equivalent_body_replays_and_the_answer_is_the_stored_application(client, app):
    """The fingerprint is taken of the validated request: `"missing": "true"` is `true`, and a
    missing `form` is an empty one. The answer is the application as GET shows it (materials in
    the service's order, whatever the order of the request)."""
    alice = person_in(client, app)
    body, key = hukou_body(alice, app), new_key()
    body["materials"].reverse()
    first = apply(client, alice["headers"], body, key=key)
    assert first.status_code == 201, first.get_json()
    detail = client.get(first.headers["Location"], headers=alice["headers"]).get_json()
    assert first.get_json() == detail
    assert [m["name"] for m in detail["materials"]] == ["居民身份证", "户口簿", "合法稳定住所证明"]
    equivalent = {**body, "materials": [{"missing": "true", "name": "合法稳定住所证明"}, *body["materials"][1:]]}
    again = apply(client, alice["headers"], equivalent, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert apply(client, alice["headers"], {**body, "materials": body["materials"][1:]}, key=key).status_code == 422
    assert count_rows(app, Application) == 1
    no_form = {"service_code": body["service_code"], "materials": body["materials"]}
    key = new_key()
    refused = apply(client, alice["headers"], no_form, key=key)
    assert refused.status_code == 422 and "form.move_type" in refused.get_json()["errors"]
    # a refused request is not remembered; an empty form is the same request as no form
    assert apply(client, alice["headers"], {**no_form, "form": {}}, key=key).status_code == 422


def test_a_submission_looks_up_the_person_acting_once(client, app):
    """Applicant, prefill from the wallet (a masked value sent back) and the license used as a
    material all work with the one person the request resolved."""
    alice = person_in(client, app)
    id_license = id_card(app, alice)
    masked_id = alice["id_number"][:6] + "********" + alice["id_number"][-4:]
    body = residence_body(alice, id_license, id_number=masked_id)
    with statements(app) as seen:
        response = apply(client, alice["headers"], body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["form"]["id_number"] == masked_id
    person_reads = [s for s in seen if "FROM persons" in s and "persons.subject_id =" in s]
    assert len(person_reads) == 1, person_reads


def test_company_applies_for_a_legal_service_with_its_business_license(client, app, company):
    rep, credit_code, headers = company
    business_license = issue_license(app, BUSINESS_LICENSE_TYPE, holder_credit_code=credit_code, fields={
        "entity_name": "山东齐鲁测试有限公司", "legal_representative": "法人甲", "entity_type": "有限责任公司",
        "registered_capital": "100万元", "establish_date": "2020-01-01", "business_term": "长期",
        "domicile": "济南市历下区", "business_scope": "软件开发", "registration_authority": "济南市市场监督管理局",
        "license_number": "370102000000001"})
    form = client.get(f"{API}/services/{code(JINAN_LIXIA, '001405001000')}/form", headers=headers).get_json()
    assert next(m for m in form["materials"] if m["name"] == "营业执照")["satisfied_by"] == {
        "license_id": business_license}
    body = {"service_code": code(JINAN_LIXIA, "001405001000"),
            "form": {"company_name": "山东齐鲁测试有限公司", "credit_code": credit_code, "agent_name": "法人甲",
                     "agent_phone": rep["phone"], "seal_types": next(f for f in form["fields"]
                                                                     if f["name"] == "seal_types")["options"][0]},
            "materials": [{"name": "营业执照", "license_id": business_license},
                          {"name": "法定代表人居民身份证", "file_id": upload(client, headers)}]}
    response = apply(client, headers, body)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["applicant"]["subject_type"] == "legal" and data["applicant"]["name"] == "山东齐鲁测试有限公司"
    assert client.get(f"{API}/applications", headers=headers).get_json()["total"] == 1
    # the representative's personal view does not list the company's applications
    assert client.get(f"{API}/applications", headers=rep["headers"]).get_json()["total"] == 0
    # a credit code other than the company's is refused
    body["form"]["credit_code"] = "91110000600037341L"
    assert apply(client, headers, body).status_code == 422


def test_agent_without_submit_scope_is_403(client, app, company):
    rep, credit_code, _headers = company
    agent = person_in(client, app, name="经办人")
    grant = client.post(f"{API}/enterprises/{credit_code}/agents", headers=rep["headers"], json={
        "id_number": agent["id_number"], "scopes": ["licenses:read"],
        "expires_at": (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()})
    assert grant.status_code == 201, grant.get_json()
    token = client.post(f"{API}/auth/act-as", json={"credit_code": credit_code}, headers=agent["headers"])
    headers = auth_headers(token.get_json()["access_token"])
    response = apply(client, headers, {"service_code": code(JINAN_LIXIA, "001405001000"), "form": {},
                                       "materials": []})
    assert response.status_code == 403
    assert client.get(f"{API}/applications", headers=headers).status_code == 403


def test_applications_are_private(client, app):
    alice = person_in(client, app)
    bob = person_in(client, app, name="李四")
    created = apply(client, alice["headers"], hukou_body(alice, app)).get_json()
    url = f"{API}/applications/{created['application_id']}"
    assert client.get(url, headers=bob["headers"]).status_code == 404
    assert client.get(f"{API}/applications/ap_doesnotexist", headers=bob["headers"]).status_code == 404
    assert client.get(url + "?reveal=true", headers=bob["headers"]).status_code == 404
    mine = client.get(url, headers=alice["headers"])
    assert mine.status_code == 200 and alice["id_number"] not in mine.get_data(as_text=True)
    assert client.get(f"{API}/applications", headers=bob["headers"]).get_json()["total"] == 0
    assert client.get(url).status_code == 401


def _a_second_ago():
    return datetime.now(timezone.utc) - timedelta(seconds=1)


def test_keys_expire_after_24_hours_and_are_purged(client, app):
    alice = person_in(client, app)
    body, key = hukou_body(alice, app), new_key()
    first = apply(client, alice["headers"], body, key=key).get_json()["application_id"]
    assert client.post(f"{API}/applications/{first}/withdraw", headers=alice["headers"]).status_code == 200
    with app.app_context():
        row = db.session.scalar(db.select(IdempotencyKey))
        assert row.expires_at is not None and row.application_id == first
        assert key not in row.key_hash and len(row.fingerprint) == 64
        db.session.execute(db.update(IdempotencyKey).values(expires_at=_a_second_ago()))
        db.session.commit()
    app.extensions["shared_store"].flush()  # Redis forgets the key after the same 24 hours
    second = apply(client, alice["headers"], body, key=key)
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.get_json()["application_id"] != first
    with app.app_context():
        db.session.execute(db.update(IdempotencyKey).values(expires_at=_a_second_ago()))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["applications", "purge-idempotency-keys"])
    assert result.exit_code == 0 and '"deleted": 1' in result.output
    assert count_rows(app, IdempotencyKey) == 0 and count_rows(app, Application) == 2


def test_instant_approval_falls_back_to_staff_when_the_license_cannot_be_issued(client, app, monkeypatch):
    original = issuance.issue
    alice = person_in(client, app)
    card = id_card(app, alice)

    def issue_then_fail(**kwargs):
        original(**kwargs)  # writes the license, its audit entry and a notice ... then fails
        raise ValidationFailed.field("fields.name", "签发失败")

    monkeypatch.setattr(issuance, "issue", issue_then_fail)
    response = apply(client, alice["headers"], residence_body(alice, card))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "submitted" and body["issued_license"] is None
    assert body["timeline"][-1]["action"] == "instant_declined" and "签发失败" in body["timeline"][-1]["comment"]
    with app.app_context():  # the savepoint took the half-issued license away again
        assert db.session.scalar(db.select(db.func.count()).select_from(License)
                                 .where(License.license_type_code == RESIDENCE_PERMIT_TYPE)) == 0
    monkeypatch.setattr(issuance, "issue", original)
    with app.app_context():
        assert audit.verify().ok
