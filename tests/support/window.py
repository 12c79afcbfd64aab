"""Support for the hall desk tests (window intake, 受审分离, 帮办代办, 全省通办; no tests here)."""
from __future__ import annotations

from sqlalchemy import func, select

from app.applications.models import Application
from app.catalogue.models import Service
from app.extensions import db
from app.identity import persons
from tests.support.helpers import API, DEFAULT_PASSWORD, add_registry_person, auth_headers, login, valid_id_number, valid_phone
from tests.support.applications import apply

LIXIA, SHIZHONG, QINGDAO_SHINAN = "370102", "370103", "370202"
SOCIAL_CARD = "002011001000"  # 社会保障卡申领: 全省通办, 窗口领取 or post, a scanned ID card will do
HUKOU_MOVE = "000705006000"  # 户口迁移: not 全省通办


def walk_in(app, *, region: str = LIXIA, name: str = "赵六") -> dict:
    """A resident in the population registry with no account on the platform."""
    id_number = valid_id_number(region=region)
    add_registry_person(app, id_number=id_number, name=name)
    return {"id_number": id_number, "name": name, "phone": valid_phone()}


def service_code(app, hall_code: str, base_code: str = SOCIAL_CARD) -> str:
    with app.app_context():
        code = db.session.scalar(select(Service.code).where(Service.hall_code == hall_code,
                                                            Service.base_code == base_code,
                                                            Service.status == "published"))
    assert code, (hall_code, base_code)
    return code


def department_of(app, code: str) -> str:
    with app.app_context():
        return db.session.get(Service, code).department


def staff_member(app, hall_code: str, *, department: str | None = None, role: str = "hall_staff",
                 name: str = "李工作") -> dict:
    """A hall staff member (of `department`, for 受审分离); returns {"headers", "subject_id", "name"}."""
    id_number = valid_id_number()
    with app.app_context():
        person, _ = persons.create_staff(role=role, hall_code=hall_code, id_number=id_number, name=name,
                                         password=DEFAULT_PASSWORD, department=department)
        subject_id = person.subject_id
    tokens = login(app.test_client(), id_number)
    return {"headers": auth_headers(tokens["access_token"]), "subject_id": subject_id, "name": name}


def card_request(person: dict, code: str, file_id: str, **form) -> dict:
    """社会保障卡申领 for `person` with a scanned ID card (`file_id`), collected at the window."""
    values = {"name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
              "bank_name": "中国银行", "delivery_method": "窗口领取", **form}
    return {"service_code": code, "form": values, "materials": [{"name": "居民身份证", "file_id": file_id}]}


def take_in(client, staff_headers, person, code, file_id, *, identity_check="id_card_reader", key=None, **extra):
    """POST /applications at the window for `person`."""
    body = {**card_request(person, code, file_id), "applicant": {"id_number": person["id_number"],
                                                                  "name": person["name"]},
            "identity_check": identity_check, **extra}
    return apply(client, staff_headers, body, key=key)


def act(client, headers, application_id, action, comment=None, **extra):
    body = {"action": action, **({"comment": comment} if comment else {}), **extra}
    return client.post(f"{API}/applications/{application_id}/transitions", json=body, headers=headers)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def application_row(app, application_id: str) -> Application:
    with app.app_context():
        row = db.session.scalar(select(Application).where(Application.application_id == application_id))
        db.session.expunge(row)
        return row
