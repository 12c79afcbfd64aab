"""Alipay RSA2 (SHA256withRSA) signing of parameters and verification of gateway responses."""
from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.errors import UpstreamError

from .crypto import AlipayCryptoError, aes_decrypt

ERROR_NODE = "error_response"
SUCCESS_CODE = "10000"


@lru_cache(maxsize=16)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or Alipay's bare base64 PKCS#8 text."""
    key = serialization.load_pem_private_key(_as_pem(pem, "PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Alipay keys must be RSA")
    return key


@lru_cache(maxsize=16)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM or Alipay's bare base64 SubjectPublicKeyInfo text."""
    key = serialization.load_pem_public_key(_as_pem(pem, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Alipay keys must be RSA")
    return key


def signing_string(params: Mapping[str, Any], *, include_sign_type: bool = True) -> str:
    """Alipay's content to sign: non-empty params except sign, sorted by key, joined k=v&k=v."""
    excluded = {"sign"} if include_sign_type else {"sign", "sign_type"}
    items = sorted((key, _text(value)) for key, value in params.items()
                   if key not in excluded and value is not None and value != "")
    return "&".join(f"{key}={value}" for key, value in items)


def sign_content(content: str, private_key_pem: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over UTF-8 content, base64."""
    signature = load_private_key(private_key_pem).sign(
        content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_content(content: str, sign_b64: str, public_key_pem: str) -> bool:
    """True when sign_b64 is a valid SHA256withRSA signature of content."""
    try:
        signature = base64.b64decode(sign_b64, validate=True)
        load_public_key(public_key_pem).verify(
            signature, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_params(params: Mapping[str, Any], private_key_pem: str) -> str:
    """Sign request parameters (sign_type included, as Alipay's gateway expects)."""
    return sign_content(signing_string(params), private_key_pem)


def verify_params(params: Mapping[str, Any], public_key_pem: str, *,
                  include_sign_type: bool = False) -> bool:
    """Verify params["sign"]; by default without sign_type (the asynchronous notification rule)."""
    sign = params.get("sign")
    if not isinstance(sign, str) or not sign:
        return False
    content = signing_string(params, include_sign_type=include_sign_type)
    return verify_content(content, sign, public_key_pem)


def extract_signed_content(body_text: str, method: str) -> tuple[str, str | None]:
    """The exact raw text of the response node (quotes included when encrypted) and the sign.

    The node is `<method with dots as underscores>_response`, else `error_response`;
    raises UpstreamError when the body is not a JSON object holding one of them.
    """
    _, content, sign = _locate(body_text, method)
    return content, sign


def verify_response(body_text: str, method: str, alipay_public_key_pem: str, *,
                    aes_key_b64: str | None = None) -> dict:
    """The verified (and, when encrypted, decrypted) response node; UpstreamError otherwise.

    A node without "code" (e.g. alipay.system.oauth.token) is a success. An unsigned node
    (no or empty sign) is accepted only when it reports a failure: Alipay leaves some
    gateway errors, such as a bad request signature, unsigned.
    """
    node, content, sign = _locate(body_text, method)
    if sign and not verify_content(content, sign, alipay_public_key_pem):
        raise UpstreamError("支付宝响应验签失败")
    data = _node_data(content, aes_key_b64)
    if node == ERROR_NODE and data.get("code", SUCCESS_CODE) == SUCCESS_CODE:
        raise UpstreamError("支付宝错误响应缺少错误码")
    if not sign and data.get("code", SUCCESS_CODE) == SUCCESS_CODE:
        raise UpstreamError("支付宝响应缺少签名")
    return data


def _locate(body_text: str, method: str) -> tuple[str, str, str | None]:
    try:
        members = _top_level_members(body_text)
        sign_span = members.get("sign")
        sign = json.loads(body_text[slice(*sign_span)]) if sign_span else None
    except (ValueError, IndexError):
        raise UpstreamError("支付宝返回了无法解析的数据") from None
    if sign is not None and not isinstance(sign, str):
        raise UpstreamError("支付宝响应的签名格式不正确")
    for node in (method.replace(".", "_") + "_response", ERROR_NODE):
        if node in members:
            return node, body_text[slice(*members[node])], sign
    raise UpstreamError("支付宝响应中缺少业务数据")


def _node_data(content: str, aes_key_b64: str | None) -> dict:
    try:
        value = json.loads(content)
        if isinstance(value, str):
            if not aes_key_b64:
                raise UpstreamError("收到加密的支付宝响应，但未配置内容加密密钥")
            value = json.loads(aes_decrypt(value, aes_key_b64))
    except (ValueError, AlipayCryptoError):
        raise UpstreamError("支付宝响应内容无法解析或解密") from None
    if not isinstance(value, dict):
        raise UpstreamError("支付宝响应内容格式不正确")
    return value


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_pem(text: str, label: str) -> bytes:
    text = text.strip()
    if "-----BEGIN" in text:
        return text.encode("ascii")
    body = "".join(text.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _top_level_members(text: str) -> dict[str, tuple[int, int]]:
    """Map each top-level key of a JSON object text to the (start, end) span of its raw value."""
    members: dict[str, tuple[int, int]] = {}
    pos = _expect(text, _skip_ws(text, 0), "{")
    if text[_skip_ws(text, pos)] == "}":
        return _end_of_document(text, _skip_ws(text, pos) + 1, members)
    while True:
        key_start = _skip_ws(text, pos)
        if text[key_start] != '"':
            raise ValueError("object key expected")
        key_end = _string_end(text, key_start)
        key = json.loads(text[key_start:key_end])
        value_start = _skip_ws(text, _expect(text, _skip_ws(text, key_end), ":"))
        value_end = _value_end(text, value_start)
        if key in members:
            raise ValueError("duplicate top-level key")
        members[key] = (value_start, value_end)
        pos = _skip_ws(text, value_end)
        if text[pos] == "}":
            return _end_of_document(text, pos + 1, members)
        pos = _expect(text, pos, ",")


def _end_of_document(text: str, pos: int, members: dict) -> dict:
    if _skip_ws(text, pos) != len(text):
        raise ValueError("trailing data after the JSON object")
    return members


def _value_end(text: str, pos: int) -> int:
    opener = text[pos]
    if opener == '"':
        return _string_end(text, pos)
    if opener in "{[":
        return _container_end(text, pos)
    end = pos
    while end < len(text) and text[end] not in ",}] \t\r\n":
        end += 1
    if end == pos:
        raise ValueError("value expected")
    return end


def _container_end(text: str, pos: int) -> int:
    depth = 0
    while True:
        char = text[pos]
        if char == '"':
            pos = _string_end(text, pos)
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1


def _string_end(text: str, pos: int) -> int:
    """Index just past the closing quote of the string starting at pos."""
    pos += 1
    while True:
        char = text[pos]
        if char == "\\":
            pos += 2
        elif char == '"':
            return pos + 1
        else:
            pos += 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    if text[pos] != char:
        raise ValueError(f"{char!r} expected")
    return pos + 1
