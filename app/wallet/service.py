"""Wallet services (电子证照): the functions the views and other domains call.

Keyword-only, raising app.errors exceptions; the HTTP operations commit. Other domains use:
- `holder_licenses(principal, license_type=None)`: the caller's usable licenses (own or company's);
- `use_license_as_material(principal=, license_id=, service_code=, purpose=)`: verify and log a
  license used as application material (caller commits);
- `issue_platform_license(license_type=, holder_id_number= / holder_credit_code=, fields=,
  valid_from=, valid_until=)`: the platform's own issuer, e.g. for instant approvals (caller commits);
- `license_belongs_to(license_id, id_number=)`: whether a license is held by the person (or
  company) a form names, e.g. a license offered as 母亲居民身份证 must be the mother's.

The work is split by concern: `issuance` (issue, status changes) and `truthful` (registry
checks), `presentations` (亮证), `verification` and `key_binding` (device-made presentations),
`devices` (phone keys, binding), `verifier_requests` (OpenID4VP-style requests), `collection`
(归集), `status_registry`, `access_log` and `holders` (who may see and show a license).
"""
from __future__ import annotations

import functools

from sqlalchemy import and_, bindparam, func, select

from .. import journal, personal_pages
from ..errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..extensions import db
from ..pages import counted_page
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import beijing_today, epoch
from ..identity.actors import actor_of
from . import access_log, collection, holders, issuance, presentations, status_registry, verification
from .devices import bind_license, devices_page, register_device, remove_device
from .holders import license_belongs_to
from .verifier_requests import create_request, request_status, respond, signed_request_object
from .issuance import change_status, issue_license, issue_platform_license, prepare_platform_issuer
from ..identity.models import Person
from .models import WALLET_STATUSES, License, LicenseType
from .presentations import cancel_presentation, create_presentation, effective_status
from .sdjwt import SdJwtError, verify_presentation
from .verification import verify

__all__ = [
    "license_types", "license_type", "issue_license", "change_status", "issue_platform_license",
    "prepare_platform_issuer", "wallet_licenses", "wallet_license", "create_presentation",
    "cancel_presentation", "verify", "access_log_page", "status_list_token", "holder_licenses",
    "use_license_as_material", "LicenseUnusable", "effective_status", "license_belongs_to",
    "register_device", "devices_page", "remove_device", "bind_license", "create_request", "request_status",
    "respond", "signed_request_object",
]

class LicenseUnusable(ValidationFailed):
    """The license exists and the caller may use it, but it is not valid now (`reason`:
    expired / suspended / revoked / not_yet_valid)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message, errors={"license_id": [message]}, extra={"license_status": reason})
        self.reason = reason


# ---- catalogue


def license_types() -> list[LicenseType]:
    """Every license type, ordered by code."""
    return list(db.session.scalars(select(LicenseType).order_by(LicenseType.code)))


def license_type(code: str) -> LicenseType:
    ltype = db.session.get(LicenseType, code) if issuance.TYPE_CODE_RE.fullmatch(code or "") else None
    if ltype is None:
        raise NotFound("证照类型不存在")
    return ltype


# ---- the holder's wallet


_LICENSES, _PERSONS, _TYPES = License.__table__, Person.__table__, LicenseType.__table__
LIST_COLUMNS = (_LICENSES.c.license_id, _LICENSES.c.license_type_code, _TYPES.c.name.label("license_type_name"),
                _LICENSES.c.identifier, _LICENSES.c.issuer_name, _LICENSES.c.holder_type, _LICENSES.c.valid_from,
                _LICENSES.c.valid_until, _LICENSES.c.status)


def _status_filter(status: str):
    if status == "expired":
        return and_(_LICENSES.c.status == "valid", _LICENSES.c.valid_until < bindparam("today"))
    if status == "valid":
        return and_(_LICENSES.c.status == "valid", _LICENSES.c.valid_until >= bindparam("today"))
    return _LICENSES.c.status == bindparam("status")


@functools.cache
def _page_query(own: bool, by_type: bool, status: str | None):
    """The wallet page as one Core statement, built once per kind of filter: the licenses (with their
    type's name and the count of all that match) of the person a subject id names, or of a holder index."""
    query = select(*LIST_COLUMNS, func.count().over().label("total")).select_from(
        _LICENSES.join(_TYPES, _TYPES.c.code == _LICENSES.c.license_type_code))
    if own:
        query = query.join(_PERSONS, and_(_PERSONS.c.id_number_index == _LICENSES.c.holder_index,
                                          _PERSONS.c.subject_id == bindparam("subject"),
                                          _PERSONS.c.active.is_(True))).where(_LICENSES.c.holder_type == "person")
    else:
        query = query.where(_LICENSES.c.holder_index == bindparam("holder_index"),
                            _LICENSES.c.holder_type == bindparam("holder_type"))
    if by_type:
        query = query.where(_LICENSES.c.license_type_code == bindparam("license_type"))
    if status:
        query = query.where(_status_filter(status))
    return (query.order_by(_LICENSES.c.issued_at.desc(), _LICENSES.c.id.desc())
            .offset(bindparam("offset")).limit(bindparam("limit")))


def wallet_licenses(*, principal: Principal, page: int, page_size: int, license_type: str | None = None,
                    status: str | None = None, holder_id_number: str | None = None,
                    collected: bool = False) -> tuple[list, int]:
    """The caller's licenses (or their company's, or with `holder_id_number` their minor
    child's), newest first, filtered by type and status, as rows with the type's name. A person
    opening their own wallet first pulls what the license library holds for them (归集, at most
    hourly; `collected`: the caller read the pull's marker and found it set); their page is then one
    database read (the licenses joined to the person the token names)."""
    if status and status not in WALLET_STATUSES:
        raise ValidationFailed.field("status", "状态应为 valid、suspended、revoked 或 expired")
    params = {"license_type": license_type, "status": status, "today": beijing_today(),
              "offset": (page - 1) * page_size, "limit": page_size}
    own = principal.subject_type == "person" and not principal.claims.get("act") and not holder_id_number
    if own:
        if page == 1:
            collection.collect_on_open(_OpeningHolder(principal), marked=collected)
        found = counted_page(_page_query(True, bool(license_type), status), {**params, "subject": principal.subject_id})
        if found[0]:
            return found
    wallet = holders.wallet_of(principal, child_id_number=holder_id_number)  # 401/403/404 as they apply
    if not own and wallet.capacity.role == "holder" and wallet.holder_type == "person" and page == 1:
        collection.collect_on_open(actor_of(principal).own_person())
    return counted_page(_page_query(False, bool(license_type), status),
                 {**params, "holder_index": wallet.holder_index, "holder_type": wallet.holder_type})


def _license_holders(session, licenses) -> set[str]:
    """The registered persons whose wallet pages show these licenses (before or after the flush)."""
    indexes = set().union(*(personal_pages.values_of(license, "holder_index") for license in licenses
                            if license.holder_type == "person"))
    return set(session.connection().execute(
        select(Person.subject_id).where(Person.id_number_index.in_(indexes))).scalars()) if indexes else set()


personal_pages.watch(License, ("wallet",), _license_holders)
personal_pages.watch_reference(LicenseType, "wallet")


class _OpeningHolder:
    """What `collection.collect_on_open` reads of the person opening their wallet: the subject id
    from the token, the ID number (a database read) only when a pull is due."""

    def __init__(self, principal: Principal):
        self.subject_id, self._actor = principal.subject_id, actor_of(principal)

    @property
    def id_number(self) -> str:
        return self._actor.own_person().id_number


def _visible_license(principal: Principal, license_id: str, need: str = holders.READ):
    license = presentations.license_by_id(license_id)
    return license, holders.actor_for(principal, license, need=need)


def wallet_license(*, principal: Principal, license_id: str, reveal: bool = False) -> dict:
    """One license with its fields (the schema masks sensitive values unless `reveal`, which
    is audited); 404 for a license the caller may not see."""
    license, actor = _visible_license(principal, license_id)
    if reveal:
        audit.record("license.revealed", subject_id=holders.holder_subject_id(license), actor=actor.subject_id,
                     details={"license_id": license.license_id, "role": actor.role})
        db.session.commit()
    return {"license": license, "values": license.field_values, "reveal": reveal, "viewer_role": actor.role}


def access_log_page(*, principal: Principal, license_id: str, page: int, page_size: int):
    """Who looked at a license, newest first (holder, guardian, company representative or agent)."""
    license, _ = _visible_license(principal, license_id)
    journal.catch_up(rotations=False, reader=holders.holder_subject_id(license))  # every entry names the holder
    return access_log.page(license, page=page, page_size=page_size)


def status_list_token(list_id: str) -> tuple[str, str]:
    """(statuslist+jwt, ETag) of a status list."""
    return status_registry.published_token(list_id)


# ---- for other domains


def holder_licenses(principal: Principal, license_type: str | None = None, *,
                    usable_only: bool = True) -> list[License]:
    """The caller's own licenses (a company token: the company's), newest first; only those
    valid today unless `usable_only` is False. Clients, and agents without a `licenses:*`
    scope, get an empty list."""
    if principal.subject_type == "client":
        return []
    try:
        wallet = holders.wallet_of(principal)
    except (Forbidden, NotFound):
        return []
    query = select(License).where(License.holder_index == wallet.holder_index,
                                  License.holder_type == wallet.holder_type)
    if license_type:
        query = query.where(License.license_type_code == license_type)
    if usable_only:
        today = beijing_today()
        query = query.where(License.status == "valid", License.valid_until >= today,
                            License.valid_from <= today)
    return list(db.session.scalars(query.order_by(License.issued_at.desc(), License.id.desc())))


def use_license_as_material(*, principal: Principal, license_id: str, service_code: str,
                            purpose: str) -> dict:
    """Check that the caller may present the license (holder, guardian, company agent with
    `licenses:present`), that it is valid now and its credential verifies, and record an
    access-log entry "used for 办件 <service>". Adds to the session; the caller commits.

    Returns {"license_id","license_type","identifier","verified_fields"}. Someone else's
    license is NotFound; a company agent without `licenses:present` is Forbidden; a license
    that is not valid now raises LicenseUnusable (422 on `license_id`, `.reason`).
    """
    license, actor = _visible_license(principal, license_id, need=holders.PRESENT)
    status = effective_status(license)
    if status == "valid" and license.valid_from > beijing_today():
        status = "not_yet_valid"
    messages = {"expired": "证照已过有效期", "suspended": "证照已被签发机关暂停使用",
                "revoked": "证照已被签发机关撤销", "not_yet_valid": "证照尚未生效"}
    if status in messages:
        raise LicenseUnusable(status, messages[status])
    try:
        verified = verify_presentation(license.credential, issuer_keys=_issuer_key(license),
                                       expected_aud=None, now=epoch(), require_key_binding=False)
    except SdJwtError as exc:
        raise Conflict("证照签名校验失败，请联系签发机关") from exc
    values = verification.in_field_order(license.license_type.field_names, verified.disclosed)
    access_log.record(license, kind="material", verifier=f"办件 {service_code}", verifier_client_id=None,
                      purpose=purpose, disclosed=list(values), result="valid", shown_by=actor.shown_by(),
                      presentation_id=None, actor=actor.subject_id)
    return {"license_id": license.license_id, "license_type": license.license_type_code,
            "identifier": license.identifier, "verified_fields": values}


def _issuer_key(license: License) -> dict:
    from ..security import keys
    key = keys.public_key(license.issuer_kid)
    return {license.issuer_kid: key} if key is not None else {}
