"""Real-name levels (实名等级) and the checks services make before acting on them.

L1: the phone is proven by an SMS code; L2: name and ID number matched in the population
registry; L3: the person passed a face check at the face-check provider (app/identity/face_check.py).
A service asks for a level with `ensure_level(person, n)` (or the view decorator `require_level(n)`);
`ensure_level_for(person, action, base=...)` raises the bar to L3 for the actions named in the
setting REQUIRE_L3_FOR (comma-separated, e.g. "account_closure,license_binding").
"""
from __future__ import annotations

import functools

from flask import current_app

from ..errors import Forbidden, Unauthorized
from ..security.rbac import current_principal
from .models import Person

PHONE_PROVEN, REGISTRY_MATCHED, FACE_VERIFIED = 1, 2, 3
LEVEL_TEXT = {PHONE_PROVEN: "L1（手机号已验证）", REGISTRY_MATCHED: "L2（姓名与身份证号码已经户籍库核验）",
              FACE_VERIFIED: "L3（已通过人脸识别核验）"}
HOW_TO_RAISE = {REGISTRY_MATCHED: "请使用与户籍登记一致的姓名和身份证号码完成实名注册",
                FACE_VERIFIED: "请先完成人脸识别核验（POST /api/v1/me/face-verifications）"}


def l3_actions() -> frozenset[str]:
    """The actions REQUIRE_L3_FOR names."""
    configured = str(current_app.config.get("REQUIRE_L3_FOR") or "")
    return frozenset(part.strip() for part in configured.split(",") if part.strip())


def required_level(action: str, *, base: int) -> int:
    """The level `action` needs: L3 when REQUIRE_L3_FOR names it, else `base`."""
    return FACE_VERIFIED if action in l3_actions() else base


def ensure_level(person: Person, level: int, *, action: str | None = None) -> None:
    """403 (problem type real-name-level-required) unless the person has at least `level`."""
    current = int(person.real_name_level or 0)
    if current >= level:
        return
    raise Forbidden(f"该业务需要实名等级{LEVEL_TEXT[level]}，您当前为 L{current}。{HOW_TO_RAISE.get(level, '')}",
                    slug="real-name-level-required", title="实名等级不足",
                    extra={"required_level": level, "real_name_level": current, "action": action})


def ensure_level_for(person: Person, action: str, *, base: int = REGISTRY_MATCHED) -> None:
    """`ensure_level` with the level `action` needs (see `required_level`)."""
    ensure_level(person, required_level(action, base=base), action=action)


def require_level(level: int, *, action: str | None = None):
    """View decorator: the person acting with the caller's token needs `level` (L3 instead of
    `level` when `action` is named in REQUIRE_L3_FOR)."""
    from .persons import person_by_subject_id

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            person = person_by_subject_id(current_principal().actor_id)
            if person is None or not person.active:
                raise Unauthorized("账号不存在或已停用")
            ensure_level(person, required_level(action, base=level) if action else level, action=action)
            return view(*args, **kwargs)
        return wrapper
    return decorator
