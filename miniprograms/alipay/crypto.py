"""Alipay content encryption: AES-CBC with a zero IV and PKCS#7, keys and texts in base64."""
from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BYTES = 16
ZERO_IV = bytes(BLOCK_BYTES)


class AlipayCryptoError(ValueError):
    """Key, ciphertext or padding is not valid."""


def aes_encrypt(plaintext: str, key_b64: str) -> str:
    """Encrypt UTF-8 text the way Alipay's "接口内容加密" expects; returns base64."""
    padder = padding.PKCS7(BLOCK_BYTES * 8).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = _cipher(key_b64).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def aes_decrypt(ciphertext_b64: str, key_b64: str) -> str:
    """Decrypt base64 ciphertext to UTF-8 text; AlipayCryptoError on any malformation."""
    ciphertext = _b64(ciphertext_b64, "ciphertext")
    if not ciphertext or len(ciphertext) % BLOCK_BYTES:
        raise AlipayCryptoError("ciphertext length is not a multiple of the AES block")
    decryptor = _cipher(key_b64).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(BLOCK_BYTES * 8).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
        return plaintext.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlipayCryptoError("bad padding or text encoding") from exc


def _cipher(key_b64: str) -> Cipher:
    key = _b64(key_b64, "key")
    if len(key) not in (16, 24, 32):
        raise AlipayCryptoError("AES key must be 128, 192 or 256 bits")
    return Cipher(algorithms.AES(key), modes.CBC(ZERO_IV))


def _b64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AlipayCryptoError(f"{name} is not valid base64") from exc
