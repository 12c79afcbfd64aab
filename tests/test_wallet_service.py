"""Wallet services used by other domains, the seeder, status list allocation and the audit chain."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.errors import NotFound, ValidationFailed
from app import journal
from app.extensions import db
from app.security import audit
from app.security.models import SigningKey
from app.security.rbac import Principal
from app.timeutil import beijing_today
from app.wallet import service, status_registry
from app.wallet.identifier import parse_identifier
from app.wallet.models import AccessLogEntry, License, LicenseType, StatusListRecord
from app.wallet.seed import seed_license_types
from tests.support.helpers import API, add_registry_person, minor_id_number, register_person, valid_id_number
from tests.support.wallet import (DRIVING, ID_CARD, access_log, driving_fields, id_card_fields, issue,
                                  issuer_headers, present, resident, verify)

SOCIAL_SECURITY = "111000000000131143001"  # 社会保障卡, validity_years 10


def person(subject_id: str) -> Principal:
    return Principal(subject_id=subject_id, subject_type="person", roles=frozenset({"citizen"}),
                     claims={"sub": subject_id, "sub_type": "person"})


@pytest.fixture
def police(app, client):
    return issuer_headers(app, client, types=(ID_CARD, DRIVING))


def test_seeder_is_idempotent(app):
    with app.app_context():
        assert seed_license_types() == "159 license types (0 added, 0 updated)"
        row = db.session.get(LicenseType, ID_CARD)
        row.name = "改过的名称"
        db.session.commit()
        assert seed_license_types() == "159 license types (0 added, 1 updated)"
        assert db.session.get(LicenseType, ID_CARD).name == "居民身份证"
        assert db.session.scalar(select(func.count()).select_from(LicenseType)) == 159


def test_holder_licenses_are_the_callers_usable_ones(app, client, alice, police):
    kept = issue(client, police, holder_id_number=alice["id_number"])
    revoked = issue(client, police, license_type=DRIVING, holder_id_number=alice["id_number"], fields=driving_fields())
    issue(client, police, holder_id_number=resident(app))
    client.post(f"{API}/licenses/{revoked['license_id']}/status", json={"status": "revoked"}, headers=police)
    with app.app_context():
        me = person(alice["subject_id"])
        assert [lic.license_id for lic in service.holder_licenses(me)] == [kept["license_id"]]
        assert {lic.license_id for lic in service.holder_licenses(me, usable_only=False)} == {
            kept["license_id"], revoked["license_id"]}
        assert service.holder_licenses(me, DRIVING) == []
        client_principal = Principal(subject_id="c_x", subject_type="client", roles=frozenset({"issuer"}))
        assert service.holder_licenses(client_principal) == []


def test_use_license_as_material_verifies_and_logs(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields("张三"))
    with app.app_context():
        result = service.use_license_as_material(principal=person(alice["subject_id"]),
                                                 license_id=card["license_id"],
                                                 service_code="370100-000120000000", purpose="户口迁移申请材料")
        db.session.commit()
    assert result["license_id"] == card["license_id"] and result["license_type"] == ID_CARD
    assert result["identifier"] == card["identifier"]
    assert result["verified_fields"]["name"] == "张三"
    assert result["verified_fields"]["id_number"] == alice["id_number"]
    assert list(result["verified_fields"])[:2] == ["name", "id_number"]
    entry = access_log(client, alice["headers"], card["license_id"])["items"][0]
    assert entry["verifier"] == "办件 370100-000120000000" and entry["purpose"] == "户口迁移申请材料"
    assert entry["kind"] == "material" and entry["result"] == "valid" and entry["shown_by"]["role"] == "holder"
    assert "name" in entry["disclosed"]


def test_use_license_as_material_refuses_what_cannot_be_used(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    mallory = register_person(client, app, name="王五")
    with app.app_context():
        with pytest.raises(NotFound):
            service.use_license_as_material(principal=person(mallory["subject_id"]), license_id=card["license_id"],
                                            service_code="s", purpose="p")
        with pytest.raises(NotFound):
            service.use_license_as_material(principal=person(alice["subject_id"]), license_id="lic_nope",
                                            service_code="s", purpose="p")
    client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "suspended"}, headers=police)
    with app.app_context():
        with pytest.raises(service.LicenseUnusable) as raised:
            service.use_license_as_material(principal=person(alice["subject_id"]), license_id=card["license_id"],
                                            service_code="s", purpose="p")
        assert raised.value.reason == "suspended" and raised.value.status == 422
        assert "license_id" in raised.value.errors
    client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "valid"}, headers=police)
    with app.app_context():  # nothing is written unless the caller commits
        service.use_license_as_material(principal=person(alice["subject_id"]), license_id=card["license_id"],
                                        service_code="s", purpose="p")
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(AccessLogEntry)) == 0


def test_guardian_uses_a_childs_license_as_material(app, client, police):
    child = minor_id_number(age=6)
    add_registry_person(app, id_number=child, name="张小小")
    card = issue(client, police, holder_id_number=child, fields=id_card_fields("张小小"))
    parent_id = valid_id_number()
    add_registry_person(app, id_number=parent_id, name="张父", guardian_of=(child,))
    parent = register_person(client, app, name="张父", id_number=parent_id)
    with app.app_context():
        result = service.use_license_as_material(principal=person(parent["subject_id"]),
                                                 license_id=card["license_id"], service_code="s", purpose="入学")
        db.session.commit()
        assert result["verified_fields"]["name"] == "张小小"
        entry = db.session.scalar(select(AccessLogEntry))
        assert entry.shown_by["role"] == "guardian"


def test_issue_platform_license(app, client, alice):
    with app.app_context():
        lic = service.issue_platform_license(
            license_type=SOCIAL_SECURITY, holder_id_number=alice["id_number"],
            fields={"name": "张三", "card_number": "A12345678", "bank": "中国工商银行"},
            valid_from=beijing_today())
        db.session.commit()
        license_id, identifier = lic.license_id, lic.identifier
        assert parse_identifier(identifier)["issuer_credit_code"] == app.config["PLATFORM_CREDIT_CODE"]
        assert lic.valid_until == beijing_today().replace(year=beijing_today().year + 10) - timedelta(days=1)
        assert lic.field_values["issuing_authority"] == "山东省政务服务平台"
        assert db.session.get(SigningKey, lic.issuer_kid).purpose == "issuer:platform"
        with pytest.raises(ValidationFailed) as raised:
            service.issue_platform_license(license_type=ID_CARD, holder_id_number=alice["id_number"],
                                           fields=id_card_fields(), valid_from=beijing_today())
        assert "valid_until" in raised.value.errors
        with pytest.raises(ValidationFailed) as raised:
            service.issue_platform_license(license_type=SOCIAL_SECURITY, holder_id_number="123",
                                           fields={}, valid_from=beijing_today())
        assert "holder_id_number" in raised.value.errors
        with pytest.raises(ValidationFailed) as raised:
            service.issue_platform_license(license_type="nope", holder_id_number=alice["id_number"],
                                           fields={}, valid_from=beijing_today())
        assert "license_type" in raised.value.errors
    items = client.get(f"{API}/wallet/licenses", headers=alice["headers"]).get_json()["items"]
    assert [(item["license_id"], item["identifier"]) for item in items] == [(license_id, identifier)]
    shown = present(client, alice["headers"], license_id, mode="offline")
    result = verify(client, sd_jwt=shown["sd_jwt"])
    assert result["valid"] is True and result["issuer"] == "山东省政务服务平台"


def test_status_lists_roll_over_when_full(app, client, alice, police):
    first = issue(client, police, holder_id_number=alice["id_number"])
    with app.app_context():
        record = db.session.scalar(select(StatusListRecord))
        assert record.next_idx == 1 and record.size == status_registry.DEFAULT_SIZE and record.bits == 2
        record.size = 2  # one index left
        db.session.commit()
    others = [valid_id_number() for _ in range(2)]  # one 居民身份证 per person: two more persons
    for other in others:
        add_registry_person(app, id_number=other, name="张三")
    second = issue(client, police, holder_id_number=others[0])
    third = issue(client, police, holder_id_number=others[1])
    with app.app_context():
        rows = {lic.license_id: (lic.status_list_id, lic.status_idx) for lic in db.session.scalars(select(License))}
    assert rows[first["license_id"]][1] == 0 and rows[second["license_id"]][1] == 1
    assert rows[third["license_id"]][1] == 0 and rows[third["license_id"]][0] != rows[first["license_id"]][0]
    client.post(f"{API}/licenses/{third['license_id']}/status", json={"status": "suspended"}, headers=police)
    shown = present(client, alice["headers"], first["license_id"])
    assert verify(client, code=shown["code"])["valid"] is True
    assert client.get(f"{API}/status-lists/{rows[third['license_id']][0]}").status_code == 200


def test_audit_chain_holds_after_the_wallet_flow(app, client, alice, police):
    card = issue(client, police, holder_id_number=alice["id_number"])
    shown = present(client, alice["headers"], card["license_id"])
    verify(client, code=shown["code"])
    verify(client, code=shown["code"])
    client.post(f"{API}/licenses/{card['license_id']}/status", json={"status": "revoked"}, headers=police)
    with app.app_context():
        journal.catch_up()  # verifications reach the chain through the journal, after or before the revocation
        result = audit.verify()
        assert result.ok, result.problems
        from app.security.models import AuditEvent
        events = db.session.scalars(select(AuditEvent.event).where(AuditEvent.event.like("license.%"))
                                    .order_by(AuditEvent.seq)).all()
        assert events[:2] == ["license.issued", "license.presented"]
        assert sorted(events[2:]) == ["license.status_changed", "license.verified", "license.verified"]
        details = str(db.session.scalars(select(AuditEvent.details)).all())
        assert alice["id_number"] not in details


# ---- truthful issuance


def test_identity_fields_agree_with_the_registry_and_the_id_number(app, client, alice, police):
    url = f"{API}/licenses"
    body = {"license_type": ID_CARD, "holder_id_number": alice["id_number"], "valid_from": "2024-01-01",
            "valid_until": (beijing_today() + timedelta(days=3650)).isoformat()}
    for fields, field in (({"name": "李四"}, "fields.name"), ({"gender": "女"}, "fields.gender"),
                          ({"birth_date": "2000-01-01"}, "fields.birth_date")):
        response = client.post(url, json={**body, "fields": id_card_fields(**fields)}, headers=police)
        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["errors"]) == [field]
    stranger = valid_id_number()  # a well-formed number the population registry does not hold
    response = client.post(url, json={**body, "holder_id_number": stranger, "fields": id_card_fields()}, headers=police)
    assert response.status_code == 422 and "fields.name" in response.get_json()["errors"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(License)) == 0
    # left out, gender and birth date are what the ID number states
    card = issue(client, police, holder_id_number=alice["id_number"], fields=id_card_fields())
    detail = client.get(f"{API}/wallet/licenses/{card['license_id']}", headers=alice["headers"],
                        query_string={"reveal": "true"}).get_json()
    values = {f["name"]: f["value"] for f in detail["fields"]}
    assert (values["gender"], values["birth_date"]) == ("男", "1990-03-07")


def test_enterprise_fields_agree_with_the_legal_entity_registry(app, client):
    from tests.support.helpers import valid_credit_code
    from tests.support.wallet import BUSINESS, business_fields, registered_company
    issuer = issuer_headers(app, client, types=(BUSINESS,), name="济南市市场监督管理局")
    code = valid_credit_code()
    body = {"license_type": BUSINESS, "holder_credit_code": code, "valid_from": "2024-01-01",
            "valid_until": (beijing_today() + timedelta(days=3650)).isoformat()}
    unknown = client.post(f"{API}/licenses", json={**body, "fields": business_fields()}, headers=issuer)
    assert unknown.status_code == 422 and "holder_credit_code" in unknown.get_json()["errors"]
    registered_company(app, code, name="山东示例科技有限公司", representative="王五")
    for fields, field in (({"entity_name": "山东别家科技有限公司"}, "fields.entity_name"),
                          ({"legal_representative": "赵六"}, "fields.legal_representative")):
        response = client.post(f"{API}/licenses", json={**body, "fields": business_fields(**fields)}, headers=issuer)
        assert response.status_code == 422 and list(response.get_json()["errors"]) == [field], response.get_json()
    assert client.post(f"{API}/licenses", json={**body, "fields": business_fields()}, headers=issuer).status_code == 201


def test_a_new_id_card_supersedes_the_old_one(app, client, alice, police):
    old = issue(client, police, holder_id_number=alice["id_number"], valid_from=beijing_today() - timedelta(days=400))
    shown = present(client, alice["headers"], old["license_id"], mode="offline")
    new = issue(client, police, holder_id_number=alice["id_number"])
    items = client.get(f"{API}/wallet/licenses", headers=alice["headers"]).get_json()["items"]
    assert [(i["license_id"], i["status"]) for i in items] == [(new["license_id"], "valid"), (old["license_id"], "revoked")]
    detail = client.get(f"{API}/wallet/licenses/{old['license_id']}", headers=alice["headers"]).get_json()
    assert detail["status_reason"] == "已换领新证，原证作废"
    assert verify(client, sd_jwt=shown["sd_jwt"])["reason"] == "revoked"
    # an older card cannot come after a newer one
    response = client.post(f"{API}/licenses", headers=police, json={
        "license_type": ID_CARD, "holder_id_number": alice["id_number"], "fields": id_card_fields(),
        "valid_from": (beijing_today() - timedelta(days=800)).isoformat(),
        "valid_until": (beijing_today() + timedelta(days=365)).isoformat()})
    assert response.status_code == 409, response.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(License)) == 2


def test_license_belongs_to_the_person_the_form_names(app, client, alice, police):
    mother = resident(app, "王母", male=False)
    card = issue(client, police, holder_id_number=mother, fields=id_card_fields("王母"))
    with app.app_context():
        assert service.license_belongs_to(card["license_id"], id_number=mother) is True
        assert service.license_belongs_to(card["license_id"], id_number=mother.lower()) is True
        assert service.license_belongs_to(card["license_id"], id_number=alice["id_number"]) is False
        assert service.license_belongs_to(card["license_id"], id_number="not a number") is False
        assert service.license_belongs_to("lic_" + "0" * 32, id_number=mother) is False
