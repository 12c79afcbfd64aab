"""Uploads: types judged from the bytes, limits, encryption at rest, access, the collection job, S3."""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tracemalloc
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from sqlalchemy.exc import IntegrityError

from app.errors import ValidationFailed
from app.extensions import db
from app.files import access, service
from app.files.crypto import CorruptObject
from app.files.models import FileBlob, StoredFile
from app.files.storage import DiskStorage
from app.timeutil import as_aware
from tests.support.helpers import API, create_staff, register_person
from tests.support.files import (HTML, SVG, image_bytes, pdf_bytes, pdf_of_size, pdf_with_a_huge_page,
                                 pdf_with_attachment_annotation, pdf_with_embedded_file, pdf_with_javascript,
                                 png_bomb, png_declaring)

MIB = 1024 * 1024


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def upload(client, headers, data: bytes, name="scan.pdf", content_type="application/pdf"):
    return client.post(f"{API}/files", headers=headers,
                       data={"file": (io.BytesIO(data), name, content_type)}, content_type="multipart/form-data")


def count(app, model) -> int:
    with app.app_context():
        return db.session.query(model).count()


def assert_problem(response, status: int, field: str = "file"):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert field in body["errors"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in message) for message in body["errors"][field])
    return body


# ---------------------------------------------------------------- accepted content

@pytest.mark.parametrize("data_fn, name, declared, judged", [
    (pdf_bytes, "申请表.pdf", "application/pdf", "application/pdf"),
    (lambda: image_bytes("JPEG"), "身份证正面.jpg", "image/jpeg", "image/jpeg"),
    (lambda: image_bytes("PNG"), "photo.png", "image/png", "image/png"),
    (lambda: image_bytes("PNG"), "renamed.pdf", "application/pdf", "image/png"),
    (pdf_bytes, "looks-like.png", "image/png", "application/pdf"),
])
def test_an_upload_is_judged_by_its_bytes_and_read_back_by_its_owner(client, app, store_dirs, data_fn, name,
                                                                     declared, judged):
    alice = register_person(client, app)
    data = data_fn()
    response = upload(client, alice["headers"], data, name, declared)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["content_type"] == judged
    assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["name"] == name and body["file_id"].startswith("f_")

    back = client.get(f"{API}/files/{body['file_id']}", headers=alice["headers"])
    assert back.status_code == 200
    assert back.mimetype == judged and back.data == data
    assert back.headers["Content-Disposition"].startswith("attachment;")


def test_stored_bytes_are_encrypted_and_an_altered_object_does_not_decrypt(client, app, store_dirs):
    root, _ = store_dirs
    alice = register_person(client, app)
    marker = "PLAINTEXT-MARKER-370102199001011234"
    data = pdf_bytes(marker)
    file_id = upload(client, alice["headers"], data).get_json()["file_id"]
    (stored,) = files_under(root)
    ciphertext = stored.read_bytes()
    assert marker.encode() not in ciphertext and b"%PDF" not in ciphertext
    assert len(ciphertext) > len(data)

    tampered = bytearray(ciphertext)
    tampered[len(tampered) // 2] ^= 0x01
    stored.write_bytes(bytes(tampered))
    with app.app_context():
        row = db.session.get(StoredFile, file_id)
        with pytest.raises(CorruptObject):
            service.read_bytes(row)

    stored.write_bytes(ciphertext[:-20])  # cut short
    with app.app_context():
        with pytest.raises(CorruptObject):
            service.read_bytes(db.session.get(StoredFile, file_id))


def test_the_same_content_twice_is_one_stored_object_with_two_owners(client, app, store_dirs):
    root, _ = store_dirs
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    data = image_bytes("PNG")
    first = upload(client, alice["headers"], data).get_json()["file_id"]
    second = upload(client, bob["headers"], data).get_json()["file_id"]
    assert first != second
    assert len(files_under(root)) == 1
    assert count(app, FileBlob) == 1 and count(app, StoredFile) == 2
    assert client.get(f"{API}/files/{second}", headers=bob["headers"]).data == data


def test_a_store_whose_rows_cannot_commit_leaves_no_object_behind(client, app, store_dirs, monkeypatch):
    root, _ = store_dirs
    alice = register_person(client, app)
    taken = upload(client, alice["headers"], pdf_bytes("first")).get_json()["file_id"]
    monkeypatch.setattr(service, "_new_file_id", lambda: taken)  # every insert now collides on the primary key
    with app.app_context(), pytest.raises(IntegrityError):
        service.store_document(owner_subject_id=alice["subject_id"], name="x.pdf", content_type="application/pdf",
                               data=pdf_bytes("second"), attached_to="application:a_1")
    assert len(files_under(root)) == 1
    assert count(app, FileBlob) == 1 and count(app, StoredFile) == 1


def test_content_stored_concurrently_by_another_worker_is_reused_and_our_copy_removed(client, app, store_dirs,
                                                                                   monkeypatch):
    root, _ = store_dirs
    alice = register_person(client, app)
    data = pdf_bytes("raced")
    digest = hashlib.sha256(data).hexdigest()
    real_put = DiskStorage.put

    def put_while_another_worker_commits(self, key, stream):
        real_put(self, key, stream)
        with db.engine.begin() as other:  # the other worker's transaction, committed first
            other.execute(FileBlob.__table__.insert().values(
                sha256=digest, storage_key=f"{digest[:2]}/{digest}-{'0' * 16}", wrapped_key="theirs",
                size=len(data), created_at=datetime.now(timezone.utc)))

    monkeypatch.setattr(DiskStorage, "put", put_while_another_worker_commits)
    response = upload(client, alice["headers"], data)
    assert response.status_code == 201, response.get_json()
    assert files_under(root) == []  # ours was removed; theirs is the one the row names
    with app.app_context():
        row = db.session.get(StoredFile, response.get_json()["file_id"])
        assert db.session.get(FileBlob, row.sha256).wrapped_key == "theirs"


# ---------------------------------------------------------------- refused content

@pytest.mark.parametrize("data, name, declared, status", [
    (SVG, "picture.png", "image/png", 415),
    (SVG, "picture.svg", "image/svg+xml", 415),
    (HTML, "form.pdf", "application/pdf", 415),
    (b"#!/bin/sh\nrm -rf /\n", "run.pdf", "application/pdf", 415),
    (b"PK\x03\x04" + os.urandom(200), "archive.pdf", "application/pdf", 415),
    (b"GIF89a" + os.urandom(100), "anim.png", "image/png", 415),
])
def test_other_types_are_415_whatever_the_name_or_header_says(client, app, store_dirs, data, name, declared, status):
    root, temp = store_dirs
    alice = register_person(client, app)
    body = assert_problem(upload(client, alice["headers"], data, name, declared), status)
    assert body["status"] == status
    assert files_under(root) == [] and files_under(temp) == [] and count(app, StoredFile) == 0


def test_svg_and_html_are_named_as_refused_markup(client, app, store_dirs):
    alice = register_person(client, app)
    body = assert_problem(upload(client, alice["headers"], SVG, "a.png", "image/png"), 415)
    assert "SVG" in body["errors"]["file"][0]


@pytest.mark.parametrize("data_fn, words", [
    (pdf_with_javascript, "脚本"),
    (pdf_with_embedded_file, "附件"),
    (pdf_with_attachment_annotation, "附件"),
    (pdf_with_a_huge_page, "页面尺寸"),
    (lambda: image_bytes("PNG")[:-300], "损坏"),
    (lambda: image_bytes("JPEG")[:-500], "损坏"),
    (lambda: png_declaring(100_000, 100_000), "炸弹"),
    (png_bomb, "过大"),
    (lambda: pdf_bytes()[:400], "损坏"),
])
def test_dangerous_or_broken_content_is_422_naming_file(client, app, store_dirs, data_fn, words):
    root, temp = store_dirs
    alice = register_person(client, app)
    body = assert_problem(upload(client, alice["headers"], data_fn()), 422)
    assert any(words in message for message in body["errors"]["file"]), body
    assert files_under(root) == [] and files_under(temp) == []
    assert count(app, StoredFile) == 0 and count(app, FileBlob) == 0


def test_an_empty_file_is_422(client, app, store_dirs):
    alice = register_person(client, app)
    body = assert_problem(upload(client, alice["headers"], b""), 422)
    assert "0 字节" in body["errors"]["file"][0]


def test_a_body_without_the_file_part_is_422(client, app, store_dirs):
    alice = register_person(client, app)
    response = client.post(f"{API}/files", headers=alice["headers"],
                           data={"other": (io.BytesIO(pdf_bytes()), "a.pdf")}, content_type="multipart/form-data")
    assert_problem(response, 422)
    assert_problem(client.post(f"{API}/files", headers=alice["headers"], json={"file": "x"}), 422)


# ---------------------------------------------------------------- size limits

def test_exactly_10_mib_is_accepted_and_one_byte_more_is_413_leaving_nothing(client, app, store_dirs):
    root, temp = store_dirs
    alice = register_person(client, app)
    data = pdf_of_size(10 * MIB + 1)
    body = assert_problem(upload(client, alice["headers"], data), 413)
    assert "10 MiB" in body["errors"]["file"][0]
    assert files_under(root) == [] and files_under(temp) == []
    assert count(app, StoredFile) == 0 and count(app, FileBlob) == 0

    exact = pdf_of_size(10 * MIB)
    response = upload(client, alice["headers"], exact)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size"] == 10 * MIB
    assert files_under(temp) == []


def test_a_declared_body_far_over_the_limit_is_refused_before_it_is_read(client, app, store_dirs):
    root, temp = store_dirs
    alice = register_person(client, app)
    environ_overrides = {"CONTENT_LENGTH": str(50 * MIB)}
    response = client.post(f"{API}/files", headers=alice["headers"], environ_overrides=environ_overrides,
                           data={"file": (io.BytesIO(pdf_bytes()), "a.pdf")}, content_type="multipart/form-data")
    assert_problem(response, 413)
    assert files_under(root) == [] and files_under(temp) == []


def test_other_routes_keep_the_256_kib_body_limit(client, app, store_dirs):
    response = client.post(f"{API}/auth/token", data=b"{" + b" " * (300 * 1024) + b"}",
                           content_type="application/json")
    assert response.status_code == 413


def test_a_10_mib_upload_stays_within_a_few_mib_of_python_memory(client, app, store_dirs):
    alice = register_person(client, app)
    data = pdf_of_size(10 * MIB)
    source = store_dirs[1].parent / "big.pdf"
    source.write_bytes(data)
    del data
    with open(source, "rb") as handle:
        tracemalloc.start()
        try:
            response = client.post(f"{API}/files", headers=alice["headers"],
                                   data={"file": (handle, "big.pdf", "application/pdf")},
                                   content_type="multipart/form-data")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 201
    assert peak < 4 * MIB, f"peak Python allocations {peak / MIB:.1f} MiB"


# ---------------------------------------------------------------- who may read

def test_another_persons_file_is_404_like_a_missing_one(client, app, store_dirs):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    file_id = upload(client, alice["headers"], pdf_bytes()).get_json()["file_id"]
    mine = client.get(f"{API}/files/{file_id}", headers=bob["headers"])
    unknown = client.get(f"{API}/files/f_00000000000000000000", headers=bob["headers"])
    assert mine.status_code == unknown.status_code == 404
    assert mine.get_json()["detail"] == unknown.get_json()["detail"]
    assert client.get(f"{API}/files/{file_id}").status_code == 401
    assert client.post(f"{API}/files", data={"file": (io.BytesIO(pdf_bytes()), "a.pdf")},
                       content_type="multipart/form-data").status_code == 401


def admit_staff_of_attached(*, principal, stored_file) -> bool:
    """A reader rule as the applications domain registers one (here: hall staff, attached files)."""
    return principal.has_role("hall_staff") and stored_file.attached_to == "application:a_demo"


def test_a_reader_rule_admits_handling_staff_and_nobody_else(client, app, store_dirs, monkeypatch):
    monkeypatch.setattr(access, "READER_RULES", ("tests.test_files_api:admit_staff_of_attached",))
    alice = register_person(client, app)
    staff = create_staff(app, "370102")
    used = upload(client, alice["headers"], pdf_bytes("used")).get_json()["file_id"]
    unused = upload(client, alice["headers"], pdf_bytes("unused")).get_json()["file_id"]
    assert client.get(f"{API}/files/{used}", headers=staff).status_code == 404
    with app.app_context():
        service.attach(file_ids=[used], owner_subject_id=alice["subject_id"], reference="application:a_demo")
        db.session.commit()
    assert client.get(f"{API}/files/{used}", headers=staff).status_code == 200
    assert client.get(f"{API}/files/{unused}", headers=staff).status_code == 404


def test_attaching_someone_elses_file_is_422_naming_the_field(client, app, store_dirs):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    file_id = upload(client, alice["headers"], pdf_bytes()).get_json()["file_id"]
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            service.attach(file_ids=[file_id], owner_subject_id=bob["subject_id"], reference="application:a_x",
                           field="materials[0].file_id")
        assert "materials[0].file_id" in caught.value.errors
        db.session.rollback()
        assert db.session.get(StoredFile, file_id).attached_at is None


def test_uploads_are_rate_limited_per_person(client, app, store_dirs, monkeypatch):
    monkeypatch.setitem(app.config, "FILE_UPLOAD_RATE_LIMIT", "2/minute")
    alice = register_person(client, app)
    for _ in range(2):
        assert upload(client, alice["headers"], pdf_bytes()).status_code == 201
    refused = upload(client, alice["headers"], pdf_bytes())
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


# ---------------------------------------------------------------- the collection job

def test_files_not_attached_within_a_day_are_collected(client, app, store_dirs):
    root, _ = store_dirs
    alice = register_person(client, app)
    kept = upload(client, alice["headers"], pdf_bytes("kept")).get_json()["file_id"]
    dropped = upload(client, alice["headers"], pdf_bytes("dropped")).get_json()["file_id"]
    with app.app_context():
        service.attach(file_ids=[kept], owner_subject_id=alice["subject_id"], reference="application:a_1")
        db.session.commit()
        created = as_aware(db.session.get(StoredFile, dropped).created_at)
        assert service.collect_unattached(now=created + timedelta(hours=23)) == {"files": 0, "blobs": 0}
        assert service.collect_unattached(now=created + timedelta(hours=25)) == {"files": 1, "blobs": 1}
        assert db.session.get(StoredFile, dropped) is None and db.session.get(StoredFile, kept) is not None
    assert len(files_under(root)) == 1
    assert client.get(f"{API}/files/{dropped}", headers=alice["headers"]).status_code == 404
    assert client.get(f"{API}/files/{kept}", headers=alice["headers"]).status_code == 200


def test_collection_keeps_a_blob_another_upload_still_uses(client, app, store_dirs):
    root, _ = store_dirs
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    data = pdf_bytes("shared")
    old = upload(client, alice["headers"], data).get_json()["file_id"]
    with app.app_context():
        created = as_aware(db.session.get(StoredFile, old).created_at)
        db.session.execute(db.update(StoredFile).where(StoredFile.id == old)
                           .values(created_at=created - timedelta(days=2)))
        db.session.commit()
    fresh = upload(client, bob["headers"], data).get_json()["file_id"]
    with app.app_context():
        assert service.collect_unattached() == {"files": 1, "blobs": 0}
    assert client.get(f"{API}/files/{fresh}", headers=bob["headers"]).data == data
    assert len(files_under(root)) == 1


def test_the_gc_command_takes_an_injected_time(client, app, store_dirs):
    alice = register_person(client, app)
    upload(client, alice["headers"], pdf_bytes())
    runner = app.test_cli_runner()
    soon = runner.invoke(args=["files", "gc"])
    assert soon.exit_code == 0 and json.loads(soon.output) == {"files": 0, "blobs": 0}
    later = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    result = runner.invoke(args=["files", "gc", "--now", later])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"files": 1, "blobs": 1}
    assert files_under(store_dirs[0]) == []


# ---------------------------------------------------------------- the S3 backend against a local S3 server

@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(app, s3_server, tmp_path, monkeypatch):
    bucket = "ias-files-" + os.urandom(4).hex()
    settings = {"FILE_STORAGE": "s3", "S3_ENDPOINT_URL": s3_server, "S3_BUCKET": bucket,
                "S3_ACCESS_KEY_ID": "test-key", "S3_SECRET_ACCESS_KEY": "test-secret",
                "FILE_TEMP_DIR": str(tmp_path)}
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test-key",
                      aws_secret_access_key="test-secret", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    app.extensions.pop("file_storage", None)
    yield s3, bucket
    app.extensions.pop("file_storage", None)


def bucket_objects(s3, bucket) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_the_s3_backend_stores_ciphertext_reads_it_back_and_collects_it(client, app, s3_bucket, tmp_path):
    s3, bucket = s3_bucket
    alice = register_person(client, app)
    data = image_bytes("JPEG", (1600, 1200))
    file_id = upload(client, alice["headers"], data, "id.jpg", "image/jpeg").get_json()["file_id"]
    (key,) = bucket_objects(s3, bucket)
    stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert data[:64] not in stored and len(stored) > len(data)
    assert client.get(f"{API}/files/{file_id}", headers=alice["headers"]).data == data

    assert_problem(upload(client, alice["headers"], pdf_of_size(10 * MIB + 1)), 413)
    assert len(bucket_objects(s3, bucket)) == 1 and list(tmp_path.glob("ias-upload-*")) == []

    with app.app_context():
        created = as_aware(db.session.get(StoredFile, file_id).created_at)
        assert service.collect_unattached(now=created + timedelta(days=2)) == {"files": 1, "blobs": 1}
    assert bucket_objects(s3, bucket) == []
