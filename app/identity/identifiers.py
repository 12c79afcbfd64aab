"""Validation and normalisation of resident ID numbers, credit codes and phone numbers."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8))

PROVINCE_CODES = frozenset(
    [f"{n}" for n in range(11, 16)]
    + [f"{n}" for n in range(21, 24)]
    + [f"{n}" for n in range(31, 38)]
    + [f"{n}" for n in range(41, 47)]
    + [f"{n}" for n in range(50, 55)]
    + [f"{n}" for n in range(61, 66)]
    + ["71", "81", "82", "83"]
)
NATIONAL_REGION_PREFIX = "10"
EARLIEST_BIRTH_DATE = date(1850, 1, 1)

DIGITS = "0123456789"
ID_CHECK_CHARS = "10X98765432"
ID_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))

CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = tuple(3**i % 31 for i in range(17))
CREDIT_AUTHORITY_CODES = frozenset("123456789ANY")
CREDIT_ORG_TYPE_CODES = frozenset("123456789")

MOBILE_PATTERN = re.compile(r"1[3-9][0-9]{9}")
PHONE_SEPARATORS = re.compile(r"[\s\-]+")


class IdentifierError(ValueError):
    """An identifier failed validation; ``message`` is a user-facing Chinese reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _is_ascii_digits(text: str) -> bool:
    return bool(text) and all(c in DIGITS for c in text)


def _strip_spaces(value: object, label: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(f"{label}格式不正确")
    text = "".join(value.split())
    if not text:
        raise IdentifierError(f"{label}不能为空")
    return text


def _china_today() -> date:
    return datetime.now(CHINA_TZ).date()


def id_check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 ID digits."""
    if len(first17) != 17 or not _is_ascii_digits(first17):
        raise IdentifierError("身份证号码前17位应为数字")
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS))
    return ID_CHECK_CHARS[total % 11]


def _parse_birth_date(digits: str) -> date | None:
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def normalize_id_number(value: str, *, today: date | None = None) -> str:
    """Validate a GB 11643-1999 resident ID number and return it in canonical form."""
    text = _strip_spaces(value, "身份证号码").upper()
    if len(text) != 18:
        raise IdentifierError("身份证号码长度应为18位")
    body, check = text[:17], text[17]
    if not _is_ascii_digits(body):
        raise IdentifierError("身份证号码前17位应为数字")
    if check not in DIGITS and check != "X":
        raise IdentifierError("身份证号码最后一位应为数字或X")
    if body[:2] not in PROVINCE_CODES:
        raise IdentifierError("身份证号码地区代码无效")
    birth = _parse_birth_date(body[6:14])
    latest = today or _china_today()
    if birth is None or birth < EARLIEST_BIRTH_DATE or birth > latest:
        raise IdentifierError("身份证号码出生日期无效")
    if id_check_char(body) != check:
        raise IdentifierError("身份证号码校验位错误")
    return text


def birth_date_of(id_number: str) -> date:
    """Return the birth date encoded in a valid ID number."""
    text = normalize_id_number(id_number)
    return date(int(text[6:10]), int(text[10:12]), int(text[12:14]))


def age_on(id_number: str, day: date) -> int:
    """Return the age in completed years of the ID holder on ``day``."""
    birth = birth_date_of(id_number)
    if day < birth:
        raise IdentifierError("日期早于出生日期")
    had_birthday = (day.month, day.day) >= (birth.month, birth.day)
    return day.year - birth.year - (0 if had_birthday else 1)


def gender_of(id_number: str) -> str:
    """Return '男' or '女' from the sequence digit of a valid ID number."""
    text = normalize_id_number(id_number)
    return "男" if int(text[16]) % 2 else "女"


def credit_check_char(first17: str) -> str:
    """Return the GB 32100-2015 check character for 17 credit-code characters."""
    if len(first17) != 17 or any(c not in CREDIT_ALPHABET for c in first17):
        raise IdentifierError("统一社会信用代码包含无效字符")
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(first17, CREDIT_WEIGHTS))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def _valid_credit_region(region: str) -> bool:
    if not _is_ascii_digits(region):
        return False
    return region[:2] in PROVINCE_CODES or region[:2] == NATIONAL_REGION_PREFIX


def normalize_credit_code(value: str) -> str:
    """Validate a GB 32100-2015 unified social credit code and return it upper-cased."""
    text = _strip_spaces(value, "统一社会信用代码").upper()
    if len(text) != 18:
        raise IdentifierError("统一社会信用代码长度应为18位")
    if any(c not in CREDIT_ALPHABET for c in text):
        raise IdentifierError("统一社会信用代码包含无效字符")
    if text[0] not in CREDIT_AUTHORITY_CODES:
        raise IdentifierError("统一社会信用代码登记管理部门代码无效")
    if text[1] not in CREDIT_ORG_TYPE_CODES:
        raise IdentifierError("统一社会信用代码机构类别代码无效")
    if not _valid_credit_region(text[2:8]):
        raise IdentifierError("统一社会信用代码行政区划码无效")
    if credit_check_char(text[:17]) != text[17]:
        raise IdentifierError("统一社会信用代码校验码错误")
    return text


def normalize_phone(value: str) -> str:
    """Validate a mainland mobile number and return its 11 bare digits."""
    if not isinstance(value, str):
        raise IdentifierError("手机号码格式不正确")
    text = PHONE_SEPARATORS.sub("", value)
    if not text:
        raise IdentifierError("手机号码不能为空")
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if not MOBILE_PATTERN.fullmatch(text):
        raise IdentifierError("手机号码格式不正确")
    return text
