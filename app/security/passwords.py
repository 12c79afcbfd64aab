"""Password hashing (Argon2id, memory-hard) and the password policy."""
from __future__ import annotations

import re

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

# RFC 9106 "second recommended" (t=3, m=64 MiB, p=4) in production; the cheapest
# parameters only for the test suite (PASSWORD_HASH_PROFILE = "fast" in TestConfig).
PROFILES = {
    "default": profiles.RFC_9106_LOW_MEMORY,
    "fast": profiles.CHEAPEST,
}

MIN_LENGTH = 8
MAX_LENGTH = 128
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")
_DUMMY_PASSWORD = "dummy-password-for-timing-0"


class PasswordPolicyError(ValueError):
    """The password does not meet the policy; ``message`` is Chinese and user-facing."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def check_policy(password: str) -> None:
    """At least 8 characters (at most 128), with at least one letter and one digit."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"密码至少{MIN_LENGTH}位，且须同时包含字母和数字")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"密码不能超过{MAX_LENGTH}位")
    if not _LETTER.search(password) or not _DIGIT.search(password):
        raise PasswordPolicyError(f"密码至少{MIN_LENGTH}位，且须同时包含字母和数字")


def _hashers() -> tuple[PasswordHasher, str]:
    """(hasher for the configured profile, a hash of a throwaway password for timing)."""
    profile = current_app.config.get("PASSWORD_HASH_PROFILE", "default")
    cache = current_app.extensions.setdefault("password_hashers", {})
    if profile not in cache:
        hasher = PasswordHasher.from_parameters(PROFILES.get(profile, PROFILES["default"]))
        cache[profile] = (hasher, hasher.hash(_DUMMY_PASSWORD))
    return cache[profile]


def _hasher() -> PasswordHasher:
    return _hashers()[0]


def hash_password(password: str) -> str:
    """Argon2id hash in PHC string form (parameters and salt included)."""
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash, spend the same time and return False."""
    hasher, dummy = _hashers()
    if not password_hash:
        try:
            hasher.verify(dummy, password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current profile."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
