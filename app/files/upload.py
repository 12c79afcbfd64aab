"""Receive one multipart file part as a stream: into a temporary file, hashed on the way, refused
as soon as it passes the size limit; nothing of it stays on disk once the request is done."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from ..errors import PayloadTooLarge, ValidationFailed

MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small fields around the file itself
MAX_TEXT_PART = 256 * 1024  # also bounds what the decoder buffers between events (it reads 64 KiB at a time)
MAX_PARTS = 8
NAME_MAX = 200
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class Upload:
    """A received file part: where its bytes are (a temporary file), and what they hash to."""

    path: str
    name: str
    size: int
    sha256: str


class _HashingSpool:
    """The container werkzeug's multipart parser writes a file part into."""

    def __init__(self, directory: str | None, limit: int, spools: list):
        handle, self.path = tempfile.mkstemp(prefix="ias-upload-", dir=directory)
        self._file = os.fdopen(handle, "w+b")
        self._hash, self.size, self._limit = hashlib.sha256(), 0, limit
        spools.append(self)

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit:
            raise _too_large(self._limit)
        self._hash.update(data)
        return self._file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _too_large(limit: int) -> PayloadTooLarge:
    message = f"文件超过 {limit // (1024 * 1024)} MiB 的上限"
    return PayloadTooLarge(f"file: {message}", errors={"file": [message]})


def clean_name(raw: str | None) -> str:
    """A display name from the client's file name: no path, no control characters, bounded."""
    name = UNPRINTABLE.sub("_", (raw or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:NAME_MAX] or "upload"


@contextmanager
def received_file(field: str = "file") -> Iterator[Upload]:
    """The request's `field` part, streamed to a temporary file under the configured limit; the
    request body gets its own limit here (this route only), every other route keeps the app's."""
    limit = current_app.config["FILE_MAX_BYTES"]
    request.max_content_length = limit + MULTIPART_SLACK
    spools: list[_HashingSpool] = []

    def stream_factory(total_content_length, content_type, filename, content_length=None):
        return _HashingSpool(current_app.config.get("FILE_TEMP_DIR"), limit, spools)

    try:
        try:
            _, _, files = parse_form_data(request.environ, stream_factory=stream_factory,
                                          max_form_memory_size=MAX_TEXT_PART,
                                          max_content_length=limit + MULTIPART_SLACK, max_form_parts=MAX_PARTS)
        except RequestEntityTooLarge:
            raise _too_large(limit) from None
        part = files.get(field)
        if part is None:
            raise ValidationFailed.field(field, "请以 multipart/form-data 上传文件，文件放在 file 字段")
        spool = part.stream
        yield Upload(path=spool.path, name=clean_name(part.filename), size=spool.size, sha256=spool.hexdigest())
    finally:
        for spool in spools:
            spool.discard()
