"""秒批 only when a machine checked everything: licenses held by the person the form names, the
form matching the population registry, commitments the credit class allows, no uploaded file;
afterwards a sample is checked (抽查) and a false commitment revokes the result and its license
and lowers the applicant's credit class."""
from __future__ import annotations

from app.extensions import db
from app.identity import persons, registries
from app.results.models import DecisionDocument
from tests.support.helpers import API, create_staff, minor_id_number
from tests.support.applications import (JINAN_LIXIA, JINAN_SHIZHONG, RESIDENCE_PERMIT, apply, code, id_card,
                                             issue_license, ID_CARD_TYPE, person_in, residence_body, upload)

BIRTH_CERTIFICATE = "002017001000"  # 出生医学证明签发: 母亲 / 父亲居民身份证 as materials


def _declined_because(response) -> str:
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "submitted" and body["issued_license"] is None
    assert body["timeline"][-1]["action"] == "instant_declined"
    return body["timeline"][-1]["comment"]


def test_the_form_says_where_instant_approval_can_apply(client, app):
    alice = person_in(client, app)
    permit = client.get(f"{API}/services/{code(JINAN_LIXIA, RESIDENCE_PERMIT)}/form", headers=alice["headers"])
    assert permit.get_json()["instant_approval"] is True
    for base in ("002011005000", "002013006000", "002019003000", "002012005000"):  # data only the department has
        form = client.get(f"{API}/services/{code(JINAN_LIXIA, base)}/form", headers=alice["headers"])
        assert form.status_code == 200 and form.get_json()["instant_approval"] is False, base


def test_an_uploaded_file_always_goes_to_a_person(client, app):
    alice = person_in(client, app)
    body = residence_body(alice, id_card(app, alice))
    body["materials"][1] = {"name": "居住证明", "file_id": upload(client, alice["headers"])}
    assert "上传的文件" in _declined_because(apply(client, alice["headers"], body))


def test_a_commitment_passes_only_for_a_clean_credit_record(client, app):
    alice = person_in(client, app)
    with app.app_context():
        registries.set_credit(id_or_code=alice["id_number"], credit_class="轻微失信")
        db.session.commit()
    reason = _declined_because(apply(client, alice["headers"], residence_body(alice, id_card(app, alice))))
    assert "轻微失信" in reason and "告知承诺" in reason


def test_the_form_must_match_the_population_registry(client, app):
    alice = person_in(client, app)
    body = residence_body(alice, id_card(app, alice), name="张叁")
    assert "人口库" in _declined_because(apply(client, alice["headers"], body))


def test_a_childs_card_cannot_stand_for_the_applicants_own(client, app):
    """The wallet lets a guardian show their minor child's licenses; as the applicant's own
    居民身份证 the child's card is refused."""
    mother = person_in(client, app, name="王芳", gender="女")
    child = minor_id_number(age=9)
    with app.app_context():
        registries.add_person(id_number=child, name="王小明")
        registries.add_guardian(parent_id_number=mother["id_number"], child_id_number=child)
        db.session.commit()
    childs_card = issue_license(app, ID_CARD_TYPE, holder_id_number=child, fields={
        "name": "王小明", "ethnicity": "汉", "address": "山东省济南市历下区泺源大街1号", "issuing_authority": "济南市公安局历下区分局"})
    response = apply(client, mother["headers"], residence_body(mother, childs_card))
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == {
        "materials[0].license_id": ["证照的持证人不是表单所填的申请人，不能作为材料「居民身份证」"]}


def test_a_mothers_card_is_the_mothers(client, app):
    father = person_in(client, app, name="李强", gender="男")
    card = id_card(app, father)
    form = client.get(f"{API}/services/{code(JINAN_LIXIA, BIRTH_CERTIFICATE)}/form", headers=father["headers"]).get_json()
    suggested = {m["name"]: m["satisfied_by"] for m in form["materials"]}
    assert suggested["父亲居民身份证"] == {"license_id": card} and suggested["母亲居民身份证"] is None
    body = {"service_code": code(JINAN_LIXIA, BIRTH_CERTIFICATE),
            "form": {"name": father["name"], "id_number": father["id_number"], "phone": father["phone"],
                     "child_name": "李小宝", "child_gender": "男", "birth_date": "2026-01-05",
                     "birth_hospital": "山东省立医院"},
            "materials": [{"name": "母亲居民身份证", "license_id": card},
                          {"name": "分娩住院病历", "file_id": upload(client, father["headers"])}]}
    refused = apply(client, father["headers"], body)
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {
        "materials[0].license_id": ["「母亲居民身份证」须为母亲本人的证照，请由母亲本人提交，或上传该证件的文件"]}
    body["materials"][0] = {"name": "母亲居民身份证", "file_id": upload(client, father["headers"])}
    body["materials"].append({"name": "父亲居民身份证", "license_id": card})
    assert apply(client, father["headers"], body).status_code == 201


def _instant_permits(client, app, count):
    people, ids = [], []
    for index in range(count):
        person = person_in(client, app, name="张三")
        created = apply(client, person["headers"], residence_body(person, id_card(app, person)))
        assert created.get_json()["status"] == "approved", created.get_json()
        people.append(person)
        ids.append(created.get_json()["application_id"])
    return people, ids


def test_staff_draw_a_sample_of_instant_approvals(client, app):
    _people, ids = _instant_permits(client, app, 3)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    url = f"{API}/halls/{JINAN_LIXIA}/spot-checks"
    assert client.post(url, headers=create_staff(app, JINAN_SHIZHONG, "hall_staff"), json={"count": 2}).status_code == 403
    assert client.post(f"{API}/halls/999999/spot-checks", headers=staff, json={"count": 2}).status_code == 404
    assert client.post(url, headers=staff, json={"count": 0}).status_code == 422
    first = client.post(url, headers=staff, json={"count": 2})
    assert first.status_code == 200, first.get_json()
    drawn = [item["application_id"] for item in first.get_json()["items"]]
    assert len(drawn) == 2 and set(drawn) <= set(ids)
    second = client.post(url, headers=staff, json={"count": 2}).get_json()["items"]
    assert [item["application_id"] for item in second] == list(set(ids) - set(drawn))
    assert client.post(url, headers=staff, json={"count": 2}).get_json()["items"] == []
    detail = client.get(f"{API}/applications/{drawn[0]}", headers=staff).get_json()
    assert detail["spot_check"] == "selected" and detail["timeline"][-1]["action"] == "spot_check_selected"


def test_the_spot_check_command_draws_too(client, app):
    _people, ids = _instant_permits(client, app, 2)
    result = app.test_cli_runner().invoke(args=["applications", "spot-check", "--hall", JINAN_LIXIA, "--count", "5"])
    assert result.exit_code == 0, result.output
    assert all(application_id in result.output for application_id in ids)


def test_a_false_commitment_revokes_the_result_and_the_license(client, app, inline_jobs):
    (honest, liar), (honest_id, liar_id) = _instant_permits(client, app, 2)
    staff = create_staff(app, JINAN_LIXIA, "hall_staff")
    url = f"{API}/applications/{{}}/spot-check"
    passed = client.post(url.format(honest_id), headers=staff, json={"outcome": "passed", "comment": "居住属实"})
    assert passed.status_code == 200 and passed.get_json()["spot_check"] == "passed"
    assert client.post(url.format(honest_id), headers=staff, json={"outcome": "breach", "comment": "x",
                                                                   "materials": ["居住证明"]}).status_code == 409
    assert client.post(url.format(liar_id), headers=liar["headers"], json={"outcome": "passed"}).status_code == 403
    assert client.post(url.format(liar_id), headers=create_staff(app, JINAN_SHIZHONG, "hall_staff"),
                       json={"outcome": "passed"}).status_code == 404
    no_comment = client.post(url.format(liar_id), headers=staff, json={"outcome": "breach", "materials": ["居住证明"]})
    assert no_comment.status_code == 422 and "comment" in no_comment.get_json()["errors"]
    not_promised = client.post(url.format(liar_id), headers=staff, json={
        "outcome": "breach", "comment": "经核查无居住事实", "materials": ["居民身份证"]})
    assert not_promised.status_code == 422 and "materials[0]" in not_promised.get_json()["errors"]
    license_id = client.get(f"{API}/applications/{liar_id}", headers=liar["headers"]).get_json()["result"]["license_id"]
    revoked = client.post(url.format(liar_id), headers=staff, json={
        "outcome": "breach", "comment": "经核查无居住事实", "materials": ["居住证明"]})
    assert revoked.status_code == 200, revoked.get_json()
    result = client.get(f"{API}/applications/{liar_id}", headers=liar["headers"]).get_json()
    assert result["spot_check"] == "breach" and result["result"]["revoked"] is True
    assert [e["action"] for e in result["timeline"]][-2:] == ["spot_check", "revoke"]
    # the license is revoked: the wallet says so and a verifier refuses it
    wallet = client.get(f"{API}/wallet/licenses/{license_id}", headers=liar["headers"]).get_json()
    assert wallet["status"] == "revoked"
    shown = client.post(f"{API}/wallet/licenses/{license_id}/presentations", headers=liar["headers"],
                        json={"disclose": ["name"], "purpose": "租房", "mode": "online"})
    assert shown.status_code == 409
    # a sealed revocation decision, and the breach in the credit registry
    document = client.get(result["result"]["revocation_document_url"], headers=liar["headers"])
    assert document.status_code == 200 and document.mimetype == "application/pdf"
    with app.app_context():
        assert db.session.scalar(db.select(DecisionDocument.decision).where(
            DecisionDocument.application_id == liar_id, DecisionDocument.decision == "revoked")) == "revoked"
        assert persons.credit_class(liar["id_number"]) == "一般失信"
        assert persons.credit_class(honest["id_number"]) == "诚信守法"
    inbox = client.get(f"{API}/inbox", headers=liar["headers"]).get_json()["items"]
    assert any("撤销" in note["title"] for note in inbox)
    # from now on the liar's commitments go to a person
    again = residence_body(liar, id_card(app, liar))
    reason = _declined_because(apply(client, liar["headers"], again))
    assert "一般失信" in reason
