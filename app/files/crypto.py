"""Encryption at rest for file objects: a per-blob data key, wrapped by the key-encryption key,
and streaming AES-256-GCM in 64 KiB segments (the STREAM construction: segment nonce = random
prefix, counter, last-segment flag), so neither writing nor reading holds a whole file in memory,
and a reordered, cut or altered object fails to decrypt."""
from __future__ import annotations

import base64
import io
import secrets
from typing import BinaryIO, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..security.keys import key_cipher

MAGIC = b"IASF\x01"
PREFIX_BYTES = 7
SEGMENT = 64 * 1024
TAG = 16
HEADER_BYTES = len(MAGIC) + PREFIX_BYTES


class CorruptObject(ValueError):
    """A stored object does not decrypt: altered, cut short, or not ours."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_key(data_key: bytes, *, sha256: str) -> str:
    """The data key sealed by the key-encryption key, bound to the blob it encrypts."""
    return key_cipher().encrypt(base64.b64encode(data_key).decode(), context=f"file-blob:{sha256}")


def unwrap_key(wrapped: str, *, sha256: str) -> bytes:
    return base64.b64decode(key_cipher().decrypt(wrapped, context=f"file-blob:{sha256}"))


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    parts, wanted = [], size
    while wanted:
        chunk = stream.read(wanted)
        if not chunk:
            break
        parts.append(chunk)
        wanted -= len(chunk)
    return b"".join(parts)


class EncryptingReader(io.RawIOBase):
    """A readable stream of the ciphertext of `source` (read lazily, one segment at a time)."""

    def __init__(self, source: BinaryIO, data_key: bytes):
        self._source, self._aead = source, AESGCM(data_key)
        prefix = secrets.token_bytes(PREFIX_BYTES)
        self._header = MAGIC + prefix
        self._prefix, self._counter = prefix, 0
        self._pending = bytearray(self._header)
        self._next = _read_exact(source, SEGMENT)
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        current = self._next
        self._next = _read_exact(self._source, SEGMENT)
        last = not self._next
        nonce = _nonce(self._prefix, self._counter, last)
        self._pending += self._aead.encrypt(nonce, current, self._header)
        self._counter += 1
        self._done = last

    def readinto(self, buffer) -> int:
        while not self._pending and not self._done:
            self._fill()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        del self._pending[:size]
        return size


def decrypt_segments(stream: BinaryIO, data_key: bytes) -> Iterator[bytes]:
    """Plaintext of a stored object, segment by segment; each is authenticated before it is given."""
    header = _read_exact(stream, HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise CorruptObject("not an encrypted file object")
    aead, prefix = AESGCM(data_key), header[len(MAGIC):]
    counter, current = 0, _read_exact(stream, SEGMENT + TAG)
    while True:
        following = _read_exact(stream, SEGMENT + TAG)
        try:
            yield aead.decrypt(_nonce(prefix, counter, not following), current, header)
        except InvalidTag as exc:
            raise CorruptObject("file object failed authentication") from exc
        if not following:
            return
        counter, current = counter + 1, following
