"""Mini-program bindings: the person behind a WeChat / Alipay account, binding, listing and unbinding them."""
from __future__ import annotations

from sqlalchemy import select

from ..errors import Conflict, NotFound, ValidationFailed
from ..extensions import db
from ..security import audit
from ..security.rbac import Principal
from ..timeutil import utcnow
from . import registries, sms
from .common import commit, field_id_number, field_phone, registry_mismatch
from .models import BINDING_CHANNELS, ChannelBinding, Person, phone_index
from .persons import acting_person, find_person_by_id_number, new_person, person_by_subject_id, phone_taken
from .sessions import end_channel_sessions


def _binding(channel: str, app_id: str, open_id: str) -> ChannelBinding | None:
    return db.session.scalar(select(ChannelBinding).where(
        ChannelBinding.channel == channel, ChannelBinding.app_id == app_id, ChannelBinding.open_id == open_id))


def bound_person(*, channel: str, app_id: str, open_id: str) -> Person | None:
    """The person bound to a mini-program account, or None."""
    binding = _binding(channel, app_id, open_id)
    return person_by_subject_id(binding.subject_id) if binding else None


def register_or_link_person(*, id_number: str, name: str, phone: str, sms_code: str, channel: str, app_id: str,
                            open_id: str, union_id: str | None = None) -> Person:
    """Bind a mini-program account to a person, creating the person when the registry matches.

    `sms_code` (purpose `bind`) proves `phone` first; the code is used up only by a binding that
    succeeds, so a typo in the name leaves it usable. An existing account is linked only when that
    phone is the account's own (or the account has none yet); commits.
    """
    if channel not in BINDING_CHANNELS:
        raise ValueError(f"unknown binding channel {channel!r}")
    id_number, phone, name = field_id_number(id_number), field_phone(phone), (name or "").strip()
    proven = sms.require(phone, "bind", sms_code)
    if not registries.population().matches(id_number=id_number, name=name, phone=phone):
        raise registry_mismatch()
    person = find_person_by_id_number(id_number)
    if person is not None:
        if person.phone_index and person.phone_index != phone_index(phone):
            raise ValidationFailed.field("phone", "手机号与该身份账号登记的手机号不一致")
        if not person.phone_index:
            if phone_taken(phone):
                raise Conflict("该手机号已绑定其他账号")
            person.phone = phone
    else:
        if phone_taken(phone):
            raise Conflict("该手机号已绑定其他账号")
        person = new_person(id_number=id_number, name=name, phone=phone, password=None)
        db.session.flush()
        audit.record("person.registered", subject_id=person.subject_id, actor=person.subject_id,
                     details={"real_name_level": person.real_name_level, "channel": channel})
    binding = _binding(channel, app_id, open_id)
    if binding is not None and binding.subject_id != person.subject_id:
        raise Conflict("该小程序账号已绑定其他用户")
    if binding is None:
        db.session.add(ChannelBinding(subject_id=person.subject_id, channel=channel, app_id=app_id,
                                      open_id=open_id, union_id=union_id, created_at=utcnow()))
        audit.record("channel.bound", subject_id=person.subject_id, actor=person.subject_id,
                     details={"channel": channel, "app_id": app_id})
    sms.consume(proven)
    commit("该小程序账号或手机号已绑定其他用户")
    return person


def unbind(*, principal: Principal, channel: str) -> None:
    """Remove the caller's WeChat or Alipay binding (every app of that channel) and end the sessions
    signed in through it: the next mini-program login of that account must bind again."""
    person = acting_person(principal)
    rows = db.session.scalars(select(ChannelBinding).where(ChannelBinding.subject_id == person.subject_id,
                                                           ChannelBinding.channel == channel)).all()
    if channel not in BINDING_CHANNELS or not rows:
        raise NotFound("您的账号未绑定该渠道")
    for row in rows:
        db.session.delete(row)
    ended = end_channel_sessions(person, channel)
    audit.record("channel.unbound", subject_id=person.subject_id, actor=person.subject_id,
                 details={"channel": channel, "app_ids": sorted({row.app_id for row in rows}),
                          "sessions_ended": ended})
    db.session.commit()


def bindings_of(subject_id: str) -> list[ChannelBinding]:
    """A person's mini-program bindings, oldest first."""
    return list(db.session.scalars(select(ChannelBinding).where(ChannelBinding.subject_id == subject_id)
                                   .order_by(ChannelBinding.created_at)))
