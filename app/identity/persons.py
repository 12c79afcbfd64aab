"""Persons: look-ups, registration, phone numbers, registry-backed facts, staff roles."""
from __future__ import annotations

import logging

from sqlalchemy import bindparam, func, select

from ..catalogue.models import Hall, Service
from ..errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.passwords import PasswordPolicyError, check_policy, hash_password
from ..security.pii import mask_id_number, mask_phone
from ..security.rbac import Principal
from . import registries, sms
from .common import commit, field_id_number, field_phone, new_id, registry_mismatch
from .identifiers import IdentifierError, normalize_id_number, normalize_phone
from .levels import REGISTRY_MATCHED
from .models import HALL_ROLES, STAFF_ROLES, ChannelBinding, Person, StaffAssignment, id_index, phone_index

logger = logging.getLogger("app.identity")



def find_person_by_id_number(id_number: str) -> Person | None:
    """The person with this ID number (looked up by blind index), or None."""
    try:
        normalized = normalize_id_number(id_number)
    except IdentifierError:
        return None
    return db.session.scalar(select(Person).where(Person.id_number_index == id_index(normalized)))


def find_person_by_phone(phone: str) -> Person | None:
    """The person with this phone number, or None."""
    try:
        normalized = normalize_phone(phone)
    except IdentifierError:
        return None
    return db.session.scalar(select(Person).where(Person.phone_index == phone_index(normalized)))


def person_by_subject_id(subject_id: str) -> Person | None:
    """The person with this subject id ("p_..."), or None."""
    if not isinstance(subject_id, str) or not subject_id.startswith("p_"):
        return None
    return db.session.scalar(select(Person).where(Person.subject_id == subject_id))


def acting_person(principal: Principal) -> Person:
    """The person behind a personal token (not a company or client token); 403 otherwise."""
    return personal(principal, lambda: person_by_subject_id(principal.subject_id))


def personal(principal: Principal, load_person) -> Person:
    """The one rule for acting as oneself: a person's own token (403 for company, client and act-as
    tokens), an account that exists and is active (401 otherwise). `load_person` is called only then."""
    if principal.subject_type != "person" or principal.claims.get("act"):
        raise Forbidden("请使用个人身份登录后再办理此操作")
    person = load_person()
    if person is None or not person.active:
        raise Unauthorized("账号不存在或已停用")
    return person


def new_person(*, id_number: str, name: str, phone: str | None, password: str | None,
               real_name_level: int = REGISTRY_MATCHED) -> Person:
    """A new active person in the session (not flushed)."""
    person = Person(subject_id=new_id("p"), name=name, real_name_level=real_name_level, active=True)
    person.id_number = id_number
    person.phone = phone
    person.password_hash = hash_password(password) if password else None
    db.session.add(person)
    return person


def without_account(person: Person) -> bool:
    """A person known only from a hall window (一窗受理, 帮办代办): no password, no phone, no binding.
    Registering with their ID number takes this record over, with the applications it holds."""
    return person.active and person.password_hash is None and person.phone_index is None and \
        db.session.scalar(select(ChannelBinding.id).where(ChannelBinding.subject_id == person.subject_id)
                          .limit(1)) is None


def phone_taken(phone: str, *, other_than: Person | None = None) -> bool:
    owner = find_person_by_phone(phone)
    return owner is not None and (other_than is None or owner.id != other_than.id)


def checked_password(password: str, *, field: str = "password") -> None:
    """422 naming `field` unless the password meets the policy."""
    try:
        check_policy(password)
    except PasswordPolicyError as exc:
        raise ValidationFailed.field(field, exc.message) from None


def register_person(*, id_number: str, name: str, phone: str, password: str, sms_code: str | None) -> Person:
    """Register a person at real-name level 2: the phone is proven by its `register` code before
    anything else is looked at, then the name and ID number must match the population registry;
    422 / 409 otherwise, and the code is used up only by a registration that succeeds."""
    id_number, phone, name = field_id_number(id_number), field_phone(phone), name.strip()
    checked_password(password)
    proven = sms.require(phone, "register", sms_code)
    if not registries.population().matches(id_number=id_number, name=name, phone=phone):
        raise registry_mismatch()
    existing = find_person_by_id_number(id_number)
    if existing is not None and not without_account(existing):
        raise Conflict("该身份证号码已注册，请直接登录")
    if phone_taken(phone):
        raise Conflict("该手机号已绑定其他账号")
    sms.consume(proven)
    if existing is not None:  # taken in at a hall window: the account starts with what was done there
        person = existing
        person.phone, person.password_hash = phone, hash_password(password)
    else:
        person = new_person(id_number=id_number, name=name, phone=phone, password=password,
                            real_name_level=REGISTRY_MATCHED)
    db.session.flush()
    audit.record("person.registered", subject_id=person.subject_id, actor=person.subject_id,
                 details={"real_name_level": person.real_name_level, "channel": "app",
                          "had_window_record": existing is not None})
    commit("该身份证号码或手机号已注册")
    logger.info("person registered: %s", mask_id_number(id_number))
    return person


def set_phone(*, subject_id: str, phone: str) -> Person:
    """Record a verified phone number for a person (e.g. from a mini-program); 409 when taken."""
    person = person_by_subject_id(subject_id)
    if person is None:
        raise NotFound("用户不存在")
    phone = field_phone(phone)
    if phone_taken(phone, other_than=person):
        raise Conflict("该手机号已绑定其他账号")
    person.phone = phone
    audit.record("person.phone_changed", subject_id=subject_id, actor=subject_id,
                 details={"phone_masked": mask_phone(phone)})
    commit("该手机号已绑定其他账号")
    return person


def guardian_of(parent_id_number: str, child_id_number: str) -> bool:
    """True when the population registry names the parent as guardian of a child who is a minor."""
    try:
        parent, child = normalize_id_number(parent_id_number), normalize_id_number(child_id_number)
    except IdentifierError:
        return False
    return registries.is_minor(child) and registries.population().guardian_of(
        parent_id_number=parent, child_id_number=child)


def credit_class(id_number_or_credit_code: str) -> str:
    """诚信守法 / 轻微失信 / 一般失信 / 严重失信 for an ID number or credit code (IdentifierError if neither)."""
    return registries.credit().credit_class(registries.normalize_credit_key(id_number_or_credit_code))


_STAFF_ROLES = select(StaffAssignment.role, StaffAssignment.hall_code).where(
    StaffAssignment.subject_id == bindparam("subject"))


def staff_roles(subject_id: str) -> tuple[set[str], dict[str, str]]:
    """A person's roles now and their halls (hall code -> hall_admin or hall_staff, admin wins); every sign-in
    and refresh asks, so the query is built once and reads two columns."""
    return _folded(db.session.execute(_STAFF_ROLES, {"subject": subject_id}))


def staff_roles_column(subject_id):
    """`staff_roles` of the person `subject_id` (a column) as one text column, for a statement that reads
    them along with something else (the refresh's rotation); `staff_roles_from` reads it back."""
    assignment = StaffAssignment.role + ":" + func.coalesce(StaffAssignment.hall_code, "")
    return select(func.aggregate_strings(assignment, ",")).where(
        StaffAssignment.subject_id == subject_id).scalar_subquery()


def staff_roles_from(column: str | None) -> tuple[set[str], dict[str, str]]:
    pairs = (item.partition(":")[::2] for item in column.split(",")) if column else ()
    return _folded((role, hall or None) for role, hall in pairs)


def _folded(assignments) -> tuple[set[str], dict[str, str]]:
    roles, halls = {"citizen"}, {}
    for role, hall_code in assignments:
        roles.add(role)
        if hall_code and (role == "hall_admin" or halls.get(hall_code) != "hall_admin"):
            halls[hall_code] = role
    return roles, halls


def hall_department_exists(hall_code: str | None, department: str) -> bool:
    """Whether `department` runs services at the hall (so that staff can decide for it there)."""
    return hall_code is not None and db.session.scalar(select(Service.code).where(
        Service.hall_code == hall_code, Service.department == department).limit(1)) is not None


def create_staff(*, role: str, id_number: str, name: str, hall_code: str | None = None,
                 password: str | None = None, phone: str | None = None,
                 department: str | None = None) -> tuple[Person, bool]:
    """Give a person a staff role, creating the person when absent; returns (person, created).
    `department` (受审分离): hall staff who decide that department's applications; giving it to an
    existing assignment moves the person to that department."""
    if role not in STAFF_ROLES:
        raise ValidationFailed.field("role", "角色应为 hall_admin、hall_staff 或 platform_admin")
    if role in HALL_ROLES and not hall_code:
        raise ValidationFailed.field("hall", "大厅工作人员必须指定大厅编码")
    if role == "platform_admin":
        hall_code = None
    if hall_code is not None and db.session.get(Hall, hall_code) is None:
        raise ValidationFailed.field("hall", f"大厅编码 {hall_code} 不存在")
    if department is not None and not hall_department_exists(hall_code, department):
        raise ValidationFailed.field("department", f"大厅 {hall_code} 没有部门「{department}」实施的事项")
    id_number = field_id_number(id_number)
    phone = field_phone(phone) if phone else None
    person, created = find_person_by_id_number(id_number), False
    if person is None:
        if not password:
            raise ValidationFailed.field("password", "新建人员时必须设置密码")
        checked_password(password)
        if isinstance(registries.population(), registries.DatabasePopulationRegistry) and \
                not registries.population().matches(id_number=id_number, name=name):
            registries.add_person(id_number=id_number, name=name, phone=phone)
        if phone and phone_taken(phone):
            raise Conflict("该手机号已绑定其他账号")
        person, created = new_person(id_number=id_number, name=name, phone=phone, password=password), True
        db.session.flush()
    exists = db.session.scalar(select(StaffAssignment).where(
        StaffAssignment.subject_id == person.subject_id, StaffAssignment.role == role,
        StaffAssignment.hall_code.is_(None) if hall_code is None else StaffAssignment.hall_code == hall_code))
    if exists is None:
        db.session.add(StaffAssignment(subject_id=person.subject_id, hall_code=hall_code, role=role,
                                       department=department))
        audit.record("staff.assigned", subject_id=person.subject_id, actor="operator",
                     details={"role": role, "hall_code": hall_code, "created": created, "department": department})
    elif department is not None and exists.department != department:
        exists.department = department
        audit.record("staff.assigned", subject_id=person.subject_id, actor="operator",
                     details={"role": role, "hall_code": hall_code, "created": False, "department": department})
    commit("该人员已拥有此角色")
    return person, created
