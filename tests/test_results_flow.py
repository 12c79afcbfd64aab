"""Results of applications: every approval (秒批 or by staff) leaves a decision sealed by the
issuing department (pyHanko's validator is the oracle) that the applicant and the handling staff
download; a produced license is issued by that department's key with fields from the
application and the registries; rejected and withdrawn applications are archived too; results
are posted (tracking number on the timeline) or picked up."""
from __future__ import annotations

import io

import jwt
from pyhanko.pdf_utils.reader import PdfFileReader

from app.applications import outcomes
from app.applications.models import Application
from app.extensions import db
from app.identity.models import ApiClient
from app.results import documents
from app.results.models import ArchivePackage, DecisionDocument
from app.security.models import SigningKey
from app.wallet.models import License
from tests.support.helpers import API, create_staff
from tests.support.applications import (JINAN_LIXIA, JINAN_SHIZHONG, accept_files, apply, code, count_rows,
                                             hukou_body, id_card, person_in, residence_body)
from tests.support.seals import oracle, pdftotext, published_root
SOCIAL_SECURITY_CARD = "002011001000"
INSURANCE_RECORD = "002011005000"
ID_CARD = "11100000000013100M001"


def _act(client, headers, application_id, action, **body):
    return client.post(f"{API}/applications/{application_id}/transitions", json={"action": action, **body},
                       headers=headers)


def _card_body(person, card, **form):
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "bank_name": "中国银行", "delivery_method": "窗口领取", **form}
    return {"service_code": code(JINAN_LIXIA, SOCIAL_SECURITY_CARD), "form": values,
            "materials": [{"name": "居民身份证", "license_id": card}]}


def _signing_purpose(app, license_id) -> str:
    with app.app_context():
        license = db.session.scalar(db.select(License).where(License.license_id == license_id))
        kid = jwt.get_unverified_header(license.credential.split("~")[0])["kid"]
        return db.session.get(SigningKey, kid).purpose


def test_an_instant_approval_leaves_a_sealed_decision_for_the_applicant_and_the_staff(client, app, inline_jobs):
    alice = person_in(client, app, name="王小明")
    created = apply(client, alice["headers"], residence_body(alice, id_card(app, alice)))
    assert created.status_code == 201 and created.get_json()["status"] == "approved", created.get_json()
    detail = client.get(f"{API}/applications/{created.get_json()['application_id']}", headers=alice["headers"])
    result = detail.get_json()["result"]
    assert result["decision"] == "approved" and result["license_id"] == created.get_json()["issued_license"]["license_id"]
    assert result["document_url"].startswith("/api/v1/files/f_") and result["revoked"] is False
    document = client.get(result["document_url"], headers=alice["headers"])
    assert document.status_code == 200 and document.mimetype == "application/pdf"
    pdf = document.data
    status = oracle(pdf, published_root(client))
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.signing_cert.subject.native["common_name"] == "济南市公安局历下区分局"
    text = pdftotext(pdf)
    for words in ("准予办理决定书", "王小明", "居住证签发", "济南市公安局历下区分局", created.get_json()["application_id"]):
        assert words in text, words
    altered = bytearray(pdf)
    altered[len(pdf) // 3] ^= 0x01
    assert not oracle(bytes(altered), published_root(client)).intact
    # the handling hall's staff may download it too; nobody else
    assert client.get(result["document_url"], headers=create_staff(app, JINAN_LIXIA, "hall_staff")).status_code == 200
    for outsider in (create_staff(app, JINAN_SHIZHONG, "hall_staff"), person_in(client, app, name="李四")["headers"]):
        assert client.get(result["document_url"], headers=outsider).status_code == 404
    # the final application is archived with its decision, reviewed materials and timeline
    with app.app_context():
        package = db.session.scalar(db.select(ArchivePackage))
        decision = db.session.scalar(db.select(DecisionDocument))
        assert package.application_id == created.get_json()["application_id"] and package.retention == "永久"
        assert decision.sha256 in package.manifest and "instant_approve" in package.manifest
        assert '"review":"verified"' in package.manifest and '"review":"committed"' in package.manifest
    verified = app.test_cli_runner().invoke(args=["archive", "verify", "--files"])
    assert verified.exit_code == 0, verified.output


def test_a_manual_approval_issues_the_license_signed_by_the_department(client, app, inline_jobs):
    alice = person_in(client, app)
    card = id_card(app, alice)
    created = apply(client, alice["headers"], _card_body(alice, card))
    assert created.status_code == 201 and created.get_json()["status"] == "submitted", created.get_json()
    application_id = created.get_json()["application_id"]
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    assert _act(client, staff, application_id, "accept").status_code == 200
    approved = _act(client, staff, application_id, "approve", comment="准予办理")
    assert approved.status_code == 200, approved.get_json()
    department = approved.get_json()["department"]
    license_id = approved.get_json()["result"]["license_id"]
    assert license_id and approved.get_json()["timeline"][-1]["details"]["license_id"] == license_id
    wallet = client.get(f"{API}/wallet/licenses/{license_id}?reveal=true", headers=alice["headers"])
    assert wallet.status_code == 200, wallet.get_json()
    values = {item["name"]: item["value"] for item in wallet.get_json()["fields"]}
    assert values["name"] == alice["name"] and values["id_number"] == alice["id_number"]
    assert values["bank"] == "中国银行" and values["issuing_authority"] == department
    with app.app_context():
        license = db.session.scalar(db.select(License).where(License.license_id == license_id))
        client_row = db.session.scalar(db.select(ApiClient).where(ApiClient.client_id == license.issuer_client_id))
        assert client_row.kind == "issuer" and client_row.name == department
        assert license.issuer_credit_code == client_row.credit_code and client_row.credit_code in license.identifier
    assert _signing_purpose(app, license_id) == f"issuer:{license.issuer_client_id}" != "issuer:platform"
    # the license verifies like any other: the verifier sees the department as its issuer
    code_ = client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=alice["headers"],
                        json={"disclose": ["name"], "purpose": "银行开户", "mode": "online"}).get_json()["code"]
    answer = client.post(f"{API}/verifications", json={"code": code_}).get_json()
    assert answer["valid"] is True and answer["issuer"] == department
    # and the decision names the approval
    document = client.get(approved.get_json()["result"]["document_url"], headers=alice["headers"])
    assert "准予办理决定书" in pdftotext(document.data)
    assert PdfFileReader(io.BytesIO(document.data)).embedded_signatures


def test_what_only_the_department_knows_is_typed_in_by_staff_never_made_up(client, app):
    alice = person_in(client, app)
    card = id_card(app, alice)
    body = {"service_code": code(JINAN_LIXIA, INSURANCE_RECORD),
            "form": {"name": alice["name"], "id_number": alice["id_number"], "phone": alice["phone"],
                     "insurance_type": "全部险种", "query_period": "近12个月"},
            "materials": [{"name": "居民身份证", "license_id": card}]}
    created = apply(client, alice["headers"], body).get_json()
    assert created["status"] == "submitted" and created["instant_approval"] is False
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    application_id = created["application_id"]
    assert _act(client, staff, application_id, "accept").status_code == 200
    bare = _act(client, staff, application_id, "approve")
    assert bare.status_code == 422
    assert set(bare.get_json()["errors"]) == {f"license_fields.{name}" for name in
                                              ("insurance_types", "insured_status", "payment_months", "employer")}
    invented = _act(client, staff, application_id, "approve", license_fields={"favourite_food": "煎饼"})
    assert invented.status_code == 422 and "license_fields.favourite_food" in invented.get_json()["errors"]
    known = {"insurance_types": "企业职工基本养老保险", "insured_status": "正常参保", "payment_months": 86,
             "employer": "山东齐鲁测试有限公司"}
    wrong_type = _act(client, staff, application_id, "approve", license_fields={**known, "payment_months": "很多"})
    assert wrong_type.status_code == 422 and "license_fields.payment_months" in wrong_type.get_json()["errors"]
    assert client.get(f"{API}/applications/{application_id}", headers=staff).get_json()["status"] == "accepted"
    approved = _act(client, staff, application_id, "approve", license_fields=known)
    assert approved.status_code == 200, approved.get_json()
    with app.app_context():
        license = db.session.scalar(db.select(License).where(
            License.license_id == approved.get_json()["issued_license"]["license_id"]))
        assert {name: license.field_values[name] for name in known} == known
        assert license.field_values["name"] == alice["name"]


def test_rejected_and_withdrawn_applications_are_archived(client, app, inline_jobs):
    alice = person_in(client, app)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    rejected = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert _act(client, staff, rejected, "reject", comment="迁入地址不符合落户条件").status_code == 200
    withdrawn = apply(client, alice["headers"], hukou_body(alice, app)).get_json()["application_id"]
    assert client.post(f"{API}/applications/{withdrawn}/withdraw", headers=alice["headers"]).status_code == 200
    result = client.get(f"{API}/applications/{rejected}", headers=alice["headers"]).get_json()["result"]
    assert result["decision"] == "rejected" and result["license_id"] is None
    text = pdftotext(client.get(result["document_url"], headers=alice["headers"]).data)
    assert "不予办理决定书" in text and "迁入地址不符合落户条件" in text
    assert client.get(f"{API}/applications/{withdrawn}", headers=alice["headers"]).get_json()["result"] is None
    with app.app_context():
        packages = {row.application_id: row for row in db.session.scalars(db.select(ArchivePackage))}
        assert set(packages) == {rejected, withdrawn}
        assert '"final_status":"withdrawn"' in packages[withdrawn].manifest
        assert '"decision":null' in packages[withdrawn].manifest
    # a lost job is made up for by `flask applications settle`; settling again changes nothing
    settled = app.test_cli_runner().invoke(args=["applications", "settle"])
    assert settled.exit_code == 0 and '"settled": 0' in settled.output
    assert count_rows(app, ArchivePackage) == 2


def test_the_settle_command_does_what_a_lost_job_did_not(client, app, monkeypatch):
    monkeypatch.setattr(outcomes, "enqueue", lambda *args, **kwargs: None)  # the job is lost
    alice = person_in(client, app)
    created = apply(client, alice["headers"], residence_body(alice, id_card(app, alice))).get_json()
    assert created["status"] == "approved" and created["result"]["document_url"] is None
    assert count_rows(app, ArchivePackage) == 0
    settled = app.test_cli_runner().invoke(args=["applications", "settle"])
    assert settled.exit_code == 0 and '"settled": 1' in settled.output
    result = client.get(f"{API}/applications/{created['application_id']}", headers=alice["headers"]).get_json()["result"]
    assert result["document_url"] and count_rows(app, ArchivePackage) == 1


def test_a_decision_that_cannot_be_made_where_the_job_runs_leaves_the_approval_and_settles_later(
        client, app, inline_jobs, monkeypatch, caplog):
    installed = documents.FONT_CANDIDATES
    monkeypatch.setattr(documents, "FONT_CANDIDATES", ("/nonexistent/font.ttc",))  # a laptop without a CJK font
    alice = person_in(client, app)
    created = apply(client, alice["headers"], residence_body(alice, id_card(app, alice)))
    assert created.status_code == 201 and created.get_json()["status"] == "approved", created.get_json()
    assert created.get_json()["result"]["document_url"] is None
    assert "fonts-wqy-microhei" in caplog.text and "flask applications settle" in caplog.text
    assert count_rows(app, ArchivePackage) == count_rows(app, DecisionDocument) == 0  # nothing half-written
    monkeypatch.setattr(documents, "FONT_CANDIDATES", installed)  # the font is installed
    settled = app.test_cli_runner().invoke(args=["applications", "settle"])
    assert settled.exit_code == 0 and '"settled": 1' in settled.output
    result = client.get(f"{API}/applications/{created.get_json()['application_id']}",
                        headers=alice["headers"]).get_json()["result"]
    assert "准予办理决定书" in pdftotext(client.get(result["document_url"], headers=alice["headers"]).data)


def test_results_are_posted_with_a_tracking_number_or_picked_up(client, app):
    alice, bob = person_in(client, app), person_in(client, app, name="李四")
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    posted = apply(client, alice["headers"], _card_body(alice, id_card(app, alice), delivery_method="邮政寄递",
                                                        mail_address="济南市历下区泉城路1号")).get_json()["application_id"]
    pickup = apply(client, bob["headers"], _card_body(bob, id_card(app, bob))).get_json()["application_id"]
    for application_id in (posted, pickup):
        assert _act(client, staff, application_id, "dispatch").status_code == 409  # nothing decided yet
        assert _act(client, staff, application_id, "accept").status_code == 200
        accept_files(client, staff, application_id)
        assert _act(client, staff, application_id, "approve").status_code == 200
    no_number = _act(client, staff, posted, "dispatch")
    assert no_number.status_code == 422 and "tracking_number" in no_number.get_json()["errors"]
    bad_number = _act(client, staff, posted, "dispatch", tracking_number="<script>")
    assert bad_number.status_code == 422 and "tracking_number" in bad_number.get_json()["errors"]
    assert client.post(f"{API}/applications/{posted}/transitions", headers=alice["headers"],
                       json={"action": "dispatch", "tracking_number": "1234567890"}).status_code == 403
    sent = _act(client, staff, posted, "dispatch", tracking_number="EMS1180012345CN")
    assert sent.status_code == 200 and sent.get_json()["status"] == "approved"
    mine = client.get(f"{API}/applications/{posted}", headers=alice["headers"]).get_json()
    assert mine["timeline"][-1]["action"] == "dispatch"
    assert mine["timeline"][-1]["details"] == {"delivery": "邮政寄递", "tracking_number": "EMS1180012345CN"}
    assert mine["result"]["delivery"] == {"method": "邮政寄递", "tracking_number": "EMS1180012345CN", "dispatched": True}
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any("EMS1180012345CN" in note["body"] for note in inbox)
    assert _act(client, staff, pickup, "dispatch", tracking_number="EMS1180012345CN").status_code == 422
    ready = _act(client, staff, pickup, "dispatch")
    assert ready.status_code == 200 and ready.get_json()["timeline"][-1]["details"] == {"delivery": "窗口领取"}
    with app.app_context():
        assert db.session.scalar(db.select(Application.status).where(Application.application_id == pickup)) == "approved"
