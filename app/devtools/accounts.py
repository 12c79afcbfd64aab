"""Demo accounts for development: residents of the demo registry and hall staff, one shared password.

The password is derived from SECRET_KEY (which outside production lives in instance/dev-secrets.json),
so nothing stores it and every checkout has its own; it is set when `flask seed` creates an account
and never changed afterwards. Nothing here runs in production, and the test suite seeds no accounts.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

DEVELOPMENT = "development"


@dataclass(frozen=True)
class DemoAccount:
    id_number: str
    name: str
    role: str                     # citizen, hall_admin, hall_staff, platform_admin
    hall_code: str | None = None
    hall_name: str | None = None
    phone: str | None = None
    note: str = ""


ROLE_NAMES = {"citizen": "居民", "hall_admin": "大厅管理员", "hall_staff": "大厅工作人员",
              "platform_admin": "平台管理员"}

# Residents come from app/identity/demo_registry.json; staff are added to the registry when created.
DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("11010519491231002X", "张三", "citizen", phone="13800138000",
                note="示例科技有限公司法定代表人"),
    DemoAccount("37010219850315123X", "王芳", "citizen", phone="13905310001",
                note="王小明（未成年）的监护人，济南泉城商贸有限公司法定代表人"),
    DemoAccount("370202199007082343", "赵敏", "citizen", note="青岛市南区赵敏小吃店经营者，信用等级一般失信"),
    DemoAccount("370103198001011233", "刘建国", "hall_admin", "370100", "济南市",
                note="济南市及其区县大厅的管理看板"),
    DemoAccount("370102198605122341", "陈静", "hall_admin", "370102", "历下区", note="历下区大厅的管理看板"),
    DemoAccount("370102199209203451", "孙伟", "hall_staff", "370102", "历下区", note="受理、审批历下区的办件"),
    DemoAccount("370102198806112377", "李强", "hall_staff", "370100", "济南市", note="济南市本级大厅的窗口人员"),
    DemoAccount("370105197506064574", "周明", "platform_admin", note="平台管理员"),
)
# Registry residents without an account, to try registration (`POST /auth/register`).
UNREGISTERED_DEMO_PERSON = ("440524188001010014", "李四")


def demo_password(secret_key: str) -> str:
    """The demo accounts' password for this checkout: letters and digits, from SECRET_KEY."""
    digest = hmac.new(secret_key.encode(), b"ishandong demo accounts", hashlib.sha256).digest()
    letters = base64.b32encode(digest).decode().lower().rstrip("=")
    return f"sd{letters[:8]}{digest[-1] % 90 + 10}"


def seed_demo_accounts() -> str:
    """Create the demo accounts that are missing (development only; idempotent)."""
    from flask import current_app
    env = current_app.config.get("APP_ENV")
    if env != DEVELOPMENT:
        return f"skipped in {env}"
    password = demo_password(current_app.config["SECRET_KEY"])
    created = create_demo_accounts(password)
    return (f"{len(DEMO_ACCOUNTS)} demo accounts, {created} created, password {password} "
            "(flask --app wsgi demo accounts lists them)")


def create_demo_accounts(password: str) -> int:
    """Create each demo account that does not exist yet with `password`; returns how many were created."""
    from ..extensions import db
    from ..identity import persons
    from ..security import audit
    created = 0
    for account in DEMO_ACCOUNTS:
        if account.role != "citizen":
            _, new = persons.create_staff(role=account.role, hall_code=account.hall_code,
                                          id_number=account.id_number, name=account.name, password=password)
            created += new
            continue
        if persons.find_person_by_id_number(account.id_number) is not None:
            continue
        phone = account.phone if account.phone and not persons.phone_taken(account.phone) else None
        person = persons.new_person(id_number=account.id_number, name=account.name, phone=phone,
                                    password=password)
        db.session.flush()
        audit.record("person.registered", subject_id=person.subject_id, actor="operator",
                     details={"real_name_level": person.real_name_level, "channel": "seed"})
        db.session.commit()
        created += 1
    return created
