"""Shared set-up of the security and contract-fuzzing tests (no tests here): a small world with one
object of every kind an endpoint takes an id for, owned by `alice`, and the other callers.

    world = build_world(app, client)
    client.get(f"{API}/wallet/licenses/{world.ids['license_id']}", headers=world.bob["headers"])  # 404
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.catalogue.models import Bundle, Service
from app.extensions import db
from app.wallet.models import License
from tests.support.helpers import (API, add_registry_entity, add_registry_person, auth_headers, client_token, create_client,
                           create_staff, register_person, valid_credit_code, valid_id_number, valid_phone)
from tests.support.applications import (HUKOU_MOVE, JINAN_LIXIA, apply, code, hukou_body, id_card, person_in,
                                             residence_body)
from tests.support.wallet import ID_CARD, id_card_fields, issue, present

PROBLEM = "application/problem+json"
HALL = JINAN_LIXIA
SERVICE = code(JINAN_LIXIA, HUKOU_MOVE)


@dataclass
class World:
    alice: dict  # citizen owning every object below
    bob: dict  # another citizen
    hall_admin: dict  # headers: hall admin of 370102
    hall_staff: dict  # headers: hall staff of 370102
    other_admin: dict  # headers: hall admin of another hall (370103)
    platform_admin: dict | None
    issuer: dict  # headers: issuer client (居民身份证)
    verifier: dict  # headers: verifier client
    issuer_credentials: tuple[str, str]
    ids: dict = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # values that must never be logged

    def headers(self, role: str) -> dict:
        return {"citizen": self.alice["headers"], "other_citizen": self.bob["headers"],
                "hall_admin": self.hall_admin, "hall_staff": self.hall_staff, "other_admin": self.other_admin,
                "issuer": self.issuer, "verifier": self.verifier, "anonymous": {}}[role]


# who usually calls an operation (the rest is the citizen)
ROLE_BY_PREFIX = (
    ("POST /api/v1/licenses", "issuer"),
    ("POST /api/v1/verifications", "verifier"),
    ("POST /api/v1/verification-requests", "verifier"),
    ("POST /api/v1/halls/", "hall_admin"),
    ("PATCH /api/v1/halls/", "hall_admin"),
    ("DELETE /api/v1/halls/", "hall_admin"),
    ("GET /api/v1/halls/{code}/services/", "hall_admin"),
    ("GET /api/v1/halls/{hall_code}/applications", "hall_admin"),
    ("GET /api/v1/halls/{hall_code}/rectifications", "hall_admin"),
    ("GET /api/v1/rectifications/", "hall_admin"),
    ("POST /api/v1/rectifications/", "hall_admin"),
    ("POST /api/v1/applications/{application_id}/transitions", "hall_admin"),
    ("POST /api/v1/applications/{application_id}/handovers", "hall_admin"),
    ("POST /api/v1/assisted-applications", "hall_staff"),
    ("GET /api/v1/halls/{hall_code}/queues/", "hall_admin"),
    ("GET /api/v1/halls/{hall_code}/pickups", "hall_admin"),
    ("POST /api/v1/auth/logout", "throwaway"),
    ("GET /api/v1/open/ping", "anonymous"),
)


def main_role(label: str) -> str:
    for prefix, role in ROLE_BY_PREFIX:
        if label.startswith(prefix):
            return role
    return "citizen"


def real_path_parameters(path: str, ids: dict) -> dict:
    """Ids of existing objects for a path template's parameters."""
    by_name = {"hall_code": ids["hall_code"], "license_id": ids["license_id"],
               "presentation_id": ids["presentation_id"], "application_id": ids["application_id"],
               "ticket_id": ids["ticket_id"], "credit_code": ids["credit_code"], "agent_id": ids["agent_id"],
               "bundle_code": ids["bundle_code"], "list_id": ids["list_id"], "service_code": ids["service_code"]}
    values = {}
    for name in by_name:
        if "{" + name + "}" in path:
            values[name] = by_name[name]
    if "{code}" in path:
        if path.startswith(f"{API}/halls/"):
            values["code"] = ids["hall_code"]
        elif path.startswith(f"{API}/license-types/"):
            values["code"] = ids["license_type"]
        elif path.startswith(f"{API}/bundles/"):
            values["code"] = ids["bundle_code"]
        else:
            values["code"] = ids["service_code"]
    if path.endswith("/evaluation"):
        values["application_id"] = ids["approved_application_id"]
    if path.startswith(f"{API}/halls/{{code}}/services/{{service_code}}"):
        values["service_code"] = ids.get("hall_service_code", ids["service_code"])
    return values


def _ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def _future(days=30) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()


def status_list_id(app, license_id: str) -> str | None:
    with app.app_context():
        row = db.session.scalar(select(License).where(License.license_id == license_id))
        return getattr(row, "status_list_id", None)


def first_bundle(app) -> str:
    with app.app_context():
        return db.session.scalars(select(Bundle.code).order_by(Bundle.code).limit(1)).first()


def build_world(app, client, *, sacrificial_service: bool = False) -> World:
    """alice with a license, a presentation, an application, a rated application (and its
    rectification ticket), a company with an agent; bob; hall admins and staff; issuer; verifier."""
    alice = person_in(client, app, name="张三")
    bob = register_person(client, app, name="李四")
    issuer_id, issuer_secret = create_client(app, "issuer", license_types=(ID_CARD,), name="济南市公安局历下区分局")
    issuer = auth_headers(client_token(client, issuer_id, issuer_secret))
    verifier_id, verifier_secret = create_client(app, "verifier", license_types=(ID_CARD,), name="泉城大酒店")
    verifier = auth_headers(client_token(client, verifier_id, verifier_secret))
    world = World(alice=alice, bob=bob, hall_admin=create_staff(app, HALL, "hall_admin"),
                  hall_staff=create_staff(app, HALL, "hall_staff"), other_admin=create_staff(app, "370103", "hall_admin"),
                  platform_admin=None, issuer=issuer, verifier=verifier,
                  issuer_credentials=(issuer_id, issuer_secret))
    world.secrets += [alice["password"], bob["password"], issuer_secret, verifier_secret,
                      alice["refresh_token"], bob["refresh_token"]]

    card = issue(client, issuer, holder_id_number=alice["id_number"], fields=id_card_fields(name=alice["name"]))
    shown = present(client, alice["headers"], card["license_id"], mode="online", disclose=["name"])
    submitted = _ok(apply(client, alice["headers"], hukou_body(alice, app)), 201)
    approved = _ok(apply(client, alice["headers"], residence_body(alice, id_card(app, alice))), 201)
    rated = _ok(client.post(f"{API}/applications/{approved['application_id']}/evaluation", headers=alice["headers"],
                            json={"rating": 1, "comment": "等了很久"}), 201)

    credit_code = valid_credit_code()
    add_registry_entity(app, credit_code=credit_code, name="山东齐鲁测试有限公司",
                        representative_id_number=alice["id_number"])
    _ok(client.post(f"{API}/enterprises", json={"credit_code": credit_code, "name": "山东齐鲁测试有限公司"},
                    headers=alice["headers"]), 201)
    agent = _ok(client.post(f"{API}/enterprises/{credit_code}/agents", headers=alice["headers"],
                            json={"id_number": bob["id_number"], "scopes": ["applications:submit"],
                                  "expires_at": _future()}), 201)
    world.ids = {
        "license_id": card["license_id"], "presentation_id": shown["presentation_id"], "code": shown["code"],
        "application_id": submitted["application_id"], "approved_application_id": approved["application_id"],
        "ticket_id": rated["rectification"]["ticket_id"], "credit_code": credit_code,
        "agent_id": agent.get("agent_id") or agent.get("id"), "hall_code": HALL, "service_code": SERVICE,
        "license_type": ID_CARD, "bundle_code": first_bundle(app),
        "list_id": status_list_id(app, card["license_id"]),
    }
    if sacrificial_service:
        world.ids["hall_service_code"] = _new_hall_service(app, client, world.hall_admin)
    return world


def _new_hall_service(app, client, admin_headers) -> str:
    """A service published by the hall admin for the fuzzer to change and withdraw."""
    with app.app_context():
        there = set(db.session.scalars(select(Service.base_code).where(Service.hall_code == "370100")))
        here = set(db.session.scalars(select(Service.base_code).where(Service.hall_code == HALL)))
        base_code = sorted(there - here)[0]
    body = _ok(client.post(f"{API}/halls/{HALL}/services", headers=admin_headers,
                           json={"base_code": base_code, "promised_limit_days": 0}), 201)
    return body["code"]


def new_person(app, client, name="王五") -> dict:
    """A registered and logged-in citizen."""
    return register_person(client, app, name=name)


def registry_person(app, name="赵六") -> tuple[str, str]:
    """(id_number, phone) of a registry entry without an account."""
    id_number, phone = valid_id_number(), valid_phone()
    add_registry_person(app, id_number=id_number, name=name, phone=phone)
    return id_number, phone


def is_problem(response, status: int | None = None) -> bool:
    body = response.get_json(silent=True) if hasattr(response, "get_json") else response.json()
    mimetype = response.mimetype if hasattr(response, "mimetype") else response.headers.get("Content-Type", "")
    return (mimetype.split(";")[0] == PROBLEM and isinstance(body, dict)
            and {"type", "title", "status", "detail"} <= set(body)
            and body["status"] == response.status_code and (status is None or response.status_code == status))


ID_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
