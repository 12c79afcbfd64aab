"""Real-name levels: L3 by a face check at the provider (the local fake of Tencent Cloud FaceID,
signed requests checked by the fake), and services requiring a level (`ensure_level_for`,
`require_level`, REQUIRE_L3_FOR)."""
from __future__ import annotations

import pytest
from flask import g
from sqlalchemy import select

from app.errors import Forbidden
from app.extensions import db
from app.identity.levels import ensure_level_for, require_level
from app.identity.models import FaceVerification, Person
from app.security.models import AuditEvent
from tests.fakes.facecheck_server import FakeFaceIdServer
from tests.support.helpers import API, another_worker, register_person

FACES = f"{API}/me/face-verifications"


@pytest.fixture
def faceid():
    with FakeFaceIdServer() as fake:
        yield fake


def _config(fake, **overrides):
    return {"FACEID_SECRET_ID": fake.secret_id, "FACEID_SECRET_KEY": fake.secret_key, "FACEID_RULE_ID": fake.rule_id,
            "FACEID_API_BASE": fake.base_url, "MINIPROGRAM_HTTP_TIMEOUT": 2, **overrides}


@pytest.fixture
def face_app(app, faceid):
    with another_worker(app, **_config(faceid)) as worker:
        yield worker


def _level(app, subject_id):
    with app.app_context():
        return db.session.scalar(select(Person.real_name_level).where(Person.subject_id == subject_id))


def _events(app, prefix):
    with app.app_context():
        return [e.event for e in db.session.scalars(select(AuditEvent).where(AuditEvent.event.like(prefix + "%"))
                                                    .order_by(AuditEvent.seq))]


def test_a_passed_face_check_raises_the_level_to_3(face_app, faceid):
    web = face_app.test_client()
    person = register_person(web, face_app, name="许一")
    started = web.post(FACES, headers=person["headers"])
    assert started.status_code == 201, started.get_json()
    body = started.get_json()
    assert body["status"] == "pending" and body["url"].startswith(faceid.base_url + "/h5/")
    assert body["real_name_level"] == 2
    token = faceid.token_for(person["id_number"])
    assert faceid.checks[token]["Name"] == "许一"
    pending = web.get(f"{FACES}/{body['verification_id']}", headers=person["headers"])
    assert pending.status_code == 200 and pending.get_json()["status"] == "pending"
    faceid.finish(token, passed=True, sim="93.10")
    done = web.get(f"{FACES}/{body['verification_id']}", headers=person["headers"]).get_json()
    assert done["status"] == "passed" and done["real_name_level"] == 3 and done["completed_at"].endswith("Z")
    assert web.get(f"{API}/me", headers=person["headers"]).get_json()["real_name_level"] == 3
    assert _events(face_app, "face_check.") == ["face_check.started", "face_check.passed"]
    calls = len(faceid.actions)
    web.get(f"{FACES}/{body['verification_id']}", headers=person["headers"])
    assert len(faceid.actions) == calls  # a final answer is not asked for again
    assert faceid.actions == ["DetectAuth", "GetDetectInfoEnhanced", "GetDetectInfoEnhanced"]


@pytest.mark.parametrize("outcome", ["liveness_failed", "low_similarity", "another_person"])
def test_a_failed_check_leaves_the_level(face_app, faceid, outcome):
    web = face_app.test_client()
    person = register_person(web, face_app, name="许二")
    verification = web.post(FACES, headers=person["headers"]).get_json()["verification_id"]
    token = faceid.token_for(person["id_number"])
    if outcome == "liveness_failed":
        faceid.finish(token, passed=False)
    elif outcome == "low_similarity":
        faceid.finish(token, passed=True, sim="41.00")
    else:
        faceid.finish(token, passed=True, id_card="110105194912310047", name="别人")
    done = web.get(f"{FACES}/{verification}", headers=person["headers"]).get_json()
    assert done["status"] == "failed" and done["real_name_level"] == 2 and done["reason"]
    assert _level(face_app, person["subject_id"]) == 2
    assert _events(face_app, "face_check.") == ["face_check.started", "face_check.failed"]


def test_an_unfinished_check_expires(app, faceid):
    with another_worker(app, **_config(faceid, FACE_CHECK_TTL=-1)) as worker:
        web = worker.test_client()
        person = register_person(web, worker, name="许三")
        verification = web.post(FACES, headers=person["headers"]).get_json()["verification_id"]
        done = web.get(f"{FACES}/{verification}", headers=person["headers"]).get_json()
        assert done["status"] == "expired" and done["real_name_level"] == 2


def test_another_persons_check_is_404(face_app, faceid):
    web = face_app.test_client()
    alice, bob = register_person(web, face_app, name="许四"), register_person(web, face_app, name="许五")
    verification = web.post(FACES, headers=alice["headers"]).get_json()["verification_id"]
    response = web.get(f"{FACES}/{verification}", headers=bob["headers"])
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert web.get(f"{FACES}/fv_nothing", headers=alice["headers"]).status_code == 404


def test_without_a_provider_it_is_503_naming_the_settings(client, app):
    person = register_person(client, app, name="许六")
    response = client.post(FACES, headers=person["headers"])
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert "FACEID_SECRET_ID" in response.get_json()["detail"]


def test_a_wrong_secret_is_refused_by_the_provider(app, faceid):
    with another_worker(app, **_config(faceid, FACEID_SECRET_KEY="not-the-secret")) as worker:
        web = worker.test_client()
        person = register_person(web, worker, name="许七")
        response = web.post(FACES, headers=person["headers"])
        assert response.status_code == 502 and "AuthFailure.SignatureFailure" in response.get_json()["detail"]
        with worker.app_context():
            assert db.session.scalar(select(FaceVerification)) is None


def test_an_unreachable_provider_is_503(app):
    with another_worker(app, FACEID_SECRET_ID="id", FACEID_SECRET_KEY="key", FACEID_RULE_ID="1",
                        FACEID_API_BASE="http://127.0.0.1:9", MINIPROGRAM_HTTP_TIMEOUT=0.5) as worker:
        web = worker.test_client()
        person = register_person(web, worker, name="许八")
        assert web.post(FACES, headers=person["headers"]).status_code == 503


# ---- requiring a level


def _person(app, subject_id):
    return db.session.scalar(select(Person).where(Person.subject_id == subject_id))


def test_ensure_level_for_follows_require_l3_for(client, app):
    person = register_person(client, app, name="许九")
    with app.app_context():
        ensure_level_for(_person(app, person["subject_id"]), "account_closure")  # L2 is enough by default
    with another_worker(app, REQUIRE_L3_FOR="account_closure, license_binding") as strict:
        with strict.app_context():
            holder = _person(strict, person["subject_id"])
            ensure_level_for(holder, "instant_approval")
            with pytest.raises(Forbidden) as refused:
                ensure_level_for(holder, "license_binding")
            assert refused.value.slug == "real-name-level-required"
            assert refused.value.extra == {"required_level": 3, "real_name_level": 2, "action": "license_binding"}
            holder.real_name_level = 3
            ensure_level_for(holder, "license_binding")
            db.session.rollback()


def test_the_require_level_decorator_answers_403_problem(client, app):
    person = register_person(client, app, name="许十")

    @require_level(3)
    def view():
        return "done"

    with app.test_request_context(headers=person["headers"]):
        with pytest.raises(Forbidden) as refused:
            view()
        assert "L3" in refused.value.detail and "face-verifications" in refused.value.detail
    with app.app_context():
        _person(app, person["subject_id"]).real_name_level = 3
        db.session.commit()
    with app.test_request_context(headers=person["headers"]):
        g.pop("principal", None)
        assert view() == "done"
