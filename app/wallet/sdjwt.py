"""SD-JWT VC (RFC 9901, `typ: dc+sd-jwt`, ES256): issuance, holder presentation with key binding, verification."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from app.security.jose import (
    DecodedJws,
    JoseError,
    b64url_encode,
    b64url_json,
    decode_jws,
    es256_sign_jws,
    json_bytes,
    load_public_jwk,
    sha256_b64url,
    verify_decoded,
)

SD_JWT_VC_TYP = "dc+sd-jwt"
KB_JWT_TYP = "kb+jwt"
SD_ALG = "sha-256"
SALT_BYTES = 16
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
MALFORMED = "malformed"
WRONG_AUDIENCE = "wrong_audience"
WRONG_NONCE = "wrong_nonce"
BINDING_CLAIM = "holder_binding"  # clear-text claim: whose key `cnf` names
DEVICE_BINDING, PLATFORM_BINDING = "device", "platform"
_SET_BY_ISSUER = frozenset({"iss", "iat", "exp", "vct", "cnf", "status", "_sd", "_sd_alg", "..."})
_NEVER_DISCLOSABLE = _SET_BY_ISSUER | {"nbf", "vct#integrity"}
_JWK_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
_CONTAINERS = (dict, list)

IssuerKey = ec.EllipticCurvePublicKey | Mapping[str, Any]


class SdJwtError(Exception):
    """Verification failure; `reason` is "bad_signature", "expired", "malformed", "wrong_audience"
    or "wrong_nonce"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerifiedPresentation:
    """Processed payload (clear + disclosed claims, no `_sd`), top-level disclosures, issuer kid, KB-JWT payload."""

    payload: dict[str, Any]
    disclosed: dict[str, Any]
    kid: str
    kb: dict[str, Any] | None


def make_disclosure(name: str, value: Any) -> str:
    """base64url(JSON [salt, name, value]) with a 128-bit random salt."""
    salt = b64url_encode(secrets.token_bytes(SALT_BYTES))
    return b64url_encode(json_bytes([salt, name, value]))


def disclosure_digest(disclosure: str) -> str:
    """SHA-256 digest of the disclosure's base64url text, as listed in `_sd`."""
    return sha256_b64url(disclosure.encode("ascii"))


def issue_sd_jwt_vc(
    *,
    issuer_key: ec.EllipticCurvePrivateKey,
    kid: str,
    iss: str,
    vct: str,
    claims: dict[str, Any],
    always_visible: dict[str, Any],
    iat: int | None,
    exp: int,
    holder_public_jwk: dict[str, Any],
    status: dict[str, Any] | None,
    decoys: int | None = None,
    name_sd_alg: bool = True,
) -> str:
    """Issuer form `<jwt>~<d1>~...~`: every `claims` key selectively disclosable, `always_visible` in the clear.
    `iat=None` and `name_sd_alg=False` leave out what no verifier needs (`iat` is optional in SD-JWT VC;
    without `_sd_alg` the digests are sha-256, RFC 9901 section 4.1.1): for credentials shown in a QR code."""
    _check_claim_names(claims, always_visible)
    load_public_jwk(holder_public_jwk)
    disclosures = [make_disclosure(name, value) for name, value in claims.items()]
    decoy_count = secrets.randbelow(4) + 1 if decoys is None else decoys
    digests = [disclosure_digest(d) for d in disclosures] + [_decoy_digest() for _ in range(decoy_count)]
    payload: dict[str, Any] = {"iss": iss, **({"iat": iat} if iat is not None else {}), "exp": exp, "vct": vct,
                               **always_visible}
    payload["cnf"] = {"jwk": {k: holder_public_jwk[k] for k in _JWK_PUBLIC_MEMBERS}}
    if status:
        payload["status"] = status
    payload["_sd"] = sorted(digests)
    if name_sd_alg:
        payload["_sd_alg"] = SD_ALG
    jwt = es256_sign_jws({"typ": SD_JWT_VC_TYP, "kid": kid}, payload, issuer_key)
    return "~".join([jwt, *disclosures]) + "~"


def select_disclosures(sd_jwt: str, names: list[str]) -> str:
    """Keep only the disclosures of the named top-level claims; raises ValueError for unknown names."""
    jwt, disclosures, kb_token = _split(sd_jwt)
    if kb_token:
        raise ValueError("SD-JWT already carries a key binding JWT")
    wanted = set(names)
    kept = [d for d in disclosures if _disclosure_name(d) in wanted]
    missing = wanted - {_disclosure_name(d) for d in kept}
    if missing:
        raise ValueError(f"no disclosure for: {', '.join(sorted(missing))}")
    return "~".join([jwt, *kept]) + "~"


def present(
    *,
    sd_jwt_with_selected: str,
    holder_key: ec.EllipticCurvePrivateKey,
    aud: str,
    nonce: str,
    iat: int,
    exp: int | None,
) -> str:
    """Append a KB-JWT (`typ: kb+jwt`) binding the presentation to `aud` and `nonce`."""
    if not sd_jwt_with_selected.endswith("~") or not looks_like_sd_jwt(sd_jwt_with_selected):
        raise ValueError("expected an SD-JWT ending with '~'")
    payload: dict[str, Any] = {"iat": iat, "aud": aud, "nonce": nonce}
    payload["sd_hash"] = sha256_b64url(sd_jwt_with_selected.encode("ascii"))
    if exp is not None:
        payload["exp"] = exp
    return sd_jwt_with_selected + es256_sign_jws({"typ": KB_JWT_TYP}, payload, holder_key)


def looks_like_sd_jwt(text: str) -> bool:
    """Cheap shape test: `<header>.<payload>.<sig>~...` with a JSON-object header."""
    if not isinstance(text, str) or not text.startswith("eyJ"):
        return False
    jwt, sep, _ = text.partition("~")
    return bool(sep) and jwt.count(".") == 2


def verify_presentation(
    presentation: str,
    *,
    issuer_keys: Mapping[str, IssuerKey],
    expected_aud: str | frozenset[str] | None,
    now: int,
    leeway: int = 5,
    expected_nonce: str | None = None,
    require_key_binding: bool = True,
    kb_max_age: int = 300,
) -> VerifiedPresentation:
    """Verify issuer signature, validity, disclosures and KB-JWT; raises SdJwtError(reason).
    `expected_aud`: the audience, or a set of audiences any one of which the KB-JWT may name."""
    jwt, disclosures, kb_token = _split(presentation)
    issuer_jws = _decode(jwt)
    kid = _verify_issuer_signature(issuer_jws, issuer_keys)
    payload = issuer_jws.payload
    _check_validity(payload, now, leeway)
    claims, disclosed = _Unpacker(disclosures).run(payload)
    kb = None
    if kb_token:
        sd_part = presentation[: len(presentation) - len(kb_token)]
        kb = _verify_key_binding(kb_token, sd_part, payload, expected_aud, expected_nonce, now, leeway, kb_max_age)
    elif require_key_binding:
        raise SdJwtError(BAD_SIGNATURE, "key binding JWT required")
    return VerifiedPresentation(claims, disclosed, kid, kb)


def _check_claim_names(claims: dict[str, Any], always_visible: dict[str, Any]) -> None:
    forbidden = _NEVER_DISCLOSABLE.intersection(claims) | _SET_BY_ISSUER.intersection(always_visible)
    overlap = set(claims).intersection(always_visible)
    if forbidden or overlap:
        raise ValueError(f"reserved or duplicated claim names: {sorted(forbidden | overlap)}")


def _decoy_digest() -> str:
    return sha256_b64url(b64url_encode(secrets.token_bytes(SALT_BYTES)).encode("ascii"))


def _disclosure_name(disclosure: str) -> str | None:
    decoded = b64url_json(disclosure)
    if isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[1], str):
        return decoded[1]
    return None


def _split(presentation: str) -> tuple[str, list[str], str]:
    if not isinstance(presentation, str):
        raise SdJwtError(MALFORMED, "not a string")
    parts = presentation.split("~")
    if len(parts) < 2 or parts[0].count(".") != 2:
        raise SdJwtError(MALFORMED, "not an SD-JWT")
    disclosures = parts[1:-1]
    if "" in disclosures:
        raise SdJwtError(MALFORMED, "empty disclosure")
    return parts[0], disclosures, parts[-1]


def _decode(token: str) -> DecodedJws:
    try:
        return decode_jws(token)
    except JoseError as exc:
        raise SdJwtError(MALFORMED, str(exc)) from exc


def _verify_issuer_signature(issuer_jws: DecodedJws, issuer_keys: Mapping[str, IssuerKey]) -> str:
    header = issuer_jws.header
    if header.get("typ") != SD_JWT_VC_TYP:
        raise SdJwtError(MALFORMED, "typ is not dc+sd-jwt")
    kid = header.get("kid")
    key = issuer_keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise SdJwtError(BAD_SIGNATURE, "unknown issuer kid")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        key = load_public_jwk(dict(key))
    if not verify_decoded(issuer_jws, key):
        raise SdJwtError(BAD_SIGNATURE, "issuer signature")
    return kid


def _check_validity(payload: dict[str, Any], now: int, leeway: int) -> None:
    if payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise SdJwtError(MALFORMED, "unsupported _sd_alg")
    exp, nbf = _numeric_date(payload, "exp"), _numeric_date(payload, "nbf")
    if exp is not None and now >= exp + leeway:
        raise SdJwtError(EXPIRED, "credential expired")
    if nbf is not None and now + leeway < nbf:
        raise SdJwtError(EXPIRED, "credential not yet valid")


def _numeric_date(claims: dict[str, Any], name: str) -> int | float | None:
    value = claims.get(name)
    if value is not None and (type(value) is bool or not isinstance(value, (int, float))):
        raise SdJwtError(MALFORMED, f"{name} is not a NumericDate")
    return value


class _Unpacker:
    """Replaces `_sd` / `{"...": digest}` entries by their disclosures (RFC 9901 section 7.1), in place."""

    def __init__(self, disclosures: list[str]) -> None:
        self.pending: dict[str, str] = {}
        self.seen: set[str] = set()
        for raw in disclosures:
            try:
                digest = b64url_encode(hashlib.sha256(raw.encode("ascii")).digest())
            except UnicodeEncodeError as exc:
                raise SdJwtError(MALFORMED, "non-ASCII disclosure") from exc
            if digest in self.pending:
                raise SdJwtError(BAD_SIGNATURE, "duplicate disclosure")
            self.pending[digest] = raw

    def run(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Process the freshly decoded payload (mutated); returns (claims, top-level disclosed claims)."""
        payload.pop("_sd_alg", None)
        disclosed: dict[str, Any] = {}
        self._object(payload, disclosed)
        if self.pending:
            raise SdJwtError(BAD_SIGNATURE, "disclosure not referenced by the issuer")
        return payload, disclosed

    def _claim(self, digests: list[Any]) -> None:
        """Record digests as seen; a digest may appear only once in the whole payload."""
        seen = self.seen
        before = len(seen)
        if not all(type(digest) is str for digest in digests):
            raise SdJwtError(MALFORMED, "digest is not a string")
        seen.update(digests)
        if len(seen) != before + len(digests):
            raise SdJwtError(BAD_SIGNATURE, "digest referenced twice")

    def _decode(self, raw: str, length: int) -> list[Any]:
        try:
            decoded = b64url_json(raw)
        except ValueError as exc:
            raise SdJwtError(MALFORMED, "undecodable disclosure") from exc
        if type(decoded) is not list or len(decoded) != length or type(decoded[0]) is not str:
            raise SdJwtError(MALFORMED, "disclosure has the wrong shape")
        return decoded

    def _value(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return self._object(value, None)
        if kind is list:
            return self._array(value)
        return value

    def _object(self, obj: dict[str, Any], disclosed: dict[str, Any] | None) -> dict[str, Any]:
        digests = obj.pop("_sd", None)
        for key, value in obj.items():
            if type(value) in _CONTAINERS:
                obj[key] = self._value(value)
        if digests is None:
            return obj
        if type(digests) is not list:
            raise SdJwtError(MALFORMED, "_sd is not an array")
        self._claim(digests)
        pending = self.pending
        for digest in digests:
            raw = pending.pop(digest, None)
            if raw is None:
                continue
            _salt, name, value = self._decode(raw, 3)
            if type(name) is not str or name in ("_sd", "...") or name in obj:
                raise SdJwtError(MALFORMED, "invalid or clashing disclosed claim name")
            obj[name] = value = self._value(value)
            if disclosed is not None:
                disclosed[name] = value
        return obj

    def _array(self, items: list[Any]) -> list[Any]:
        out = []
        for item in items:
            if type(item) is dict and len(item) == 1 and "..." in item:
                digest = item["..."]
                self._claim([digest])
                raw = self.pending.pop(digest, None)
                if raw is not None:
                    out.append(self._value(self._decode(raw, 2)[1]))
            else:
                out.append(self._value(item))
        return out


def _verify_key_binding(
    kb_token: str,
    sd_part: str,
    payload: dict[str, Any],
    expected_aud: str | frozenset[str] | None,
    expected_nonce: str | None,
    now: int,
    leeway: int,
    kb_max_age: int,
) -> dict[str, Any]:
    kb_jws = _decode(kb_token)
    if kb_jws.header.get("typ") != KB_JWT_TYP:
        raise SdJwtError(BAD_SIGNATURE, "KB-JWT typ is not kb+jwt")
    if not verify_decoded(kb_jws, _holder_key(payload)):
        raise SdJwtError(BAD_SIGNATURE, "KB-JWT signature")
    kb = kb_jws.payload
    if kb.get("sd_hash") != sha256_b64url(sd_part.encode("ascii")):
        raise SdJwtError(BAD_SIGNATURE, "sd_hash mismatch")
    if expected_aud is not None and not _audience_ok(kb.get("aud"), expected_aud):
        raise SdJwtError(WRONG_AUDIENCE, "audience mismatch")
    if expected_nonce is not None and kb.get("nonce") != expected_nonce:
        raise SdJwtError(WRONG_NONCE, "nonce mismatch")
    _check_kb_times(kb, now, leeway, kb_max_age)
    return kb


def _audience_ok(aud: Any, expected: str | frozenset[str]) -> bool:
    if not isinstance(aud, str):
        return False
    return aud == expected if isinstance(expected, str) else aud in expected


def _holder_key(payload: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    cnf = payload.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if jwk is None:
        raise SdJwtError(BAD_SIGNATURE, "credential has no holder key (cnf.jwk)")
    try:
        return load_public_jwk(jwk)
    except JoseError as exc:
        raise SdJwtError(MALFORMED, "invalid cnf.jwk") from exc


def _check_kb_times(kb: dict[str, Any], now: int, leeway: int, kb_max_age: int) -> None:
    iat, exp = _numeric_date(kb, "iat"), _numeric_date(kb, "exp")
    if iat is None or iat > now + leeway:
        raise SdJwtError(BAD_SIGNATURE, "KB-JWT iat missing or in the future")
    if now > iat + kb_max_age + leeway:
        raise SdJwtError(EXPIRED, "KB-JWT too old")
    if exp is not None and now >= exp + leeway:
        raise SdJwtError(EXPIRED, "KB-JWT expired")
