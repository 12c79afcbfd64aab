"""The license an approval produces: its fields from the registries, the application and the
issuing department (never made up), signed by that department's issuer key.

Where each field comes from, in this order:
- the registries: the holder's name (verified against the population registry when the person
  registered), ID number, gender and birth date (the wallet derives them from the ID number); a
  company's registered name, credit code and legal representative (legal-entity registry);
- the department, as the issuer: issuing or registration authority, issue date, the document
  number it assigns, a 居住证's yearly endorsement and a 营业执照's date of establishment (the
  day it is issued, 公司法 第三十三条);
- the application's form: fields of the same name, or the aliases in FORM_FIELDS;
- the staff who approve (`license_fields` of the approve transition): what only the
  department's own systems know (a 参保证明's months paid, a 公积金 balance, taxes paid).
秒批 applies only when no field is left for staff. A department issues as an issuer client named
after it (`clients create --kind issuer --name <department>`); outside production one is
registered on first use.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select

from ..errors import ApiError, Conflict, ValidationFailed
from ..extensions import db
from ..identity import registries
from ..identity.actors import Actor
from ..identity.clients import create_client
from ..identity.enterprises import enterprise_for
from ..identity.models import ApiClient
from ..identity.persons import find_person_by_id_number, person_by_subject_id
from ..security import keys
from ..timeutil import beijing_today
from ..wallet import issuance
from ..wallet.models import LicenseType
from .forms import ServiceSpec
from .models import Application

logger = logging.getLogger("app.applications")

# license field -> form fields that hold it (besides a form field of the same name)
FORM_FIELDS = {"residence_address": ("address",), "employer": ("employer_name",), "bank": ("bank_name",),
               "domicile": ("domicile",), "entity_type": ("entity_type",), "business_scope": ("business_scope",)}
WALLET_IMPLIED = ("id_number", "credit_code", "gender", "birth_date", "valid_from", "valid_until")
CHILD_FIELD = "child_name"  # a form naming a child: what the service produces is the child's
ENDORSEMENT_YEARS = 1  # 居住证暂行条例 第十三条: the permit is endorsed once a year
DEFAULT_VALIDITY_YEARS = 1  # types without a fixed validity: valid for a year unless staff say otherwise


@dataclass(frozen=True)
class Holder:
    """Who receives the license: the applicant as the registries know them."""

    subject_type: str
    id_number: str | None = None
    credit_code: str | None = None
    values: dict | None = None  # identity values from the registries


def holder_of(app: Application, applicant: Actor | None = None) -> Holder | None:
    """The applicant of `app` as a license holder (None when the account or company is gone);
    `applicant`, the request's actor when it is the applicant, saves looking them up again."""
    own = applicant is not None and applicant.subject_id == app.subject_id
    if app.subject_type == "legal":
        enterprise = applicant.enterprise if own else enterprise_for(app.subject_id)
        if enterprise is None:
            return None
        values = {"entity_name": enterprise.name}
        record = registries.legal_entities().lookup(enterprise.credit_code)
        if record is not None:
            values["entity_name"] = record.name
            representative = find_person_by_id_number(record.representative_id_number)
            if representative is not None:
                values["legal_representative"] = representative.name
        return Holder("legal", credit_code=enterprise.credit_code, values=values)
    person = applicant.person if own and not applicant.is_proxy else person_by_subject_id(app.subject_id)
    if person is None:
        return None
    return Holder("person", id_number=person.id_number, values={"name": person.name})


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def validity(ltype: LicenseType, today: date, staff: dict | None = None) -> tuple[date, date]:
    until = (staff or {}).get("valid_until")
    if isinstance(until, str):
        try:
            return today, date.fromisoformat(until)
        except ValueError:
            raise ValidationFailed.field("license_fields.valid_until", "有效期截止日期应为 YYYY-MM-DD 格式的日期") from None
    years = ltype.validity_years or DEFAULT_VALIDITY_YEARS
    return today, _years_after(today, years) - timedelta(days=1)


def _assigned(app: Application, spec: ServiceSpec, today: date, valid_until: date) -> dict:
    serial = app.application_id[3:15].upper()
    return {"issuing_authority": spec.department, "registration_authority": spec.department,
            "issue_date": today.isoformat(), "license_number": f"{spec.hall_code}{today:%Y}{serial}",
            "card_number": f"{spec.hall_code}{serial}", "establish_date": today.isoformat(),
            "endorsement_valid_until": min(_years_after(today, ENDORSEMENT_YEARS) - timedelta(days=1),
                                           valid_until).isoformat()}


def _from_form(name: str, kind: str, form: dict):
    for candidate in (name,) + FORM_FIELDS.get(name, ()):
        value = form.get(candidate)
        if value not in (None, ""):
            if name == "registered_capital" and isinstance(value, (int, float)):
                return f"{value}万元"
            return value if kind == "number" or not isinstance(value, (int, float)) else str(value)
    return None


def license_fields(app: Application, spec: ServiceSpec, ltype: LicenseType, holder: Holder, *,
                   staff: dict | None = None) -> tuple[dict, list[str]]:
    """(field values, names of the fields nobody could supply) of the license `app` produces."""
    staff = dict(staff or {})
    today = beijing_today()
    _, valid_until = validity(ltype, today, staff)
    assigned = _assigned(app, spec, today, valid_until)
    form = app.form
    values, unknown = {}, []
    for item in ltype.fields:
        name = item["name"]
        if name in WALLET_IMPLIED and name not in staff:
            continue
        for source in (lambda: staff.get(name), lambda: (holder.values or {}).get(name),
                       lambda: assigned.get(name), lambda: _from_form(name, item["type"], form)):
            value = source()
            if value not in (None, ""):
                values[name] = value
                break
        else:
            unknown.append(name)
    return values, unknown


def produced_type(spec: ServiceSpec, app: Application) -> LicenseType | None:
    """The license type the service produces for this applicant (None: no license, or the
    holder of such a license is not the applicant: a child the form names, e.g. a newborn's
    出生医学证明 or 户口簿 page, who may not even have an ID number yet)."""
    if not spec.produces_license or spec.field(CHILD_FIELD) is not None:
        return None
    ltype = db.session.get(LicenseType, spec.produces_license)
    if ltype is None or ltype.holder_type != app.subject_type:
        return None
    names = set(ltype.field_names)
    if ltype.holder_type == "person" and "id_number" not in names:
        return None
    return ltype


def unknown_without_staff(app: Application, spec: ServiceSpec, holder: Holder | None) -> list[str]:
    """Fields of the produced license that only staff can supply ([] when none, or no license)."""
    ltype = produced_type(spec, app)
    if ltype is None or holder is None:
        return []
    return license_fields(app, spec, ltype, holder)[1]


# ---- the department as issuer


def _department_client(department: str) -> ApiClient | None:
    return db.session.scalars(select(ApiClient).where(
        ApiClient.kind == "issuer", ApiClient.name == department, ApiClient.active.is_(True))
        .order_by(ApiClient.created_at, ApiClient.id).limit(1)).first()


def department_issuer(department: str) -> issuance.Issuer:
    client = _department_client(department)
    if client is None or not client.credit_code:
        raise Conflict(f"签发部门「{department}」尚未在平台登记为证照签发方，无法签发电子证照")
    return issuance.Issuer(client_id=client.client_id, name=client.name, credit_code=client.credit_code)


def prepare_issuer(specs: list[ServiceSpec]) -> None:
    """Register the departments that will issue (outside production) and create their signing
    keys, before the caller's own writes: both commit."""
    for spec in specs:
        if not spec.produces_license or not spec.department:
            continue
        if _department_client(spec.department) is None:
            if current_app.config.get("APP_ENV") == "production":
                continue  # issuing fails with a clear 409 (manual) or falls back to staff (秒批)
            logger.warning("registering %s as the issuer of %s (generated credit code)", spec.department,
                           spec.produces_license)
            create_client(kind="issuer", name=spec.department, license_types=[spec.produces_license])
        keys.active_key(department_issuer(spec.department).key_purpose)


def issue(app: Application, spec: ServiceSpec, *, staff: dict | None = None, holder: Holder | None = None) -> str | None:
    """Issue the license `app` produces into the applicant's wallet, signed by the service's
    department, in the caller's transaction; None when the service produces none for this
    applicant. 422 naming `license_fields.<name>` for what nobody supplied or the wallet refused."""
    ltype = produced_type(spec, app)
    if ltype is None:
        if staff:
            raise ValidationFailed.field("license_fields", "该事项不签发电子证照")
        return None
    holder = holder or holder_of(app)
    if holder is None:
        raise Conflict("申请人账号已注销，无法签发电子证照")
    extra = sorted(set(staff or {}) - set(ltype.field_names) - {"valid_until"})
    if extra:
        raise ValidationFailed("证照没有以下字段：" + "、".join(extra),
                               errors={f"license_fields.{name}": [f"{ltype.name}没有该字段"] for name in extra})
    values, unknown = license_fields(app, spec, ltype, holder, staff=staff)
    if unknown:
        labels = {item["name"]: item["label"] for item in ltype.fields}
        raise ValidationFailed("以下证照字段须由工作人员根据部门业务系统填写：" + "、".join(labels[n] for n in unknown),
                               errors={f"license_fields.{name}": [f"请填写{labels[name]}"] for name in unknown})
    valid_from, valid_until = validity(ltype, beijing_today(), staff)
    try:
        license = issuance.issue(ltype=ltype, issuer=department_issuer(spec.department),
                                 holder_id_number=holder.id_number, holder_credit_code=holder.credit_code,
                                 fields=values, valid_from=valid_from, valid_until=valid_until)
    except ValidationFailed as exc:
        errors = {key.replace("fields.", "license_fields.", 1): value for key, value in (exc.errors or {}).items()}
        raise ValidationFailed(exc.detail, errors=errors or None) from None
    return license.license_id


def try_issue(app: Application, spec: ServiceSpec, holder: Holder | None) -> tuple[str | None, str | None]:
    """秒批: (license_id, None), or (None, why not) with nothing of the attempt left (savepoint)."""
    savepoint = db.session.begin_nested()
    try:
        license_id = issue(app, spec, holder=holder)
        savepoint.commit()
    except ApiError as exc:
        savepoint.rollback()
        logger.warning("instant approval of %s: license not issued (%s)", app.application_id, exc.detail)
        return None, exc.detail
    return license_id, None
