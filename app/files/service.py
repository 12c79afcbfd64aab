"""Files: store an upload or a generated document (encrypted, one object per distinct content),
read it back for those allowed, attach it to what uses it, and remove what nothing used in time."""
from __future__ import annotations

import hashlib
import io
import logging
import secrets
from datetime import datetime, timedelta
from typing import BinaryIO, Callable, Iterator

from flask import current_app
from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..timeutil import utcnow
from . import crypto, inspection
from .access import may_read
from .models import FileBlob, StoredFile
from .storage import storage
from .upload import Upload

logger = logging.getLogger("app.files")
NOT_FOUND = "文件不存在"
GC_BATCH = 500


def _new_file_id() -> str:
    return f"f_{secrets.token_hex(10)}"


def _storage_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}-{secrets.token_hex(8)}"


def _blob_for(sha256: str, size: int, open_source: Callable[[], BinaryIO]) -> tuple[FileBlob, str | None]:
    """The blob holding this content: the existing one, or a new object written now (its key is
    returned so that the caller can remove it if the transaction does not commit). The first write
    of the caller's transaction: a conflict rolls it back."""
    blob = db.session.get(FileBlob, sha256)
    if blob is not None:
        return blob, None
    key, data_key = _storage_key(sha256), crypto.new_data_key()
    with open_source() as source:
        storage().put(key, crypto.EncryptingReader(source, data_key))
    blob = FileBlob(sha256=sha256, storage_key=key, size=size, wrapped_key=crypto.wrap_key(data_key, sha256=sha256))
    db.session.add(blob)
    try:
        db.session.flush()
    except IntegrityError:  # the same content was stored concurrently: keep theirs (nothing else is pending yet)
        db.session.rollback()
        storage().delete(key)
        return db.session.get(FileBlob, sha256), None
    return blob, key


def _store(**values) -> StoredFile:
    """Object first, then the rows in one commit; a failure removes an object written here. Once
    more if the blob we found was collected between our read and our insert."""
    try:
        return _store_once(**values)
    except IntegrityError:
        return _store_once(**values)


def _store_once(*, owner_subject_id: str, name: str, content_type: str, size: int, sha256: str,
                open_source: Callable[[], BinaryIO], attached_to: str | None = None) -> StoredFile:
    written = None
    try:
        blob, written = _blob_for(sha256, size, open_source)
        row = StoredFile(id=_new_file_id(), owner_subject_id=owner_subject_id, name=name,
                         content_type=content_type, size=size, sha256=blob.sha256,
                         attached_to=attached_to, attached_at=utcnow() if attached_to else None)
        db.session.add(row)
        db.session.commit()
        return row
    except BaseException:
        db.session.rollback()
        if written:
            storage().delete(written)
        raise


def store_upload(*, owner_subject_id: str, upload: Upload) -> StoredFile:
    """Judge the received bytes, then store them encrypted for `owner_subject_id` (unattached)."""
    if upload.size == 0:
        raise ValidationFailed.field("file", "文件为空（0 字节）")
    content_type = inspection.judge(upload.path)
    return _store(owner_subject_id=owner_subject_id, name=upload.name, content_type=content_type,
                  size=upload.size, sha256=upload.sha256, open_source=lambda: open(upload.path, "rb"))


def store_document(*, owner_subject_id: str, name: str, content_type: str, data: bytes,
                   attached_to: str) -> StoredFile:
    """Store a document the platform generated (a sealed decision), attached from the start."""
    return _store(owner_subject_id=owner_subject_id, name=name, content_type=content_type, size=len(data),
                  sha256=hashlib.sha256(data).hexdigest(), open_source=lambda: io.BytesIO(data),
                  attached_to=attached_to)


def readable_file(*, principal, file_id: str) -> StoredFile:
    """The file if the caller may read it; 404 alike for absent and not theirs."""
    row = db.session.get(StoredFile, file_id)
    if row is None or not may_read(principal, row):
        raise NotFound(NOT_FOUND)
    return row


class Plaintext:
    """A stored file's bytes, decrypted segment by segment (each authenticated before it is given);
    iterable once, closed by whoever serves it (Werkzeug closes a response's iterable)."""

    def __init__(self, stream: BinaryIO, data_key: bytes):
        self._stream, self._data_key = stream, data_key

    def __iter__(self) -> Iterator[bytes]:
        return crypto.decrypt_segments(self._stream, self._data_key)

    def close(self) -> None:
        self._stream.close()


def _open_blob(blob: FileBlob) -> Plaintext:
    data_key = crypto.unwrap_key(blob.wrapped_key, sha256=blob.sha256)
    return Plaintext(storage().get(blob.storage_key), data_key)


def plaintext(stored_file: StoredFile) -> Plaintext:
    """The file's bytes as an iterable of authenticated segments (see Plaintext)."""
    return _open_blob(db.session.get(FileBlob, stored_file.sha256))


def stored_digest(sha256: str) -> str | None:
    """SHA-256 of what storage really holds for this content (decrypted), or None when it is gone;
    raises CorruptObject or StorageError when the object is altered or unreadable."""
    blob = db.session.get(FileBlob, sha256)
    if blob is None:
        return None
    digest, source = hashlib.sha256(), _open_blob(blob)
    try:
        for segment in source:
            digest.update(segment)
    finally:
        source.close()
    return digest.hexdigest()


def read_bytes(stored_file: StoredFile) -> bytes:
    """The whole file in memory (for small generated documents)."""
    source = plaintext(stored_file)
    try:
        return b"".join(source)
    finally:
        source.close()


def attach(*, file_ids: list[str], owner_subject_id: str, reference: str, field: str = "materials") -> list[StoredFile]:
    """Mark the owner's files as used by `reference` (e.g. "application:<id>") in the caller's
    transaction; a file that is not the owner's (or no longer exists) is a 422 naming `field`."""
    wanted = list(dict.fromkeys(file_ids))
    rows = {row.id: row for row in db.session.scalars(
        select(StoredFile).where(StoredFile.id.in_(wanted), StoredFile.owner_subject_id == owner_subject_id))}
    missing = [file_id for file_id in wanted if file_id not in rows]
    if missing:
        raise ValidationFailed(f"{field}: 文件不存在或不属于申请人：{'、'.join(missing)}",
                               errors={field: [f"文件 {file_id} 不存在或不属于申请人" for file_id in missing]})
    now = utcnow()
    db.session.execute(update(StoredFile).where(StoredFile.id.in_(wanted), StoredFile.attached_at.is_(None))
                       .values(attached_at=now, attached_to=reference).execution_options(synchronize_session=False))
    for row in rows.values():
        db.session.refresh(row)
    return [rows[file_id] for file_id in wanted]


def collect_unattached(*, now: datetime | None = None) -> dict:
    """Remove files not attached within FILE_UNATTACHED_TTL seconds, then the blobs (rows and stored
    objects) no file uses any more. Safe beside uploads: a blob reused meanwhile is kept."""
    cutoff = (now or utcnow()) - timedelta(seconds=current_app.config["FILE_UNATTACHED_TTL"])
    stale = and_(StoredFile.attached_at.is_(None), StoredFile.created_at < cutoff)
    files = 0
    while True:
        ids = db.session.scalars(select(StoredFile.id).where(stale).limit(GC_BATCH)).all()
        if not ids:
            break
        files += db.session.execute(delete(StoredFile).where(StoredFile.id.in_(ids), stale)
                                    .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    blobs = 0
    unused = select(FileBlob.sha256, FileBlob.storage_key).where(
        ~exists().where(StoredFile.sha256 == FileBlob.sha256), FileBlob.created_at < cutoff)
    for sha256, key in db.session.execute(unused).all():
        try:
            removed = db.session.execute(delete(FileBlob).where(
                FileBlob.sha256 == sha256, ~exists().where(StoredFile.sha256 == sha256))).rowcount
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            continue
        if removed:
            storage().delete(key)
            blobs += 1
    logger.info("files gc: %d files, %d blobs removed", files, blobs)
    return {"files": files, "blobs": blobs}
