"""Field-level encryption, blind indexes and display masking for personal data."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SM4_KEY_INFO = b"shandong-super-app/pii/sm4-gcm/v1"

ALGORITHM_IDS = {"AES-256-GCM": "a256gcm", "SM4-GCM": "sm4gcm"}

_B64URL_VALUE = {ch: n for n, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_TO_STANDARD_B64 = bytes.maketrans(b"-_", b"+/")
BASE64_KEY_TEXT = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


class PiiDecryptError(ValueError):
    """A PII token is malformed, tampered with, or bound to another context."""


def generate_key() -> bytes:
    """Return 32 fresh random bytes for use as a PII or index key."""
    return secrets.token_bytes(KEY_BYTES)


def load_key(text: str) -> bytes:
    """Decode a base64 (standard or url-safe, padding optional) 32-byte key."""
    cleaned = text.strip() if isinstance(text, str) else ""
    if not BASE64_KEY_TEXT.fullmatch(cleaned):
        raise ValueError("密钥应为32字节的base64编码")
    standard = cleaned.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("密钥应为32字节的base64编码") from exc
    if len(key) != KEY_BYTES:
        raise ValueError("密钥应为32字节的base64编码")
    return key


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Canonical unpadded base64url only: the alphabet, a possible length, no stray low bits. (The standard
    alphabet's `+`, `/` and `=` are refused before translating; strict decoding refuses anything else.)"""
    if not text or not text.isascii() or len(text) % 4 == 1:
        raise PiiDecryptError("个人信息密文格式无效")
    raw = text.encode("ascii")
    spare_bits = {2: 0x0F, 3: 0x03}.get(len(raw) % 4, 0)
    if b"+" in raw or b"/" in raw or b"=" in raw or _B64URL_VALUE.get(text[-1:], 0) & spare_bits:
        raise PiiDecryptError("个人信息密文格式无效")
    try:
        return binascii.a2b_base64(raw.translate(_TO_STANDARD_B64) + b"=" * (-len(raw) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise PiiDecryptError("个人信息密文格式无效") from exc


def _require_key(key: bytes, name: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise ValueError(f"{name}应为32字节")
    return bytes(key)


def _derive_sm4_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=SM4_KEY_INFO).derive(key)[:16]


def _sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def _sm4_gcm_decrypt(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext) + decryptor.finalize()


def _associated_data(alg_id: str, context: str) -> bytes:
    return f"{TOKEN_VERSION}.{alg_id}\x00{context}".encode("utf-8")


class PiiCipher:
    """Authenticated encryption of PII fields with algorithm-tagged, versioned tokens."""

    def __init__(self, key: bytes, index_key: bytes, algorithm: str = "AES-256-GCM") -> None:
        if algorithm not in ALGORITHM_IDS:
            raise ValueError(f"不支持的加密算法: {algorithm}")
        self._key = _require_key(key, "加密密钥")
        self._index_key = _require_key(index_key, "索引密钥")
        if hmac.compare_digest(self._key, self._index_key):
            raise ValueError("索引密钥不能与加密密钥相同")
        self._sm4_key = _derive_sm4_key(self._key)
        self._aes = AESGCM(self._key)  # stateless per call: one object serves every seal and open
        self.algorithm = algorithm

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        """Encrypt ``plaintext`` bound to ``context``; returns ``v1.<alg>.<base64url>``."""
        if not isinstance(plaintext, str):
            raise TypeError("plaintext must be str")
        return self.encrypt_bytes(plaintext.encode("utf-8"), context=context)

    def decrypt(self, token: str, *, context: str = "") -> str:
        """Decrypt a token produced by any supported algorithm; raise PiiDecryptError on failure."""
        try:
            return self.decrypt_bytes(token, context=context).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PiiDecryptError("个人信息密文无法解密") from exc

    def encrypt_bytes(self, data: bytes, *, context: str = "") -> str:
        """`encrypt` for bytes (a compressed document): the same token format."""
        alg_id = ALGORITHM_IDS[self.algorithm]
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._seal(alg_id, nonce, data, _associated_data(alg_id, context))
        return f"{TOKEN_VERSION}.{alg_id}.{_b64url_encode(nonce + sealed)}"

    def decrypt_bytes(self, token: str, *, context: str = "") -> bytes:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != TOKEN_VERSION or parts[1] not in ALGORITHM_IDS.values():
            raise PiiDecryptError("个人信息密文格式无效")
        alg_id, payload = parts[1], _b64url_decode(parts[2])
        if len(payload) < NONCE_BYTES + TAG_BYTES:
            raise PiiDecryptError("个人信息密文格式无效")
        nonce, sealed = payload[:NONCE_BYTES], payload[NONCE_BYTES:]
        try:
            return self._open(alg_id, nonce, sealed, _associated_data(alg_id, context))
        except InvalidTag as exc:
            raise PiiDecryptError("个人信息密文无法解密") from exc

    def blind_index(self, value: str, *, domain: str) -> str:
        """Return a keyed, domain-separated HMAC-SHA256 hex digest for equality look-ups."""
        if not domain or "\x00" in domain:
            raise ValueError("索引域不能为空且不能包含空字符")
        message = f"{domain}\x00{value}".encode("utf-8")
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def _seal(self, alg_id: str, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if alg_id == ALGORITHM_IDS["SM4-GCM"]:
            return _sm4_gcm_encrypt(self._sm4_key, nonce, data, aad)
        return self._aes.encrypt(nonce, data, aad)

    def _open(self, alg_id: str, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        if alg_id == ALGORITHM_IDS["SM4-GCM"]:
            return _sm4_gcm_decrypt(self._sm4_key, nonce, sealed, aad)
        return self._aes.decrypt(nonce, sealed, aad)


def _mask_middle(value: str | None, keep_head: int, keep_tail: int) -> str | None:
    if value is None:
        return None
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    return value[:keep_head] + "*" * (len(value) - keep_head - keep_tail) + value[len(value) - keep_tail :]


def mask_id_number(value: str | None) -> str | None:
    """Keep the first 6 and last 4 characters of an ID number, star the rest."""
    return _mask_middle(value, 6, 4)


def mask_credit_code(value: str | None) -> str | None:
    """Keep the first 6 and last 4 characters of a credit code, star the rest."""
    return _mask_middle(value, 6, 4)


def mask_phone(value: str | None) -> str | None:
    """Keep the first 3 and last 4 digits of a phone number, star the rest."""
    return _mask_middle(value, 3, 4)


def mask_name(value: str | None) -> str | None:
    """Keep the first character of a name and star the rest."""
    if value is None:
        return None
    if len(value) <= 1:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 1)
