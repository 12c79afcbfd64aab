"""Catalogue writes and the index behind reads: hall admins' create / change / withdraw with 四级六同,
revisions and audit, permissions, bad input, optimistic concurrency, seeding and `catalogue generate`,
and the index staying consistent across workers and serving when the shared store is down."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from app.catalogue import publishing, seed_data
from app.catalogue.index import LIST_KEYS, _published_rows, catalogue_index
from app.catalogue.models import STATE_ID, CatalogueState, Hall, Service, ServiceRevision
from app.catalogue.seed import seed_catalogue
from app.extensions import db
from app.security.models import AuditEvent
from schemas.catalogue import ServiceSchema
from tests.support.catalogue import API, catalogue_version, channel_headers
from tests.support.helpers import another_worker, create_staff, needs_redis, register_person

PROBLEM = "application/problem+json"
SIX_SAME = {"name", "item_type", "legal_basis", "materials", "statutory_limit_days"}

pytestmark = pytest.mark.usefixtures("catalogue_guard")


def problem(response, status):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    return response.get_json()


def base_missing_at(app, hall: str, model_hall: str = "370100") -> str:
    """A base code `model_hall` offers and `hall` does not."""
    with app.app_context():
        there = set(db.session.scalars(select(Service.base_code).where(Service.hall_code == model_hall)))
        here = set(db.session.scalars(select(Service.base_code).where(Service.hall_code == hall)))
        return sorted(there - here)[0]


def peer(app, base_code: str) -> dict:
    with app.app_context():
        row = db.session.scalars(select(Service).where(Service.base_code == base_code).limit(1)).first()
        return publishing.snapshot(row)


def codes_found(client, headers=None, **args) -> list[str]:
    body = client.get(f"{API}/services", query_string={"page_size": 100, **args}, headers=headers or {}).get_json()
    return [item["code"] for item in body["items"]]


@pytest.fixture
def county_admin(app):
    return create_staff(app, "370102", "hall_admin")


# ------------------------------------------------------------------------------------------- create


def test_hall_admin_publishes_a_service_from_the_base_item(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    standard = peer(app, base_code)
    before = client.get(f"{API}/halls/370102/coverage").get_json()["service_count"]
    response = client.post(f"{API}/halls/370102/services", headers=county_admin,
                           json={"base_code": base_code, "promised_limit_days": 0, "channels": ["wechat", "app"]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    code = f"370102-{base_code}"
    assert body["code"] == code and body["hall_code"] == "370102" and body["level"] == "county"
    assert response.headers["Location"].endswith(f"/services/{code}")
    for field in SIX_SAME - {"materials"}:
        assert body[field] == standard[field]
    assert [m["name"] for m in body["materials"]] == [m["name"] for m in standard["materials"]]
    assert body["channels"] == ["app", "wechat"] and body["version"] == 1
    assert body["department"].startswith("济南市") and "历下区" in body["department"]
    # history and audit
    with app.app_context():
        revisions = db.session.scalars(select(ServiceRevision).where(ServiceRevision.service_code == code)).all()
        assert [(r.version, r.action) for r in revisions] == [(1, "create")]
        assert revisions[0].snapshot["base_code"] == base_code and revisions[0].actor
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "catalogue.service_create")).all()
        assert len(events) == 1 and events[0].details["service_code"] == code
    # visible at once: search, detail, counts
    assert code in codes_found(client, q=standard["name"], hall="370102")
    assert client.get(f"{API}/services/{code}").status_code == 200
    assert client.get(f"{API}/halls/370102/coverage").get_json()["service_count"] == before + 1
    assert client.get(f"{API}/halls/370102").get_json()["service_count"] == before + 1


def test_six_same_violation_names_each_differing_field(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    standard = peer(app, base_code)
    version = catalogue_version(app)
    body = {"base_code": base_code, "name": standard["name"] + "（本区）", "item_type": "行政备案"
            if standard["item_type"] != "行政备案" else "公共服务",
            "legal_basis": ["《某区规定》"], "materials": [{"name": "另一份材料", "required": True}],
            "statutory_limit_days": standard["statutory_limit_days"] + 5}
    response = client.post(f"{API}/halls/370102/services", headers=county_admin, json=body)
    errors = problem(response, 422)["errors"]
    assert set(errors) == SIX_SAME
    assert all("四级六同" in messages[0] for messages in errors.values())
    # one field only: only that one is named
    errors = problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                                 json={"base_code": base_code, "statutory_limit_days": 999}), 422)["errors"]
    assert set(errors) == {"statutory_limit_days"}
    # identical values are fine (materials compared by name, required, license type; order ignored)
    same = {"base_code": base_code, "name": standard["name"], "legal_basis": list(reversed(standard["legal_basis"])),
            "materials": [{k: m[k] for k in ("name", "required", "license_type_code")}
                          for m in reversed(standard["materials"])]}
    assert version == catalogue_version(app)  # nothing written by the failures
    assert client.post(f"{API}/halls/370102/services", headers=county_admin, json=same).status_code == 201


def test_failed_write_leaves_nothing_behind(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    version = catalogue_version(app)
    problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                        json={"base_code": base_code, "topics": ["no-such-topic"]}), 422)
    problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                        json={"base_code": base_code, "promised_limit_days": 3650}), 422)
    with app.app_context():
        assert db.session.get(Service, f"370102-{base_code}") is None
        assert db.session.scalar(select(func.count()).select_from(ServiceRevision)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event.like("catalogue.%"))) == 0
    assert catalogue_version(app) == version


def test_new_base_code_needs_the_shared_fields(client, app, county_admin):
    response = client.post(f"{API}/halls/370102/services", headers=county_admin, json={"base_code": "009999001000"})
    errors = problem(response, 422)["errors"]
    assert {"name", "item_type", "department", "audience", "statutory_limit_days"} <= set(errors)
    created = client.post(f"{API}/halls/370102/services", headers=county_admin, json={
        "base_code": "009999001000", "code": "370102-LOCAL-0001", "name": "历下区特色便民服务申请",
        "item_type": "公共服务", "department": "济南市历下区行政审批服务局", "audience": "person",
        "statutory_limit_days": 5,
        "form": [{"name": "applicant", "label": "申请人", "type": "text", "required": True}]})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["code"] == "370102-LOCAL-0001"
    assert "370102-LOCAL-0001" in codes_found(client, q="历下区特色便民服务")
    # a second hall must now follow this one
    city_admin = create_staff(app, "370100", "hall_admin")
    errors = problem(client.post(f"{API}/halls/370100/services", headers=city_admin, json={
        "base_code": "009999001000", "name": "别的名字", "department": "济南市行政审批服务局"}), 422)["errors"]
    assert set(errors) == {"name"}


def test_duplicate_and_taken_codes_are_409(client, app, county_admin):
    with app.app_context():
        existing = db.session.scalars(select(Service).where(Service.hall_code == "370102").limit(1)).first()
        base_code, code = existing.base_code, existing.code
    problem(client.post(f"{API}/halls/370102/services", headers=county_admin, json={"base_code": base_code}), 409)
    other = base_missing_at(app, "370102")
    problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                        json={"base_code": other, "code": code}), 409)


def test_unknown_and_readonly_fields_are_422(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    for extra in ({"popularity": 5}, {"hall_code": "370100"}, {"version": 3}, {"status": "withdrawn"}):
        errors = problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                                     json={"base_code": base_code, **extra}), 422)["errors"]
        assert set(extra) <= set(errors)
    errors = problem(client.post(f"{API}/halls/370102/services", headers=county_admin, json={}), 422)["errors"]
    assert "base_code" in errors
    errors = problem(client.post(f"{API}/halls/370102/services", headers=county_admin,
                                 json={"base_code": base_code, "channels": ["fax"], "statutory_limit_days": "5"}),
                     422)["errors"]
    assert {"channels.0", "statutory_limit_days"} <= set(errors) or {"channels", "statutory_limit_days"} <= set(errors)


# -------------------------------------------------------------------------------------------- permissions


def test_who_may_write(client, app):
    base_code = base_missing_at(app, "370102")
    url = f"{API}/halls/370102/services"
    problem(client.post(url, json={"base_code": base_code}), 401)
    citizen = register_person(client, app)["headers"]
    problem(client.post(url, headers=citizen, json={"base_code": base_code}), 403)
    problem(client.post(url, headers=create_staff(app, "370102", "hall_staff"), json={"base_code": base_code}), 403)
    problem(client.post(url, headers=create_staff(app, "370200", "hall_admin"), json={"base_code": base_code}), 403)
    problem(client.post(url, headers=create_staff(app, "370103", "hall_admin"), json={"base_code": base_code}), 403)
    county_admin = create_staff(app, "370102", "hall_admin")
    problem(client.post(f"{API}/halls/370100/services", headers=county_admin, json={"base_code": base_code}), 403)
    problem(client.post(f"{API}/halls/379999/services", headers=county_admin, json={"base_code": base_code}), 404)
    # the city's admin may write to its counties
    city_admin = create_staff(app, "370100", "hall_admin")
    assert client.post(url, headers=city_admin, json={"base_code": base_code}).status_code == 201
    code = f"370102-{base_code}"
    assert client.patch(f"{url}/{code}", headers=city_admin, json={"promised_limit_days": 0}).status_code == 200
    problem(client.patch(f"{url}/{code}", headers=create_staff(app, "370102", "hall_staff"),
                         json={"promised_limit_days": 1}), 403)


# ------------------------------------------------------------------------------------- change, withdraw


def _hall_service(app, hall: str = "370102", channel_free: str | None = None) -> Service:
    with app.app_context():
        rows = db.session.scalars(select(Service).where(Service.hall_code == hall, Service.status == "published")
                                  .order_by(Service.code)).all()
        row = next(r for r in rows if channel_free is None or channel_free not in r.channels)
        db.session.expunge(row)
        return row


def test_patch_changes_versions_and_reflects_in_search(client, app, county_admin):
    target = _hall_service(app, channel_free="wechat")
    url = f"{API}/halls/370102/services/{target.code}"
    wechat = channel_headers(app, "wechat")
    assert target.code not in codes_found(client, wechat, q=target.name, hall="370102")
    etag = client.get(f"{API}/services/{target.code}").headers["ETag"]
    response = client.patch(url, headers=county_admin, json={"channels": ["app", "wechat"], "promised_limit_days": 0,
                                                             "fee": "测试收费标准"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"] == 2 and body["channels"] == ["app", "wechat"] and body["fee"] == "测试收费标准"
    assert target.code in codes_found(client, wechat, q=target.name, hall="370102")
    assert client.get(f"{API}/services/{target.code}", headers=wechat).status_code == 200
    # the detail's ETag moved with the catalogue version
    assert client.get(f"{API}/services/{target.code}", headers={"If-None-Match": etag}).status_code == 200
    # optimistic concurrency with If-Match
    problem(client.patch(url, headers={**county_admin, "If-Match": '"1"'}, json={"promised_limit_days": 1}), 412)
    ok = client.patch(url, headers={**county_admin, "If-Match": '"2"'}, json={"promised_limit_days": 1})
    assert ok.status_code == 200 and ok.get_json()["version"] == 3
    # no change, no new version
    assert client.patch(url, headers=county_admin, json={"promised_limit_days": 1}).get_json()["version"] == 3
    with app.app_context():
        revisions = db.session.scalars(select(ServiceRevision).where(ServiceRevision.service_code == target.code)
                                       .order_by(ServiceRevision.version)).all()
        assert [(r.version, r.action) for r in revisions] == [(2, "update"), (3, "update")]
        assert set(revisions[0].changed_fields) == {"channels", "promised_limit_days", "fee"}
        assert revisions[1].snapshot["promised_limit_days"] == 1
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "catalogue.service_update")) == 2
    history = client.get(f"{url}/revisions", headers=county_admin).get_json()["items"]
    assert [h["version"] for h in history] == [2, 3]
    problem(client.get(f"{url}/revisions", headers=create_staff(app, "370200", "hall_staff")), 403)


def test_patch_cannot_break_six_same(client, app, county_admin):
    target = _hall_service(app)
    url = f"{API}/halls/370102/services/{target.code}"
    errors = problem(client.patch(url, headers=county_admin, json={
        "name": "改个名字", "statutory_limit_days": target.statutory_limit_days + 1,
        "materials": [], "legal_basis": ["《新依据》"], "item_type": "行政裁决"}), 422)["errors"]
    assert set(errors) == SIX_SAME
    for field in ("base_code", "code", "hall_code", "popularity"):
        assert field in problem(client.patch(url, headers=county_admin, json={field: "x"}), 422)["errors"]
    problem(client.patch(url, headers=county_admin, json={}), 422)
    problem(client.patch(url, headers=county_admin, json={"promised_limit_days": 10_000}), 422)
    problem(client.patch(f"{API}/halls/370102/services/370102-999999999999", headers=county_admin,
                         json={"fee": "x"}), 404)
    other = _hall_service(app, hall="370103")
    problem(client.patch(f"{API}/halls/370102/services/{other.code}", headers=county_admin, json={"fee": "x"}), 404)


def test_withdraw_and_republish(client, app, county_admin):
    target = _hall_service(app)
    url = f"{API}/halls/370102/services/{target.code}"
    count = client.get(f"{API}/halls/370102").get_json()["service_count"]
    response = client.delete(url, headers=county_admin)
    assert response.status_code == 204 and response.data == b""
    problem(client.get(f"{API}/services/{target.code}"), 404)
    assert target.code not in codes_found(client, q=target.name, hall="370102")
    assert client.get(f"{API}/halls/370102").get_json()["service_count"] == count - 1
    assert client.delete(url, headers=county_admin).status_code == 204  # already withdrawn
    with app.app_context():
        row = db.session.get(Service, target.code)
        assert row.status == "withdrawn" and row.version == 2
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == "catalogue.service_withdraw")) == 1
    back = client.patch(url, headers=county_admin, json={"status": "published"})
    assert back.status_code == 200 and back.get_json()["status"] == "published"
    assert target.code in codes_found(client, q=target.name, hall="370102")
    actions = [h["action"] for h in client.get(f"{url}/revisions", headers=county_admin).get_json()["items"]]
    assert actions == ["withdraw", "publish"]
    problem(client.delete(url, headers={**county_admin, "If-Match": '"1"'}), 412)


# ------------------------------------------------------------------------------------ index consistency


@needs_redis("without Redis each app has its own in-process store, so the change signal cannot reach a "
             "second worker (the DB poll still does, see below)")
def test_second_worker_sees_a_write_through_the_store_signal(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    name = peer(app, base_code)["name"]
    with another_worker(app, CATALOGUE_SYNC_INTERVAL=3600, CATALOGUE_CHECK_INTERVAL=0) as worker:
        other = worker.test_client()
        assert f"370102-{base_code}" not in codes_found(other, q=name, hall="370102")  # builds its index
        assert client.post(f"{API}/halls/370102/services", headers=county_admin,
                           json={"base_code": base_code}).status_code == 201
        assert f"370102-{base_code}" in codes_found(other, q=name, hall="370102")
        assert other.get(f"{API}/services/370102-{base_code}").status_code == 200
        target = _hall_service(app)
        client.delete(f"{API}/halls/370102/services/{target.code}", headers=county_admin)
        assert target.code not in codes_found(other, q=target.name, hall="370102")


def test_second_worker_follows_the_database_without_the_store(client, app, county_admin):
    base_code = base_missing_at(app, "370102")
    name = peer(app, base_code)["name"]
    with another_worker(app, CATALOGUE_SYNC_INTERVAL=0, REDIS_URL=None) as worker:
        other = worker.test_client()
        before = other.get(f"{API}/halls/370102").headers["ETag"]
        assert client.post(f"{API}/halls/370102/services", headers=county_admin,
                           json={"base_code": base_code}).status_code == 201
        assert f"370102-{base_code}" in codes_found(other, q=name, hall="370102")
        assert other.get(f"{API}/halls/370102").headers["ETag"] != before


def test_catalogue_keeps_serving_when_the_store_is_down(client, app, caplog):
    code = _hall_service(app).code
    with another_worker(app, REDIS_URL="redis://127.0.0.1:1/0") as broken:
        other = broken.test_client()
        with caplog.at_level(logging.WARNING, logger="app.catalogue.index"):
            response = other.get(f"{API}/services", query_string={"q": "社保", "hall": "370100"})
        assert response.status_code == 200 and response.get_json()["total"] > 0
        assert any("shared store unavailable" in r.getMessage() for r in caplog.records)
        assert other.get(f"{API}/halls").status_code == 200
        assert other.get(f"{API}/halls/370100").get_json()["service_count"] >= 200
        assert other.get(f"{API}/services/{code}").status_code == 200
        assert other.get(f"{API}/topics").status_code == 200
        assert other.get(f"{API}/halls/370100/coverage").get_json()["meets_target"] is True


def test_index_rebuilds_after_a_bulk_load_and_applies_changes_incrementally(app):
    with app.app_context():
        manager = catalogue_index(app).fresh()
        size = len(manager.search_index)
        target = db.session.scalars(select(Service).where(Service.hall_code == "370102").limit(1)).first()
        epoch = manager.epoch
        seq = publishing.next_catalogue_version()
        target.status, target.change_seq = "withdrawn", seq
        db.session.commit()
        manager._sync()
        assert manager.epoch == epoch and len(manager.search_index) == size - 1
        assert manager.doc(target.code) is None
        seq = publishing.next_catalogue_version(bulk=True)
        target.status, target.change_seq = "published", seq
        db.session.commit()
        old_index = manager.search_index
        manager._sync()
        assert manager.epoch == epoch + 1 and manager.search_index is not old_index
        assert len(manager.search_index) == size and manager.doc(target.code) is not None


# ---------------------------------------------------------------------------------------- data loading


def test_list_item_keys_match_the_schema():
    assert set(LIST_KEYS) == set(ServiceSchema().fields)


def test_seed_is_idempotent_and_complete(app):
    with app.app_context():
        assert seed_catalogue() == "0 halls, 0 services, 0 topics, 0 bundles added"
        assert db.session.scalar(select(func.count()).select_from(Service)) == \
            sum(1 for _ in seed_data.iter_hall_services())
        assert db.session.scalar(select(func.count()).select_from(Hall)) == 153


def test_generate_builds_an_exact_four_level_list(app_factory, tmp_path):
    generated = app_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'generate.db'}", REDIS_URL=None)
    with generated.app_context():
        db.create_all()
    runner = generated.test_cli_runner()
    halls_only = sum(1 for _ in seed_data.iter_hall_services())
    count = halls_only + 3000  # every hall's list, then township service centres
    result = runner.invoke(args=["catalogue", "generate", "--items", str(count), "--batch", "4000"])
    assert result.exit_code == 0, result.output
    assert f'"total": {count}' in result.output
    with generated.app_context():
        levels = {level: n for level, n in db.session.execute(
            select(Service.level, func.count()).group_by(Service.level))}
        assert set(levels) == {"province", "city", "county", "township"}
        assert db.session.scalar(select(func.count()).select_from(Hall).where(Hall.level == "township")) > 0
    again = runner.invoke(args=["catalogue", "generate", "--items", str(count)])
    assert '"inserted": 0' in again.output and '"deleted": 0' in again.output
    smaller = runner.invoke(args=["catalogue", "generate", "--items", str(halls_only - 5000)])
    assert f'"total": {halls_only - 5000}' in smaller.output
    client = generated.test_client()
    body = client.get(f"{API}/services", query_string={"q": "社保", "page_size": 1}).get_json()
    assert body["total"] > 0
    with generated.app_context():
        db.session.remove()
        db.engine.dispose()


def test_seed_can_be_limited_to_some_halls(app_factory, tmp_path):
    limited = app_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'limited.db'}", REDIS_URL=None,
                          CATALOGUE_SEED_HALLS=["370000", "370100", "370102"])
    with limited.app_context():
        db.create_all()
        assert seed_catalogue().startswith("153 halls, ")
        halls = {h for h, in db.session.execute(select(Service.hall_code).distinct())}
        assert halls == {"370000", "370100", "370102"}
        assert db.session.scalar(select(func.count()).select_from(Service)) == \
            sum(1 for _ in seed_data.iter_hall_services(["370000", "370100", "370102"]))
        db.session.remove()
        db.engine.dispose()


def test_bad_token_on_a_read_is_401(client):
    response = client.get(f"{API}/services", headers={"Authorization": "Bearer not-a-token"})
    assert problem(response, 401)["status"] == 401


def test_reading_the_catalogue_for_the_index_leaves_the_session_able_to_write(app):
    with app.app_context():
        assert sum(1 for _ in _published_rows()) > 0  # streamed in batches
        before = db.session.scalar(select(CatalogueState.version).where(CatalogueState.id == STATE_ID))
        assert publishing.next_catalogue_version() == before + 1  # UPDATE ... RETURNING, same transaction
        db.session.rollback()
