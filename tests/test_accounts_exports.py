"""Personal-data exports (POST /me/data-exports): everything kept about the caller, full values
included, built as a job, encrypted at rest, expiring, audited, and nobody else's data in it."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from app.extensions import db
from app.identity.account_models import DataExport
from app.security import audit
from app.security.ciphers import pii_cipher
from app.security.models import AuditEvent
from tests.support.helpers import API, auth_headers, needs_redis
from tests.support.proxies import act_for, grant
from tests.support.applications import apply, hukou_body, id_card, person_in, upload
from tests.support.window import LIXIA, card_request, service_code, staff_member
from tests.support.world import is_problem
from tests.support.wallet import present, verifier_headers, verify

ID_KEYS = ("subject_id", "application_id", "license_id", "identifier", "presentation_id", "session_id",
           "export_id", "proxy_id", "file_id", "appointment_id", "complaint_id", "reply_id", "evaluation_id",
           "open_id")


def run_worker(app) -> None:
    """With Redis the export job waits for a worker: run a real RQ worker in burst mode."""
    from rq import Queue, SimpleWorker

    from app.jobs import QUEUE_NAME, use_app
    from app.redis_topology import queue_connection
    use_app(app)
    with app.app_context():
        connection = queue_connection()  # RQ_REDIS_URL when the store is a cluster
        SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(burst=True)


def export_of(client, person) -> dict:
    started = client.post(f"{API}/me/data-exports", headers=person["headers"])
    assert started.status_code == 202, started.get_json()
    body = started.get_json()
    assert set(body) == {"export_id", "status"} and body["export_id"].startswith("ex_")
    if client.application.config.get("REDIS_URL"):
        assert body["status"] == "pending"
        run_worker(client.application)
    fetched = client.get(f"{API}/me/data-exports/{body['export_id']}", headers=person["headers"])
    assert fetched.status_code == 200 and fetched.headers["Cache-Control"] == "no-store"
    return fetched.get_json()


def _leaves(node, key=None):
    """(key, value) of every string leaf of a JSON document."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _leaves(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value, key)
    elif isinstance(node, str):
        yield key, node


def _with_data(client, app, name):
    """A person with an application, a license shown to a hotel and verified, inbox notices, a
    complaint and a family proxy given to someone else."""
    person = person_in(client, app, name=name)
    submitted = apply(client, person["headers"], hukou_body(person, app))
    assert submitted.status_code == 201, submitted.get_json()
    person["application_id"] = submitted.get_json()["application_id"]
    card = id_card(app, person)
    shown = present(client, person["headers"], card, mode="online", disclose=["name"])
    assert verify(client, verifier_headers(app, client, name=f"{name}入住的酒店"), code=shown["code"])["valid"]
    complaint = client.post(f"{API}/complaints", headers=person["headers"], json={
        "category": "suggestion", "content": f"{name}建议延长周末办理时间", "hall_code": "370102"})
    assert complaint.status_code == 201, complaint.get_json()
    return person, card


def test_the_export_holds_everything_of_the_caller_with_full_values(client, app):
    alice, card = _with_data(client, app, "张三丰")
    export = export_of(client, alice)
    assert export["status"] == "ready"
    data = export["data"]
    assert data["profile"]["id_number"] == alice["id_number"] and data["profile"]["phone"] == alice["phone"]
    assert data["profile"]["subject_id"] == alice["subject_id"] and data["profile"]["name"] == "张三丰"
    assert len(data["applications"]) == 1 and data["applications"][0]["form"]["phone"] == alice["phone"]
    assert data["applications"][0]["form"]["id_number"] == alice["id_number"]  # full, not masked
    assert [item["license_id"] for item in data["licenses"]] == [card]
    fields = {item["name"]: item["value"] for item in data["licenses"][0]["fields"]}
    assert fields["name"] == "张三丰"
    assert [(item["license_id"], item["verifier"], item["result"]) for item in data["license_access_log"]] == [
        (card, "张三丰入住的酒店", "valid")]
    assert {item["kind"] for item in data["inbox"]} >= {"application_status", "license_access"}
    assert data["complaints"][0]["content"] == "张三丰建议延长周末办理时间"
    assert data["sessions"] and all(item["session_id"] for item in data["sessions"])
    assert data["consents"] == [] and data["appointments"] == [] and data["bindings"] == []
    assert {"auth.login_succeeded", "account.export_requested"} <= {e["event"] for e in data["security_events"]}


def _identifying(export: dict, person: dict) -> set[str]:
    """A person's own values in their export: numbers, name, and the ids of their records."""
    return {person["id_number"], person["phone"], person["name"], person["subject_id"]} | {
        value for key, value in _leaves(export) if key in ID_KEYS}


def test_the_export_contains_no_other_persons_data(client, app):
    alice, _ = _with_data(client, app, "张三丰")
    bob, _ = _with_data(client, app, "李四光")
    alice_export, bob_export = export_of(client, alice)["data"], export_of(client, bob)["data"]
    bobs = _identifying(bob_export, bob)
    assert bob["application_id"] in bobs and len(bobs) > 10
    alice_text = json.dumps(alice_export, ensure_ascii=False)
    assert sorted(value for value in bobs if value in alice_text) == []
    # the positive control: alice's own values are all there
    assert {alice["id_number"], alice["phone"], "张三丰", alice["application_id"]} <= {
        value for _, value in _leaves(alice_export)}


def test_a_relative_appears_only_as_what_the_grantor_entered_and_who_acted(client, app):
    alice, _ = _with_data(client, app, "张三丰")
    bob, _ = _with_data(client, app, "李四光")
    grant(client, alice, bob, scopes=["applications:submit"])  # she names him: name and number she typed
    proxy = auth_headers(act_for(client, bob, alice)["access_token"])
    withdrawn = client.post(f"{API}/applications/{alice['application_id']}/withdraw", headers=proxy)
    assert withdrawn.status_code == 200  # he acted for her
    alice_export, bob_export = export_of(client, alice)["data"], export_of(client, bob)["data"]
    alice_text = json.dumps(alice_export, ensure_ascii=False)
    granted = alice_export["proxies"]["granted"][0]
    shared = {granted["proxy_id"], "李四光", bob["subject_id"]}
    assert sorted(value for value in _identifying(bob_export, bob) - shared if value in alice_text) == []
    assert bob["id_number"] not in alice_text and bob["phone"] not in alice_text
    assert granted["grantee_id_number_masked"] == bob["id_number"][:6] + "********" + bob["id_number"][-4:]
    assert alice_text.count(bob["subject_id"]) == 1  # the one "shown by" of his withdrawal in her timeline
    assert alice_export["applications"][0]["timeline"][-1]["shown_by"]["subject_id"] == bob["subject_id"]
    assert bob_export["proxies"]["received"][0]["grantor_subject_id"] == alice["subject_id"]
    assert alice["id_number"] not in json.dumps(bob_export, ensure_ascii=False)


def test_an_export_is_its_owners_only_and_expires(client, app):
    alice, bob = person_in(client, app, name="张三"), person_in(client, app, name="李四")
    export_id = export_of(client, alice)["export_id"]
    for path in (f"/me/data-exports/{export_id}", "/me/data-exports/ex_00000000000000000000"):
        response = client.get(f"{API}{path}", headers=bob["headers"])
        assert response.status_code == 404 and is_problem(response, 404)
    assert client.get(f"{API}/me/data-exports/{export_id}").status_code == 401
    with app.app_context():
        db.session.execute(update(DataExport).where(DataExport.export_id == export_id)
                           .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session.commit()
    assert client.get(f"{API}/me/data-exports/{export_id}", headers=alice["headers"]).status_code == 404
    export_of(client, alice)  # the next request sweeps expired copies away
    with app.app_context():
        assert db.session.scalar(select(DataExport).where(DataExport.export_id == export_id)) is None


def test_the_stored_copy_is_encrypted_and_the_steps_are_audited(client, app):
    alice = person_in(client, app, name="张三")
    export_id = export_of(client, alice)["export_id"]
    with app.app_context():
        row = db.session.scalar(select(DataExport).where(DataExport.export_id == export_id))
        for plain in (alice["id_number"], alice["phone"], "张三", alice["subject_id"]):
            assert plain not in row.payload_enc
        opened = json.loads(pii_cipher().decrypt(row.payload_enc, context=f"data-export:{export_id}"))
        assert opened["profile"]["id_number"] == alice["id_number"]
        events = [e.event for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.subject_id == alice["subject_id"], AuditEvent.event.like("account.export%"))
            .order_by(AuditEvent.seq))]
        assert events == ["account.export_requested", "account.export_built", "account.export_downloaded"]
        assert audit.verify().ok


def test_exports_are_limited_per_day_and_personal_tokens_only(client, app):
    alice, son = person_in(client, app, name="张三"), person_in(client, app, name="张小三")
    for _ in range(5):
        assert client.post(f"{API}/me/data-exports", headers=alice["headers"]).status_code == 202
    limited = client.post(f"{API}/me/data-exports", headers=alice["headers"])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0 and is_problem(limited, 429)
    grant(client, son, alice)
    proxy = auth_headers(act_for(client, alice, son)["access_token"])
    assert client.post(f"{API}/me/data-exports", headers=proxy).status_code == 403


@needs_redis("with Redis the export is built by an RQ worker")
def test_the_export_is_pending_until_a_real_worker_builds_it(client, app):
    from rq import Queue

    from app.jobs import QUEUE_NAME
    from app.redis_topology import queue_connection
    alice = person_in(client, app, name="张三")
    with app.app_context():
        Queue(QUEUE_NAME, connection=queue_connection()).empty()
    started = client.post(f"{API}/me/data-exports", headers=alice["headers"]).get_json()
    assert started["status"] == "pending"
    pending = client.get(f"{API}/me/data-exports/{started['export_id']}", headers=alice["headers"]).get_json()
    assert pending["status"] == "pending" and pending["data"] is None
    run_worker(app)
    ready = client.get(f"{API}/me/data-exports/{started['export_id']}", headers=alice["headers"]).get_json()
    assert ready["status"] == "ready" and ready["data"]["profile"]["id_number"] == alice["id_number"]


def test_export_operations_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    created = paths["/api/v1/me/data-exports"]["post"]
    assert "202" in created["responses"] and created["security"] == [{"bearerAuth": []}]
    fetched = paths["/api/v1/me/data-exports/{export_id}"]["get"]
    assert fetched["summary"] and "404" in fetched["responses"]
    example = fetched["responses"]["200"]["content"]["application/json"]["example"]
    assert example["status"] == "ready" and "profile" in example["data"]


def _assisted_draft(client, app, helper, person, contact="phone") -> str:
    body = {**card_request(person, service_code(app, LIXIA), upload(client, helper["headers"])), "contact": contact,
            "applicant": {"id_number": person["id_number"], "name": person["name"]}}
    made = client.post(f"{API}/assisted-applications", json=body, headers=helper["headers"])
    assert made.status_code == 201, made.get_json()
    return made.get_json()["application_id"]


def test_the_export_holds_what_hall_staff_filled_in_for_the_caller(client, app):
    alice, bob = person_in(client, app, name="张三丰"), person_in(client, app, name="李四光")
    helper = staff_member(app, LIXIA, name="帮办员")
    waiting = _assisted_draft(client, app, helper, alice)
    declined = _assisted_draft(client, app, helper, alice, contact="desk")
    assert client.delete(f"{API}/assisted-applications/{declined}", headers=alice["headers"]).status_code == 204
    for_bob = _assisted_draft(client, app, helper, bob)

    data = export_of(client, alice)["data"]
    drafts = data["assisted_applications"]
    assert [(d["application_id"], d["status"], d["contact"]) for d in drafts] == [
        (waiting, "pending", "phone"), (declined, "declined", "desk")]
    assert drafts[0]["form"]["id_number"] == alice["id_number"] and drafts[0]["form"]["phone"] == alice["phone"]
    assert drafts[0]["helper"]["name"] == "帮办员" and drafts[0]["hall_code"] == LIXIA
    assert drafts[0]["materials"] == [{"name": "居民身份证", "kind": "file"}]
    assert data["applications"] == []  # nothing is submitted before she confirms
    alice_text = json.dumps(data, ensure_ascii=False)
    assert for_bob not in alice_text and bob["id_number"] not in alice_text and "李四光" not in alice_text
    assert [d["application_id"] for d in export_of(client, bob)["data"]["assisted_applications"]] == [for_bob]
