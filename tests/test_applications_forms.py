"""Forms: prefill from the profile, earlier applications and the wallet; validation of what is
entered; oversize and unknown input is rejected with nothing written."""
from __future__ import annotations

from app.applications.models import Application, IdempotencyKey
from app.extensions import db
from app.security.models import AuditEvent
from tests.support.helpers import API
from tests.support.applications import (HUKOU_MOVE, JINAN, JINAN_LIXIA, RESIDENCE_PERMIT, apply, code,
                                             count_rows, hukou_body, id_card, new_key, person_in, residence_body)

RESIDENCE_FORM = f"{API}/services/{code(JINAN_LIXIA, RESIDENCE_PERMIT)}/form"
TALENT_SETTLEMENT = "000705007000"  # 人才引进落户: shares `move_to_address` with 户口迁移


def _fields(body):
    return {item["name"]: item for item in body["fields"]}


def test_form_prefilled_from_profile_and_wallet(client, app):
    alice = person_in(client, app)
    license_id = id_card(app, alice, address="山东省济南市历下区泺源大街2号")
    response = client.get(RESIDENCE_FORM, headers=alice["headers"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    fields = _fields(body)
    assert fields["name"]["prefill"] == "张三" and fields["name"]["prefill_source"] == "profile"
    masked_id = alice["id_number"][:6] + "********" + alice["id_number"][-4:]
    assert fields["id_number"]["prefill"] == masked_id and fields["id_number"]["type"] == "id_number"
    assert fields["phone"]["prefill"] == alice["phone"][:3] + "****" + alice["phone"][-4:]
    assert fields["address"] == {"name": "address", "label": "现居住地址", "type": "text", "required": True,
                                 "prefill": "山东省济南市历下区泺源大街2号", "prefill_source": "wallet"}
    assert fields["residence_reason"]["options"] == ["就业", "就读", "居住", "其他"]
    assert fields["residence_start"]["prefill"] is None
    materials = {m["name"]: m for m in body["materials"]}
    assert materials["居民身份证"]["satisfied_by"] == {"license_id": license_id}
    assert materials["居住证明"]["satisfied_by"] == "commitment"
    assert materials["居民身份证"]["missing_allowed"] is False and materials["居住证明"]["missing_allowed"] is True
    assert body["instant_approval"] is True
    text = response.get_data(as_text=True)
    assert alice["id_number"] not in text and alice["phone"] not in text


def test_reveal_gives_the_holder_full_values_and_is_audited(client, app):
    alice = person_in(client, app)
    body = client.get(RESIDENCE_FORM + "?reveal=true", headers=alice["headers"]).get_json()
    fields = _fields(body)
    assert fields["id_number"]["prefill"] == alice["id_number"] and fields["phone"]["prefill"] == alice["phone"]
    with app.app_context():
        events = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == "pii.revealed")).all()
        assert any(e.subject_id == alice["subject_id"] for e in events)


def test_masked_prefill_sent_back_is_replaced_by_the_full_value(client, app):
    alice = person_in(client, app)
    fields = _fields(client.get(f"{API}/services/{code(JINAN_LIXIA, HUKOU_MOVE)}/form",
                                headers=alice["headers"]).get_json())
    body = hukou_body(alice, app, id_number=fields["id_number"]["prefill"], phone=fields["phone"]["prefill"])
    response = apply(client, alice["headers"], body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["form"]["id_number"] == fields["id_number"]["prefill"]
    detail = client.get(f"{API}/applications/{response.get_json()['application_id']}?reveal=true",
                        headers=alice["headers"]).get_json()
    assert detail["form"]["id_number"] == alice["id_number"] and detail["form"]["phone"] == alice["phone"]
    # a masked value that is not the prefilled one is no ID number at all
    wrong = hukou_body(alice, app, id_number="110105********002X")
    bad = apply(client, alice["headers"], wrong)
    assert bad.status_code == 422 and "form.id_number" in bad.get_json()["errors"]


def test_pii_of_forms_is_stored_encrypted(client, app):
    alice = person_in(client, app)
    response = apply(client, alice["headers"], hukou_body(alice, app))
    assert response.status_code == 201
    with app.app_context():
        row = db.session.scalar(db.select(Application))
        assert alice["id_number"] not in str(row.form_data) and alice["phone"] not in str(row.form_data)
        assert alice["id_number"] not in row.form_pii_enc
        assert row.form["id_number"] == alice["id_number"]


def test_earlier_applications_prefill_the_same_field_name(client, app):
    alice = person_in(client, app)
    id_card(app, alice, address="山东省济南市历下区泺源大街2号")
    first = apply(client, alice["headers"], hukou_body(alice, app, move_to_address="济南市市中区经七路9号"))
    assert first.status_code == 201, first.get_json()
    later = _fields(client.get(f"{API}/services/{code(JINAN, TALENT_SETTLEMENT)}/form",
                               headers=alice["headers"]).get_json())
    assert later["move_to_address"]["prefill"] == "济南市市中区经七路9号"
    assert later["move_to_address"]["prefill_source"] == "history"
    # what the applicant typed last time outranks the license for the same field name
    lic = client.get(RESIDENCE_FORM, headers=alice["headers"]).get_json()
    assert _fields(lic)["address"]["prefill_source"] == "wallet"


def test_company_form_prefills_company_and_agent(client, app, company):
    rep, credit_code, headers = company
    response = client.get(f"{API}/services/{code(JINAN_LIXIA, '001405001000')}/form", headers=headers)
    assert response.status_code == 200, response.get_json()
    fields = _fields(response.get_json())
    assert fields["company_name"]["prefill"] == "山东齐鲁测试有限公司"
    assert fields["credit_code"]["prefill"] == credit_code
    assert fields["agent_name"]["prefill"] == "法人甲"
    assert fields["agent_phone"]["prefill"] == rep["phone"][:3] + "****" + rep["phone"][-4:]


def test_unknown_service_is_404_and_writes_nothing(client, app):
    alice = person_in(client, app)
    assert client.get(f"{API}/services/370102-999999999000/form", headers=alice["headers"]).status_code == 404
    body = {"service_code": "370102-999999999000", "form": {}, "materials": []}
    response = apply(client, alice["headers"], body)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert count_rows(app, Application) == 0 and count_rows(app, IdempotencyKey) == 0


def test_form_values_are_validated_against_the_field_definitions(client, app):
    alice = person_in(client, app)
    license_id = id_card(app, alice)
    cases = [
        ({"unknown_field": "x"}, "form.unknown_field"),
        ({"address": None}, "form.address"),
        ({"address": "   "}, "form.address"),
        ({"address": "历下区\x7f经十路"}, "form.address"), ({"address": "历下区\x1b[31m"}, "form.address"),  # DEL, C0
        ({"residence_start": "2024/03/01"}, "form.residence_start"),
        ({"residence_start": "2024-02-30"}, "form.residence_start"),
        ({"residence_reason": "旅游"}, "form.residence_reason"),
        ({"id_number": alice["id_number"][:17] + ("0" if alice["id_number"][17] != "0" else "1")}, "form.id_number"),
        ({"phone": "1234"}, "form.phone"),
        ({"name": {"nested": 1}}, "form.name"),
        ({"address": 12}, None),  # a number is accepted as text
    ]
    for overrides, field in cases:
        response = apply(client, alice["headers"], residence_body(alice, license_id, **overrides))
        if field is None:
            assert response.status_code == 201, response.get_json()
            continue
        assert response.status_code == 422, (overrides, response.get_json())
        assert field in response.get_json()["errors"], (overrides, response.get_json())
    assert count_rows(app, Application) == 1


def test_number_fields(client, app, company):
    _rep, credit_code, headers = company
    # 单位社会保险参保登记: staff_count is a number
    base = {"service_code": code(JINAN_LIXIA, "002011017000"), "materials": []}
    form = {"company_name": "山东齐鲁测试有限公司", "credit_code": credit_code, "agent_name": "法人甲",
            "agent_phone": "13800138000", "bank_account_name": "山东齐鲁测试有限公司",
            "bank_account_number": "6222020200112233445"}
    spec = client.get(f"{API}/services/{base['service_code']}/form", headers=headers).get_json()
    numbers = [f["name"] for f in spec["fields"] if f["type"] == "number"]
    assert numbers
    for value in ("abc", True, "NaN"):
        body = {**base, "form": {**form, **{name: value for name in numbers}}}
        response = apply(client, headers, body)
        assert response.status_code == 422 and f"form.{numbers[0]}" in response.get_json()["errors"], value


def test_applying_in_someone_elses_name_is_422(client, app):
    alice = person_in(client, app)
    bob = person_in(client, app, name="李四")
    response = apply(client, alice["headers"], hukou_body(alice, app, id_number=bob["id_number"]))
    assert response.status_code == 422
    assert response.get_json()["errors"]["form.id_number"] == ["公民身份号码须为申请人（经办人）本人的公民身份号码"]


def test_oversize_forms_are_rejected(client, app):
    alice = person_in(client, app)
    license_id = id_card(app, alice)
    many = residence_body(alice, license_id)
    many["form"].update({f"extra_{i}": "x" for i in range(60)})
    response = apply(client, alice["headers"], many)
    assert response.status_code == 422 and "form" in response.get_json()["errors"]
    long_value = residence_body(alice, license_id, address="长" * 501)
    response = apply(client, alice["headers"], long_value)
    assert response.status_code == 422 and "form.address" in response.get_json()["errors"]
    huge = residence_body(alice, license_id, address="x" * (app.config["MAX_CONTENT_LENGTH"] + 10))
    response = apply(client, alice["headers"], huge)
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/problem+json")
    too_many_materials = residence_body(alice, license_id)
    too_many_materials["materials"] = [{"name": f"材料{i}", "commitment": True} for i in range(51)]
    assert apply(client, alice["headers"], too_many_materials).status_code == 422
    assert count_rows(app, Application) == 0


def test_request_shape(client, app):
    alice = person_in(client, app)
    license_id = id_card(app, alice)
    body = residence_body(alice, license_id)
    response = client.post(f"{API}/applications", json=body, headers=alice["headers"])
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"Idempotency-Key": ["缺少必填请求头"]}
    assert apply(client, alice["headers"], {**body, "status": "approved"}).get_json()["errors"] == {
        "status": ["不允许的字段"]}
    unknown_material = residence_body(alice, license_id)
    unknown_material["materials"].append({"name": "营业执照", "file_id": "f_" + "0" * 20})
    response = apply(client, alice["headers"], unknown_material)
    assert response.status_code == 422 and "materials[2].name" in response.get_json()["errors"]
    two_ways = residence_body(alice, license_id)
    two_ways["materials"][1] = {"name": "居住证明", "commitment": True, "file_id": "f_" + "0" * 20}
    assert apply(client, alice["headers"], two_ways).status_code == 422
    assert client.post(f"{API}/applications", json=body, headers={"Idempotency-Key": new_key()}).status_code == 401
    assert count_rows(app, Application) == 0


def test_audience_mismatch_is_422(client, app, company):
    alice = person_in(client, app)
    seal = {"service_code": code(JINAN_LIXIA, "001405001000"), "form": {}, "materials": []}
    response = apply(client, alice["headers"], seal)
    assert response.status_code == 422 and "service_code" in response.get_json()["errors"]
    _rep, _code, headers = company
    response = apply(client, headers, hukou_body(alice, app))
    assert response.status_code == 422 and "service_code" in response.get_json()["errors"]
