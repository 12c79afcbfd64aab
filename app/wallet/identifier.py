"""GB/T 36904 electronic license identifiers (证照标识) with an ISO 7064 MOD 37,36 check character."""

from __future__ import annotations

import re

PREFIX = "1.2.156.3005.2"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUES = {char: value for value, char in enumerate(_ALPHABET)}
_MODULUS = 36
_SEGMENT = r"[0-9A-Z]+"
_IDENTIFIER_RE = re.compile(
    rf"{re.escape(PREFIX)}\.({_SEGMENT})\.([0-9A-Z]{{18}})\.({_SEGMENT})\.([0-9]{{3}})\.([0-9A-Z])"
)


def mod37_36_check(s: str) -> str:
    """ISO 7064 MOD 37,36 (hybrid system, M=36) check character over `s` (0-9, A-Z).

    For GB/T 36904 the span is type code + issuer credit code + serial + version,
    concatenated without dots or the OID prefix. Verified on the public vector
    1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U
    (this span gives "U"; type+credit+serial gives "4", credit+serial+version "G").
    """
    product = _MODULUS
    for char in s:
        value = _VALUES.get(char)
        if value is None:
            raise ValueError(f"character {char!r} is outside 0-9A-Z")
        total = (product + value) % _MODULUS or _MODULUS
        product = (total * 2) % (_MODULUS + 1)
    return _ALPHABET[(_MODULUS + 1 - product) % _MODULUS]


def build_identifier(*, type_code: str, issuer_credit_code: str, serial: str, version: str = "001") -> str:
    """Assemble a GB/T 36904 identifier and append its check character."""
    body = f"{PREFIX}.{type_code}.{issuer_credit_code}.{serial}.{version}"
    check = mod37_36_check(type_code + issuer_credit_code + serial + version)
    identifier = f"{body}.{check}"
    if not _IDENTIFIER_RE.fullmatch(identifier):
        raise ValueError("identifier parts have the wrong shape")
    return identifier


def parse_identifier(identifier: str) -> dict[str, str]:
    """Split and validate an identifier; raises ValueError on a bad shape or check character."""
    match = _IDENTIFIER_RE.fullmatch(identifier) if isinstance(identifier, str) else None
    if match is None:
        raise ValueError("not a GB/T 36904 license identifier")
    type_code, issuer_credit_code, serial, version, check = match.groups()
    if mod37_36_check(type_code + issuer_credit_code + serial + version) != check:
        raise ValueError("wrong check character")
    return {
        "type_code": type_code,
        "issuer_credit_code": issuer_credit_code,
        "serial": serial,
        "version": version,
        "check": check,
    }
