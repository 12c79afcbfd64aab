"""Decryption of WeChat mini-program open data (encryptedData): AES-128-CBC, PKCS#7, watermark check."""
from __future__ import annotations

import base64
import binascii
import json
import time

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.errors import BadRequest, Forbidden

BLOCK_BYTES = 16


def decrypt_encrypted_data(session_key_b64: str, encrypted_data_b64: str, iv_b64: str, *,
                           app_id: str, max_age_seconds: int | None = None,
                           now: float | None = None) -> dict:
    """Decrypt and authenticate-by-watermark one encryptedData blob; raise BadRequest/Forbidden."""
    key = _b64(session_key_b64, "session_key", exact=BLOCK_BYTES)
    iv = _b64(iv_b64, "iv", exact=BLOCK_BYTES)
    ciphertext = _b64(encrypted_data_b64, "encryptedData")
    if not ciphertext or len(ciphertext) % BLOCK_BYTES:
        raise BadRequest("encryptedData 长度不正确")
    data = _parse(_unpad(_aes_cbc_decrypt(key, iv, ciphertext)))
    _check_watermark(data, app_id, max_age_seconds, time.time() if now is None else now)
    return data


def _b64(text: str, name: str, exact: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{name} 不是合法的 Base64 数据") from exc
    if exact is not None and len(raw) != exact:
        raise BadRequest(f"{name} 长度不正确")
    return raw


def _aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _unpad(padded: bytes) -> bytes:
    unpadder = padding.PKCS7(BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise BadRequest("数据解密失败，请重新登录后再试") from exc


def _parse(plaintext: bytes) -> dict:
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("数据解密失败，请重新登录后再试") from exc
    if not isinstance(data, dict):
        raise BadRequest("解密后的数据格式不正确")
    return data


def _check_watermark(data: dict, app_id: str, max_age_seconds: int | None, now: float) -> None:
    watermark = data.get("watermark")
    if not isinstance(watermark, dict) or watermark.get("appid") != app_id:
        raise Forbidden("数据水印与本小程序不符，已拒绝")
    if max_age_seconds is None:
        return
    timestamp = watermark.get("timestamp")
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        raise BadRequest("数据水印缺少时间戳")
    if now - timestamp > max_age_seconds:
        raise BadRequest("数据已过期，请重新获取")
