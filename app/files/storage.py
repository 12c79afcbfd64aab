"""One storage interface for encrypted file objects: local disk (default) or an S3-compatible bucket."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

KEY_PATTERN = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}-[0-9a-f]{16}")
COPY_CHUNK = 256 * 1024


class StorageError(RuntimeError):
    """The backend could not store, read or remove an object."""


class Storage(Protocol):
    """Where ciphertext objects live, by key; callers never see paths or buckets."""

    def put(self, key: str, stream: BinaryIO) -> None: ...

    def get(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def _checked(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise StorageError(f"invalid storage key {key!r}")
    return key


class DiskStorage:
    """Objects as files under one directory; a put is atomic (written aside, then renamed)."""

    def __init__(self, root: str):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, stream: BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, aside = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(stream, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(aside, path)
        except BaseException:
            Path(aside).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"object {key} is missing") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Storage:
    """Objects in an S3-compatible bucket (MinIO, OSS, AWS) through boto3, streamed both ways."""

    def __init__(self, *, bucket: str, endpoint_url: str | None, access_key_id: str | None,
                 secret_access_key: str | None, region: str = "us-east-1"):
        import boto3
        from botocore.config import Config as BotoConfig
        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key, region_name=region,
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                              connect_timeout=5, read_timeout=30))

    def put(self, key: str, stream: BinaryIO) -> None:
        from boto3.s3.transfer import TransferConfig
        self.client.upload_fileobj(stream, self.bucket, _checked(key),
                                   Config=TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=1,
                                                         use_threads=False))

    def get(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError
        try:
            return self.client.get_object(Bucket=self.bucket, Key=_checked(key))["Body"]
        except ClientError as exc:
            raise StorageError(f"object {key} is missing") from exc

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=_checked(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError
        try:
            self.client.head_object(Bucket=self.bucket, Key=_checked(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def build_storage(config, instance_path: str) -> Storage:
    """The backend `FILE_STORAGE` names (`disk` or `s3`)."""
    kind = (config.get("FILE_STORAGE") or "disk").lower()
    if kind == "s3":
        if not config.get("S3_BUCKET"):
            raise RuntimeError("FILE_STORAGE=s3 需要配置 S3_BUCKET")
        return S3Storage(bucket=config["S3_BUCKET"], endpoint_url=config.get("S3_ENDPOINT_URL"),
                         access_key_id=config.get("S3_ACCESS_KEY_ID"),
                         secret_access_key=config.get("S3_SECRET_ACCESS_KEY"),
                         region=config.get("S3_REGION") or "us-east-1")
    if kind != "disk":
        raise RuntimeError(f"FILE_STORAGE 应为 disk 或 s3，而不是 {kind}")
    return DiskStorage(config.get("FILE_STORAGE_DIR") or os.path.join(instance_path, "files"))


def storage() -> Storage:
    """The app's storage backend, built on first use."""
    backend = current_app.extensions.get("file_storage")
    if backend is None:
        backend = current_app.extensions["file_storage"] = build_storage(current_app.config,
                                                                          current_app.instance_path)
    return backend
