"""归集 (常用证照全归集): the licenses a license library already holds for a person, pulled into
their wallet.

The core knows one interface, `LicenseLibrary.licenses_for(id_number)`. Two implementations:
`DatabaseLicenseLibrary` (development: reads the seeded `license_library_records` table; what
`make run` uses) and `HttpLicenseLibrary` (the JSON shape below over HTTP, what
tests/fakes/license_library_server.py serves). `LICENSE_LIBRARY` ("module:Class") picks one;
`LICENSE_LIBRARY_URL`, `LICENSE_LIBRARY_APP_ID`, `LICENSE_LIBRARY_SECRET` configure the HTTP one.

The shape is ours, modelled on the national electronic-license sharing service's metadata
(GB/T 36903: 证照标识, 证照类型代码, 持证主体, 持证主体代码类型 "111" = 居民身份证, 颁证单位 and
its code, 有效期) and on DigiLocker's issuer pull API (a holder identity in, the documents issued
to it out), as far as public material describes them; the real interfaces are not public.

    POST /api/licenses/query   signed like the 12345 adapter (X-App-Id, X-Timestamp, X-Nonce,
                               X-Signature over the canonical request, app/security/signed_requests.py)
         {"holder_identity_type": "111", "holder_identity_number": "<ID number>", "request_id": "<uuid>"}
      -> {"code": 0, "message": "ok", "data": {"items": [
           {"license_identifier": GB/T 36904 identifier, "license_type_code", "license_name",
            "holder_name", "holder_identity_type": "111", "holder_identity_number",
            "issuer_name", "issuer_code": the issuing authority's credit code,
            "valid_from", "valid_until" (ISO dates), "status": "valid"|"revoked"|"suspended",
            "data": {surface fields (照面信息) by the license type's field names}}]}}

Pulling is idempotent: a license is recognised by its identifier (the same license twice is one
license). A collected license is signed by a key the platform keeps for its issuing authority
(purpose `issuer:library:<credit code>`), after the same registry checks as any issuance; items
that fail them are skipped and logged. Holders pull when they open their wallet (at most once per
COLLECT_INTERVAL each) and `flask wallet collect` pulls for every registered person.
"""
from __future__ import annotations

import importlib
import json
import logging
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date

import requests
from flask import current_app
from sqlalchemy import select

from ..errors import ApiError, ServiceUnavailable, UpstreamError
from ..extensions import db, store
from ..identity.identifiers import IdentifierError, normalize_credit_code, normalize_id_number
from ..identity.models import Person
from ..security import keys
from ..security.signed_requests import sign
from ..store import StoreUnavailable
from .device_models import LibraryRecord
from .holders import person_index
from .issuance import Issuer, issue
from .models import License, LicenseType

logger = logging.getLogger("app.wallet.collection")

COLLECT_INTERVAL = 3600  # seconds between two pulls for one holder when they open the wallet
RESIDENT_ID_CARD = "111"  # 持证主体代码类型: 居民身份证
QUERY_PATH = "/api/licenses/query"
DEFAULT_LIBRARY = "app.wallet.collection:DatabaseLicenseLibrary"


@dataclass(frozen=True)
class LibraryLicense:
    """One license a library holds, in our terms."""

    identifier: str
    license_type: str
    holder_id_number: str
    issuer_name: str
    issuer_credit_code: str
    valid_from: date
    valid_until: date
    status: str
    fields: dict = field(default_factory=dict)


class LicenseLibrary(ABC):
    """A license library (电子证照库) the platform may pull a holder's licenses from."""

    @abstractmethod
    def licenses_for(self, id_number: str) -> list[LibraryLicense]:
        """Every license the library holds for the person with this (normalised) ID number."""


def parse_item(item) -> LibraryLicense:
    """A library item in the documented shape; ValueError for anything else."""
    if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
        raise ValueError("item is not an object with data")
    try:
        return LibraryLicense(
            identifier=str(item["license_identifier"]), license_type=str(item["license_type_code"]),
            holder_id_number=normalize_id_number(item["holder_identity_number"]),
            issuer_name=str(item["issuer_name"]).strip(), issuer_credit_code=normalize_credit_code(item["issuer_code"]),
            valid_from=date.fromisoformat(item["valid_from"]), valid_until=date.fromisoformat(item["valid_until"]),
            status=str(item.get("status") or "valid"), fields=dict(item["data"]))
    except (KeyError, TypeError, IdentifierError) as exc:
        raise ValueError(f"item lacks or mangles a field: {exc}") from None


class DatabaseLicenseLibrary(LicenseLibrary):
    """Development library: the seeded `license_library_records` table."""

    def licenses_for(self, id_number):
        rows = db.session.scalars(select(LibraryRecord).where(LibraryRecord.holder_index == person_index(id_number)))
        return [parse_item(row.record) for row in rows]


class HttpLicenseLibrary(LicenseLibrary):
    """The documented shape over HTTP; failures raise UpstreamError (502) or ServiceUnavailable (503)."""

    def __init__(self, base_url: str | None = None, app_id: str | None = None, secret: str | None = None, *,
                 timeout: tuple[float, float] = (3, 10), session: requests.Session | None = None):
        config = current_app.config
        self.base_url = (base_url or config.get("LICENSE_LIBRARY_URL") or "").rstrip("/")
        self.app_id = app_id or config.get("LICENSE_LIBRARY_APP_ID") or ""
        self._secret = secret or config.get("LICENSE_LIBRARY_SECRET") or ""
        if not (self.base_url and self.app_id and self._secret):
            raise ServiceUnavailable("证照库未配置（LICENSE_LIBRARY_URL、_APP_ID、_SECRET）")
        self.timeout, self.http = timeout, session or requests.Session()

    def licenses_for(self, id_number):
        body = json.dumps({"holder_identity_type": RESIDENT_ID_CARD, "holder_identity_number": id_number,
                           "request_id": uuid.uuid4().hex}, separators=(",", ":")).encode("utf-8")
        path = requests.utils.urlparse(self.base_url).path + QUERY_PATH
        timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(16)
        headers = {"X-App-Id": self.app_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
                   "X-Signature": sign(self._secret, "POST", path, "", timestamp, nonce, body),
                   "Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        try:
            response = self.http.post(self.base_url + QUERY_PATH, data=body, headers=headers, timeout=self.timeout)
            answer = response.json()
        except requests.RequestException as exc:
            raise ServiceUnavailable("证照库暂时无法连接", retry_after=60) from exc
        except ValueError:
            raise UpstreamError(f"证照库返回了无法解析的应答（HTTP {response.status_code}）") from None
        if not isinstance(answer, dict) or answer.get("code") != 0:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise UpstreamError(f"证照库拒绝了请求（{message}）")
        items = (answer.get("data") or {}).get("items")
        if not isinstance(items, list):
            raise UpstreamError("证照库返回的证照列表格式不正确")
        found = []
        for item in items:
            try:
                found.append(parse_item(item))
            except ValueError as exc:
                logger.warning("license library: item skipped (%s)", exc)
        return found


def library() -> LicenseLibrary:
    """The configured library (LICENSE_LIBRARY, the development one by default), one per app."""
    cache = current_app.extensions.setdefault("wallet_library", {})
    if "library" not in cache:
        module, _, name = (current_app.config.get("LICENSE_LIBRARY") or DEFAULT_LIBRARY).partition(":")
        cache["library"] = getattr(importlib.import_module(module), name)()
    return cache["library"]


def _issuer(item: LibraryLicense) -> Issuer:
    return Issuer(client_id=f"library:{item.issuer_credit_code}", name=item.issuer_name,
                  credit_code=item.issuer_credit_code)


def collect_for(id_number: str) -> dict:
    """Pull the person's licenses from the library into their wallet; commits.
    Returns {"added", "known", "skipped"}: new licenses, ones already in the wallet, refused ones."""
    id_number = normalize_id_number(id_number)
    counts = {"added": 0, "known": 0, "skipped": 0}
    for item in library().licenses_for(id_number):
        ltype = db.session.get(LicenseType, item.license_type)
        if (item.holder_id_number != id_number or item.status != "valid" or ltype is None
                or ltype.holder_type != "person"):
            counts["skipped"] += 1
            continue
        if db.session.scalar(select(License.id).where(License.identifier == item.identifier)) is not None:
            counts["known"] += 1
            continue
        issuer = _issuer(item)
        keys.active_key(issuer.key_purpose)  # created (and committed) before our savepoint
        savepoint = db.session.begin_nested()
        try:
            issue(ltype=ltype, issuer=issuer, holder_id_number=id_number, holder_credit_code=None,
                  fields=item.fields, valid_from=item.valid_from, valid_until=item.valid_until,
                  identifier=item.identifier)
            savepoint.commit()
            counts["added"] += 1
        except ApiError as exc:
            savepoint.rollback()
            counts["skipped"] += 1
            logger.warning("license library: %s not collected (%s)", item.identifier, exc.detail)
    db.session.commit()
    return counts


def collected_key(subject_id: str) -> str:
    """The shared-store key that says the holder's wallet was pulled within COLLECT_INTERVAL."""
    return f"wallet:collected:{subject_id}"


def collect_on_open(person: Person, *, marked: bool = False) -> None:
    """When a holder opens their wallet: pull at most once per COLLECT_INTERVAL (`marked`: the caller
    read the marker already and found it set); a library or store that cannot be reached only means
    the wallet shows what it has."""
    try:
        if marked or not store.set_if_absent(collected_key(person.subject_id), "1", COLLECT_INTERVAL):
            return
        collect_for(person.id_number)
    except (StoreUnavailable, ServiceUnavailable, UpstreamError) as exc:
        db.session.rollback()
        logger.warning("license library: collection on open skipped (%s)", exc.detail)


def collect_everyone() -> dict:
    """`flask wallet collect`: pull for every active registered person; totals of collect_for."""
    totals = {"persons": 0, "added": 0, "known": 0, "skipped": 0}
    subjects = db.session.scalars(select(Person.subject_id).where(Person.active.is_(True))).all()
    for subject_id in subjects:
        person = db.session.scalar(select(Person).where(Person.subject_id == subject_id))
        try:
            counts = collect_for(person.id_number)
        except (ServiceUnavailable, UpstreamError) as exc:
            logger.warning("license library: collection for %s failed (%s)", subject_id, exc.detail)
            continue
        totals["persons"] += 1
        for key, value in counts.items():
            totals[key] += value
    return totals
