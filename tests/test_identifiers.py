"""Tests for resident ID, credit code and phone number validation."""

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.identity.identifiers import (
    IdentifierError,
    age_on,
    birth_date_of,
    credit_check_char,
    gender_of,
    id_check_char,
    normalize_credit_code,
    normalize_id_number,
    normalize_phone,
)
from app.timeutil import beijing_today

PROVINCES = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
]
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
ID_ALPHABET = "0123456789X"
TODAY = date(2025, 6, 15)


def reference_id_check(first17: str) -> str:
    total = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(first17))
    return "10X98765432"[total % 11]


def reference_credit_check(first17: str) -> str:
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(first17, weights))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def make_id(prefix: str, birth: date, sequence: str = "881") -> str:
    body = f"{prefix}{birth:%Y%m%d}{sequence}"
    return body + reference_id_check(body)


valid_ids = st.builds(
    lambda province, district, birth, seq: make_id(province + district, birth, seq),
    st.sampled_from(PROVINCES),
    st.from_regex(r"\A[0-9]{4}\Z"),
    st.dates(min_value=date(1900, 1, 1), max_value=beijing_today() - timedelta(days=1)),
    st.from_regex(r"\A[0-9]{3}\Z"),
)

valid_credit_codes = st.builds(
    lambda authority, kind, region, body: (lambda s: s + reference_credit_check(s))(authority + kind + region + body),
    st.sampled_from("159Y"),
    st.sampled_from("1239"),
    st.one_of(
        st.just("100000"),
        st.builds(lambda p, d: p + d, st.sampled_from(PROVINCES), st.from_regex(r"\A[0-9]{4}\Z")),
    ),
    st.text(alphabet=CREDIT_ALPHABET, min_size=9, max_size=9),
)


def substitute(text: str, position: int, char: str) -> str:
    return text[:position] + char + text[position + 1 :]


# --- resident ID numbers -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["11010519491231002X", "370102199003078819"])
def test_published_and_shandong_vectors_are_valid(value):
    assert normalize_id_number(value) == value


def test_shandong_vector_check_char_is_computed():
    assert id_check_char("37010219900307881") == reference_id_check("37010219900307881") == "9"


def test_gb11643_example_born_1880_is_valid():
    assert id_check_char("44052418800101001") == "4"
    assert normalize_id_number("440524188001010014") == "440524188001010014"


def test_birth_before_1850_is_refused():
    with pytest.raises(IdentifierError, match="出生日期无效"):
        normalize_id_number("440524184001010014"[:17] + id_check_char("44052418400101001"))


def test_lower_case_x_is_normalised():
    assert normalize_id_number("11010519491231002x") == "11010519491231002X"


def test_spaces_are_stripped():
    assert normalize_id_number(" 110105 19491231 002X ") == "11010519491231002X"


def test_former_laiwu_prefix_is_valid():
    value = make_id("371202", date(1985, 4, 1))
    assert normalize_id_number(value) == value


@pytest.mark.parametrize("prefix", ["810000", "820000", "830000", "710000"])
def test_hk_macao_taiwan_prefixes_are_valid(prefix):
    value = make_id(prefix, date(1990, 1, 1))
    assert normalize_id_number(value) == value


@pytest.mark.parametrize("prefix", ["000000", "100000", "160000", "390000", "720000", "840000", "990000"])
def test_unknown_region_is_rejected(prefix):
    with pytest.raises(IdentifierError, match="地区代码无效"):
        normalize_id_number(make_id(prefix, date(1990, 1, 1)))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "不能为空"),
        ("   ", "不能为空"),
        ("11010519491231002", "长度应为18位"),
        ("11010519491231002X1", "长度应为18位"),
        ("1101051949123100AX", "前17位应为数字"),
        ("１１0105194912310021", "前17位应为数字"),
        ("11010519491231002Y", "最后一位应为数字或X"),
        ("110105194912310021", "校验位错误"),
    ],
)
def test_invalid_id_reasons(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        normalize_id_number(value)


def test_non_string_id_is_rejected():
    with pytest.raises(IdentifierError):
        normalize_id_number(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("birth", ["19900230", "19900431", "19901301", "19900001", "19000229"])
def test_impossible_birth_dates_are_rejected(birth):
    body = f"370102{birth}881"
    with pytest.raises(IdentifierError, match="出生日期无效"):
        normalize_id_number(body + reference_id_check(body))


def test_leap_day_birth_is_valid():
    value = make_id("370102", date(2000, 2, 29))
    assert birth_date_of(value) == date(2000, 2, 29)


def test_future_birth_date_is_rejected():
    with pytest.raises(IdentifierError, match="出生日期无效"):
        normalize_id_number(make_id("370102", TODAY + timedelta(days=1)), today=TODAY)


def test_birth_today_is_accepted():
    value = make_id("370102", TODAY)
    assert normalize_id_number(value, today=TODAY) == value


def test_far_future_birth_date_is_rejected_without_explicit_today():
    with pytest.raises(IdentifierError, match="出生日期无效"):
        normalize_id_number(make_id("370102", date(2999, 1, 1)))


def test_birth_date_gender_and_age():
    value = "11010519491231002X"
    assert birth_date_of(value) == date(1949, 12, 31)
    assert gender_of(value) == "女"
    assert gender_of("370102199003078819") == "男"
    assert age_on(value, date(2024, 12, 30)) == 74
    assert age_on(value, date(2024, 12, 31)) == 75


def test_age_of_leap_day_birth():
    value = make_id("370102", date(2000, 2, 29))
    assert age_on(value, date(2018, 2, 28)) == 17
    assert age_on(value, date(2018, 3, 1)) == 18
    assert age_on(value, date(2020, 2, 29)) == 20


def test_age_before_birth_is_rejected():
    with pytest.raises(IdentifierError):
        age_on("370102199003078819", date(1990, 3, 6))


def test_id_check_char_rejects_bad_input():
    for bad in ["1234", "3701021990030788X", "370102199003078819"]:
        with pytest.raises(IdentifierError):
            id_check_char(bad)


@settings(max_examples=300)
@given(valid_ids)
def test_every_generated_valid_id_passes(value):
    assert normalize_id_number(value) == value
    assert normalize_id_number(value.lower()) == value
    assert id_check_char(value[:17]) == value[17]


@settings(max_examples=300)
@given(valid_ids, st.integers(0, 17), st.sampled_from(ID_ALPHABET))
def test_every_single_character_change_of_an_id_fails(value, position, char):
    if value[position] == char:
        char = ID_ALPHABET[(ID_ALPHABET.index(char) + 1) % len(ID_ALPHABET)]
    with pytest.raises(IdentifierError):
        normalize_id_number(substitute(value, position, char))


def test_all_single_character_changes_of_a_fixed_id_fail():
    value = "370102199003078819"
    for position in range(18):
        for char in ID_ALPHABET.replace(value[position], ""):
            with pytest.raises(IdentifierError):
                normalize_id_number(substitute(value, position, char))


# --- unified social credit codes -----------------------------------------------------------


def test_published_credit_code_is_valid():
    assert normalize_credit_code("91110000600037341L") == "91110000600037341L"
    assert credit_check_char("91110000600037341") == "L"


def test_credit_code_lower_case_and_spaces_are_normalised():
    assert normalize_credit_code(" 91110000 600037341l ") == "91110000600037341L"


def test_credit_check_char_maps_31_to_zero():
    body = next(
        authority_body
        for n in range(100000)
        if reference_credit_check(authority_body := f"91370100{n:09d}") == "0"
    )
    assert credit_check_char(body) == "0"
    assert normalize_credit_code(body + "0") == body + "0"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "不能为空"),
        ("91110000600037341", "长度应为18位"),
        ("91110000600037341LL", "长度应为18位"),
        ("91110000600037341I", "包含无效字符"),
        ("9111000060003734OL", "包含无效字符"),
        ("91110000600037341S", "包含无效字符"),
        ("91110000600037341Z", "包含无效字符"),
        ("91110000600037341V", "包含无效字符"),
        ("9111000060003734-L", "包含无效字符"),
        ("91110000600037341A", "校验码错误"),
    ],
)
def test_invalid_credit_code_reasons(value, reason):
    with pytest.raises(IdentifierError, match=reason):
        normalize_credit_code(value)


def with_credit_check(first17: str) -> str:
    return first17 + reference_credit_check(first17)


@pytest.mark.parametrize(
    ("first17", "reason"),
    [
        ("01110000600037341", "登记管理部门代码无效"),
        ("B1110000600037341", "登记管理部门代码无效"),
        ("90110000600037341", "机构类别代码无效"),
        ("9A110000600037341", "机构类别代码无效"),
        ("911A0000600037341", "行政区划码无效"),
        ("91990000600037341", "行政区划码无效"),
    ],
)
def test_credit_code_structure_reasons(first17, reason):
    with pytest.raises(IdentifierError, match=reason):
        normalize_credit_code(with_credit_check(first17))


def test_national_level_region_is_valid():
    value = with_credit_check("91100000100000000")
    assert normalize_credit_code(value) == value


@settings(max_examples=300)
@given(valid_credit_codes)
def test_every_generated_valid_credit_code_passes(value):
    assert normalize_credit_code(value) == value
    assert normalize_credit_code(value.lower()) == value
    assert credit_check_char(value[:17]) == value[17]


@settings(max_examples=300)
@given(valid_credit_codes, st.integers(0, 17), st.sampled_from(CREDIT_ALPHABET))
def test_every_single_character_change_of_a_credit_code_fails(value, position, char):
    if value[position] == char:
        char = CREDIT_ALPHABET[(CREDIT_ALPHABET.index(char) + 1) % len(CREDIT_ALPHABET)]
    with pytest.raises(IdentifierError):
        normalize_credit_code(substitute(value, position, char))


def test_all_single_character_changes_of_published_credit_code_fail():
    value = "91110000600037341L"
    for position in range(18):
        for char in CREDIT_ALPHABET.replace(value[position], ""):
            with pytest.raises(IdentifierError):
                normalize_credit_code(substitute(value, position, char))


# --- mobile phone numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["13812345678", "+8613812345678", "8613812345678", "+86 138 1234 5678", "138-1234-5678", " 86-138-1234-5678 "],
)
def test_valid_phone_forms(value):
    assert normalize_phone(value) == "13812345678"


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_all_mobile_prefixes(prefix):
    assert normalize_phone(prefix + "012345678") == prefix + "012345678"


@pytest.mark.parametrize(
    "value",
    [
        "", "12812345678", "1381234567", "138123456789", "+8512812345678",
        "0531-86012345", "1381234567a", "１３８１２３４５６７８", "++8613812345678",
    ],
)
def test_invalid_phones(value):
    with pytest.raises(IdentifierError):
        normalize_phone(value)


def test_phone_error_message_is_chinese():
    with pytest.raises(IdentifierError, match="手机号码格式不正确") as info:
        normalize_phone("12345")
    assert info.value.message == "手机号码格式不正确"


@given(st.from_regex(r"\A1[3-9][0-9]{9}\Z"))
def test_generated_mobiles_round_trip(value):
    assert normalize_phone(value) == value
    assert normalize_phone("+86" + value) == value
