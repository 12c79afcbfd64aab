"""帮办代办: a staff helper fills in an application with the applicant; it is submitted only once the
applicant confirms it in the app, and the timeline shows the helper and the confirmation."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.applications.assisted_models import AssistedApplication
from app.applications.models import Application
from app.extensions import db
from app.files.models import StoredFile
from app.timeutil import utcnow
from tests.support.helpers import API, register_person
from tests.support.applications import id_card, person_in, upload
from tests.support.window import (HUKOU_MOVE, LIXIA, SHIZHONG, card_request, count, service_code, staff_member,
                                  take_in, walk_in)


def _assist(client, headers, person, code, file_id, contact="phone", **extra):
    body = {**card_request(person, code, file_id), "applicant": {"id_number": person["id_number"],
                                                                  "name": person["name"]},
            "contact": contact, **extra}
    return client.post(f"{API}/assisted-applications", json=body, headers=headers)


def _confirm(client, headers, application_id, **body):
    return client.post(f"{API}/applications/{application_id}/confirmations", json=body, headers=headers)


def test_the_helper_fills_it_in_and_the_applicant_confirms(client, app):
    alice = person_in(client, app, region=LIXIA)
    helper = staff_member(app, LIXIA, name="帮办员")
    code = service_code(app, LIXIA)
    scan = upload(client, helper["headers"])
    made = _assist(client, helper["headers"], alice, code, scan)
    assert made.status_code == 201, made.get_json()
    draft = made.get_json()
    application_id = draft["application_id"]
    assert draft["status"] == "pending" and draft["contact"] == "phone" and draft["helper"]["name"] == "帮办员"
    assert draft["form"]["id_number"] != alice["id_number"] and draft["form"]["id_number"].startswith(alice["id_number"][:6])
    assert draft["materials"] == [{"name": "居民身份证", "kind": "file"}]
    assert count(app, Application) == 0  # nothing is submitted before the applicant confirms
    assert client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).status_code == 404

    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any(n["kind"] == "assisted_confirmation" and n["data"]["application_id"] == application_id for n in inbox)
    waiting = client.get(f"{API}/assisted-applications", headers=alice["headers"], query_string={"status": "pending"})
    assert [d["application_id"] for d in waiting.get_json()["items"]] == [application_id]
    assert client.get(f"{API}/assisted-applications/{application_id}", headers=helper["headers"]).status_code == 200

    confirmed = _confirm(client, alice["headers"], application_id)
    assert confirmed.status_code == 201, confirmed.get_json()
    body = confirmed.get_json()
    assert body["application_id"] == application_id and body["channel"] == "assisted"
    assert body["applicant"]["subject_id"] == alice["subject_id"]
    assert body["intake"]["staff"]["name"] == "帮办员" and body["intake"]["contact"] == "phone"
    assert body["intake"]["confirmed_at"]
    assert [e["action"] for e in body["timeline"]] == ["assisted", "confirmed", "submit"]
    assert body["timeline"][0]["actor_role"] == "staff" and body["timeline"][1]["actor_role"] == "applicant"
    assert body["timeline"][0]["at"] == draft["created_at"]  # when the helper filled it in
    assert body["form"]["bank_name"] == "中国银行"
    with app.app_context():
        scan_row = db.session.get(StoredFile, scan)
        assert scan_row.owner_subject_id == alice["subject_id"] and scan_row.attached_to == f"application:{application_id}"
    assert client.get(f"{API}/applications/{application_id}", headers=alice["headers"]).status_code == 200
    assert client.get(f"{API}/assisted-applications/{application_id}",
                      headers=alice["headers"]).get_json()["status"] == "confirmed"
    assert _confirm(client, alice["headers"], application_id).status_code == 409


def test_the_applicant_adds_a_license_from_their_wallet_when_confirming(client, app):
    alice = person_in(client, app, region=LIXIA)
    helper = staff_member(app, LIXIA)
    made = _assist(client, helper["headers"], alice, service_code(app, LIXIA), upload(client, helper["headers"]),
                   contact="desk").get_json()
    card = id_card(app, alice)
    confirmed = _confirm(client, alice["headers"], made["application_id"],
                         materials=[{"name": "居民身份证", "license_id": card}])
    assert confirmed.status_code == 201, confirmed.get_json()
    material = confirmed.get_json()["materials"][0]
    assert material["kind"] == "license" and material["license"]["license_id"] == card


def test_someone_without_an_account_confirms_after_registering(client, app):
    visitor = walk_in(app)
    helper = staff_member(app, LIXIA)
    made = _assist(client, helper["headers"], visitor, service_code(app, LIXIA), upload(client, helper["headers"]),
                   contact="desk")
    assert made.status_code == 201, made.get_json()
    account = register_person(client, app, name=visitor["name"], id_number=visitor["id_number"])
    mine = client.get(f"{API}/assisted-applications", headers=account["headers"]).get_json()
    assert [d["application_id"] for d in mine["items"]] == [made.get_json()["application_id"]]
    assert _confirm(client, account["headers"], made.get_json()["application_id"]).status_code == 201


def test_only_the_applicant_confirms_declines_and_expiry(client, app):
    alice, bob = person_in(client, app, region=LIXIA), person_in(client, app, region=LIXIA, name="李四")
    helper = staff_member(app, LIXIA)
    elsewhere = staff_member(app, SHIZHONG)
    code = service_code(app, LIXIA)
    first = _assist(client, helper["headers"], alice, code, upload(client, helper["headers"])).get_json()["application_id"]

    assert _confirm(client, bob["headers"], first).status_code == 404
    assert _confirm(client, helper["headers"], first).status_code == 404
    assert _confirm(client, alice["headers"], "ap_00000000000000000000").status_code == 404
    assert client.get(f"{API}/assisted-applications/{first}", headers=bob["headers"]).status_code == 404
    assert client.get(f"{API}/assisted-applications/{first}", headers=elsewhere["headers"]).status_code == 404
    assert client.delete(f"{API}/assisted-applications/{first}", headers=bob["headers"]).status_code == 404
    assert client.delete(f"{API}/assisted-applications/{first}", headers=alice["headers"]).status_code == 204
    assert _confirm(client, alice["headers"], first).status_code == 409
    assert client.get(f"{API}/assisted-applications/{first}", headers=alice["headers"]).get_json()["status"] == "declined"

    second = _assist(client, helper["headers"], alice, code, upload(client, helper["headers"])).get_json()["application_id"]
    assert client.delete(f"{API}/assisted-applications/{second}", headers=helper["headers"]).status_code == 204
    inbox = client.get(f"{API}/inbox", headers=alice["headers"]).get_json()["items"]
    assert any("撤销" in n["title"] and n["data"]["application_id"] == second for n in inbox)
    assert client.delete(f"{API}/assisted-applications/{second}", headers=helper["headers"]).status_code == 409

    third = _assist(client, helper["headers"], alice, code, upload(client, helper["headers"])).get_json()["application_id"]
    with app.app_context():
        row = db.session.scalar(select(AssistedApplication).where(AssistedApplication.application_id == third))
        row.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    expired = _confirm(client, alice["headers"], third)
    assert expired.status_code == 409 and expired.get_json()["assisted_status"] == "expired"
    assert client.get(f"{API}/assisted-applications", headers=alice["headers"],
                      query_string={"status": "pending"}).get_json()["total"] == 0
    assert count(app, Application) == 0


def test_bad_assisted_requests_write_nothing(client, app):
    alice = person_in(client, app, region=LIXIA)
    helper = staff_member(app, LIXIA)
    elsewhere = staff_member(app, SHIZHONG)
    code = service_code(app, LIXIA)
    scan = upload(client, helper["headers"])
    applicant = {"id_number": alice["id_number"], "name": alice["name"]}

    assert _assist(client, alice["headers"], alice, code, upload(client, alice["headers"])).status_code == 403
    licensed = client.post(f"{API}/assisted-applications", headers=helper["headers"], json={
        **card_request(alice, code, scan), "applicant": applicant, "contact": "phone",
        "materials": [{"name": "居民身份证", "license_id": "lic_0123456789abcdef0123"}]})
    assert licensed.status_code == 422 and list(licensed.get_json()["errors"]) == ["materials[0].license_id"]
    foreign_scan = _assist(client, helper["headers"], alice, code, upload(client, alice["headers"]))
    assert foreign_scan.status_code == 422 and list(foreign_scan.get_json()["errors"]) == ["materials[0].file_id"]
    unknown = _assist(client, helper["headers"], {**alice, "name": "查无此人"}, code, scan)
    assert unknown.status_code == 422 and "applicant.name" in unknown.get_json()["errors"]
    no_contact = client.post(f"{API}/assisted-applications", headers=helper["headers"],
                             json={**card_request(alice, code, scan), "applicant": applicant})
    assert no_contact.status_code == 422 and "contact" in no_contact.get_json()["errors"]
    hukou = service_code(app, LIXIA, HUKOU_MOVE)
    other_hall = _assist(client, elsewhere["headers"], alice, hukou, upload(client, elsewhere["headers"]))
    assert other_hall.status_code == 422 and list(other_hall.get_json()["errors"]) == ["service_code"]
    assert count(app, AssistedApplication) == 0

    # a scan that went into an application already cannot go into another
    assert take_in(client, helper["headers"], alice, code, scan).status_code == 201
    reused = _assist(client, helper["headers"], alice, code, scan)
    assert reused.status_code == 422 and list(reused.get_json()["errors"]) == ["materials[0].file_id"]
    assert count(app, AssistedApplication) == 0
