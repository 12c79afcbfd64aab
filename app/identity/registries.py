"""Adapters to the government registries the identity domain relies on.

The core talks to three interfaces:
- `PopulationRegistry`: does a name match an ID number (and a phone, when the registry
  knows one); is a person the guardian of a minor child.
- `LegalEntityRegistry`: a credit code's registered name and legal representative.
- `CreditRegistry`: the credit class of a person or legal entity.

The development implementations read the `registry_*` tables, which the `registry`
commands and the demo seeder fill. A deployment plugs real adapters in with the settings
`POPULATION_REGISTRY`, `LEGAL_ENTITY_REGISTRY` and `CREDIT_REGISTRY` ("module:Class").
"""
from __future__ import annotations

import importlib
import json
import logging
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..security.ciphers import pii_cipher
from ..timeutil import beijing_today
from .identifiers import IdentifierError, age_on, normalize_credit_code, normalize_id_number
from .models import (RegistryCredit, RegistryEntity, RegistryGuardian, RegistryPerson, id_index,
                     phone_index)

logger = logging.getLogger("app.identity.registries")

CREDIT_CLASSES = ("诚信守法", "轻微失信", "一般失信", "严重失信")
DEFAULT_CREDIT_CLASS = "诚信守法"
ADULT_AGE = 18
CREDIT_CODE_DOMAIN = "credit_code"
DEMO_DATA = Path(__file__).with_name("demo_registry.json")


def same_name(a: str, b: str) -> bool:
    """Names compare after Unicode normalisation and with the middle dot forms unified."""
    def norm(value: str) -> str:
        text = unicodedata.normalize("NFKC", value or "").strip()
        return text.replace("•", "·").replace("．", "·").replace(".", "·")
    return norm(a) == norm(b)


@dataclass(frozen=True)
class EntityRecord:
    """What the legal-entity registry says about a credit code."""

    credit_code: str
    name: str
    representative_id_number: str


class PopulationRegistry(ABC):
    """The population (户籍) registry."""

    @abstractmethod
    def matches(self, *, id_number: str, name: str, phone: str | None = None) -> bool:
        """True when the registry holds this ID number under this name (and phone, if it has one)."""

    @abstractmethod
    def guardian_of(self, *, parent_id_number: str, child_id_number: str) -> bool:
        """True when the registry records the parent as guardian of the child."""


class LegalEntityRegistry(ABC):
    """The market-entity (法人) registry."""

    @abstractmethod
    def lookup(self, credit_code: str) -> EntityRecord | None:
        """The registered record for a credit code, or None."""


class CreditRegistry(ABC):
    """The public credit (信用) registry."""

    @abstractmethod
    def credit_class(self, key: str) -> str:
        """Credit class of an ID number or a credit code (both normalised)."""

    def record_breach(self, key: str, *, credit_class: str, reason: str) -> None:
        """Report a breach found on the platform (e.g. a false 告知承诺) that lowers the subject's
        class to at least `credit_class`; adapters of registries that take reports implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not take breach reports")


# ---- development implementations backed by tables


def _credit_subject_index(key: str) -> str:
    if len(key) == 18 and not key[:17].isdigit():
        return pii_cipher().blind_index(key, domain=CREDIT_CODE_DOMAIN)
    return id_index(key)


class DatabasePopulationRegistry(PopulationRegistry):
    def matches(self, *, id_number, name, phone=None):
        row = db.session.scalar(select(RegistryPerson).where(
            RegistryPerson.id_number_index == id_index(id_number)))
        if row is None or not same_name(row.name, name):
            return False
        if phone and row.phone_index and row.phone_index != phone_index(phone):
            return False
        return True

    def guardian_of(self, *, parent_id_number, child_id_number):
        row = db.session.scalar(select(RegistryGuardian.id).where(
            RegistryGuardian.parent_index == id_index(parent_id_number),
            RegistryGuardian.child_index == id_index(child_id_number)))
        return row is not None


class DatabaseLegalEntityRegistry(LegalEntityRegistry):
    def lookup(self, credit_code):
        row = db.session.scalar(select(RegistryEntity).where(RegistryEntity.credit_code == credit_code))
        if row is None:
            return None
        rep = pii_cipher().decrypt(row.representative_enc, context=f"registry-entity:{row.credit_code}")
        return EntityRecord(credit_code=row.credit_code, name=row.name, representative_id_number=rep)


class DatabaseCreditRegistry(CreditRegistry):
    def credit_class(self, key):
        row = db.session.scalar(select(RegistryCredit.credit_class).where(
            RegistryCredit.subject_index == _credit_subject_index(key)))
        return row or DEFAULT_CREDIT_CLASS

    def record_breach(self, key, *, credit_class, reason):
        if CREDIT_CLASSES.index(credit_class) > CREDIT_CLASSES.index(self.credit_class(key)):
            set_credit(id_or_code=key, credit_class=credit_class)


DEFAULTS = {
    "POPULATION_REGISTRY": "app.identity.registries:DatabasePopulationRegistry",
    "LEGAL_ENTITY_REGISTRY": "app.identity.registries:DatabaseLegalEntityRegistry",
    "CREDIT_REGISTRY": "app.identity.registries:DatabaseCreditRegistry",
}


def _adapter(setting: str):
    cache = current_app.extensions.setdefault("identity_adapters", {})
    if setting not in cache:
        path = current_app.config.get(setting) or DEFAULTS[setting]
        module, _, name = path.partition(":")
        cache[setting] = getattr(importlib.import_module(module), name)()
    return cache[setting]


def population() -> PopulationRegistry:
    return _adapter("POPULATION_REGISTRY")


def legal_entities() -> LegalEntityRegistry:
    return _adapter("LEGAL_ENTITY_REGISTRY")


def credit() -> CreditRegistry:
    return _adapter("CREDIT_REGISTRY")


def is_minor(id_number: str, on: date | None = None) -> bool:
    """Under 18 on `on` (today in Beijing by default)."""
    try:
        return age_on(id_number, on or beijing_today()) < ADULT_AGE
    except IdentifierError:
        return False


# ---- maintenance of the development registries (commands, seeder, tests); caller commits


def add_person(*, id_number: str, name: str, phone: str | None = None) -> RegistryPerson:
    """Add or update a resident in the development population registry."""
    id_number = normalize_id_number(id_number)
    cipher = pii_cipher()
    row = db.session.scalar(select(RegistryPerson).where(RegistryPerson.id_number_index == id_index(id_number)))
    if row is None:
        row = RegistryPerson(id_number_index=id_index(id_number),
                             id_number_enc=cipher.encrypt(id_number, context="registry-person:id_number"))
        db.session.add(row)
    row.name = name.strip()
    if phone:
        row.phone_enc = cipher.encrypt(phone, context="registry-person:phone")
        row.phone_index = phone_index(phone)
    db.session.flush()
    return row


def add_guardian(*, parent_id_number: str, child_id_number: str) -> bool:
    """Record parent -> child guardianship; False when it was already recorded."""
    parent, child = normalize_id_number(parent_id_number), normalize_id_number(child_id_number)
    exists = db.session.scalar(select(RegistryGuardian.id).where(
        RegistryGuardian.parent_index == id_index(parent), RegistryGuardian.child_index == id_index(child)))
    if exists:
        return False
    db.session.add(RegistryGuardian(
        parent_index=id_index(parent), child_index=id_index(child),
        child_id_number_enc=pii_cipher().encrypt(child, context="registry-guardian:child")))
    db.session.flush()
    return True


def add_entity(*, credit_code: str, name: str, representative_id_number: str) -> RegistryEntity:
    """Add or update a legal entity in the development legal-entity registry."""
    credit_code = normalize_credit_code(credit_code)
    rep = normalize_id_number(representative_id_number)
    row = db.session.scalar(select(RegistryEntity).where(RegistryEntity.credit_code == credit_code))
    if row is None:
        row = RegistryEntity(credit_code=credit_code)
        db.session.add(row)
    row.name = name.strip()
    row.representative_index = id_index(rep)
    row.representative_enc = pii_cipher().encrypt(rep, context=f"registry-entity:{credit_code}")
    db.session.flush()
    return row


def normalize_credit_key(value: str) -> str:
    """An ID number or a credit code, normalised; IdentifierError when it is neither."""
    try:
        return normalize_id_number(value)
    except IdentifierError:
        pass
    try:
        return normalize_credit_code(value)
    except IdentifierError:
        raise IdentifierError("应为有效的身份证号码或统一社会信用代码") from None


def set_credit(*, id_or_code: str, credit_class: str) -> RegistryCredit:
    """Set the credit class of a person or legal entity in the development credit registry."""
    if credit_class not in CREDIT_CLASSES:
        raise ValueError("信用等级应为：" + "、".join(CREDIT_CLASSES))
    index = _credit_subject_index(normalize_credit_key(id_or_code))
    row = db.session.scalar(select(RegistryCredit).where(RegistryCredit.subject_index == index))
    if row is None:
        row = RegistryCredit(subject_index=index)
        db.session.add(row)
    row.credit_class = credit_class
    db.session.flush()
    return row


def seed_demo() -> str:
    """Demo residents, guardianships, companies and credit classes (idempotent; not in production)."""
    if current_app.config.get("APP_ENV") == "production":
        return "skipped in production"
    data = json.loads(DEMO_DATA.read_text(encoding="utf-8"))
    added = 0
    for person in data["persons"]:
        known = db.session.scalar(select(RegistryPerson.id).where(
            RegistryPerson.id_number_index == id_index(normalize_id_number(person["id_number"]))))
        if known is None:
            add_person(id_number=person["id_number"], name=person["name"], phone=person.get("phone"))
            added += 1
    for relation in data.get("guardians", []):
        added += add_guardian(parent_id_number=relation["parent"], child_id_number=relation["child"])
    for entity in data["entities"]:
        known = db.session.scalar(select(RegistryEntity.id).where(
            RegistryEntity.credit_code == normalize_credit_code(entity["credit_code"])))
        if known is None:
            add_entity(credit_code=entity["credit_code"], name=entity["name"],
                       representative_id_number=entity["representative_id_number"])
            added += 1
    for item in data.get("credit", []):
        index = _credit_subject_index(normalize_credit_key(item["id_or_code"]))
        if db.session.scalar(select(RegistryCredit.id).where(RegistryCredit.subject_index == index)) is None:
            set_credit(id_or_code=item["id_or_code"], credit_class=item["class"])
            added += 1
    db.session.commit()
    return f"{added} demo registry records added"
