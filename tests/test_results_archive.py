"""The e-archive: canonical packages, their hash in the audit chain, retention, `flask archive verify`."""
from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timezone

import pytest
from PIL import Image

from app.errors import ValidationFailed
from app.extensions import db
from app.files import service as files
from app.files.models import FileBlob
from app.files.storage import storage
from app.results import archive, documents
from app.results.models import ArchivePackage
from app.security import audit
from app.security.models import AuditEvent
from tests.support.helpers import API, register_person

DEPARTMENT = "济南市公安局历下分局"


def png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((120, 80), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


def uploaded(client, person) -> dict:
    response = client.post(f"{API}/files", headers=person["headers"],
                           data={"file": (io.BytesIO(png()), "户口簿.png", "image/png")},
                           content_type="multipart/form-data")
    assert response.status_code == 201
    return response.get_json()


TIMELINE = [
    {"at": datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc), "status": "submitted", "actor": "applicant"},
    {"at": datetime(2026, 3, 2, 3, 30, tzinfo=timezone.utc), "status": "approved", "actor": "staff",
     "comment": "材料齐全，准予办理"},
]


def archived(app, person, material, *, application_id="a_archive000000000001", item_type="行政许可") -> dict:
    with app.app_context():
        decision = documents.issue_decision(
            application_id=application_id, applicant_subject_id=person["subject_id"], department=DEPARTMENT,
            applicant_name=person["name"], service_name="居住证签发", decision="approved",
            decided_at=TIMELINE[-1]["at"])
        files.attach(file_ids=[material["file_id"]], owner_subject_id=person["subject_id"],
                     reference=f"application:{application_id}")
        package = archive.archive_application(
            application_id=application_id, applicant_subject_id=person["subject_id"],
            service_code="370102-000705015000", service_name="居住证签发", department=DEPARTMENT,
            final_status="approved", item_type=item_type, decision=decision, timeline=TIMELINE,
            materials=[{"name": "居民户口簿", "file_id": material["file_id"], "review": "accepted"},
                       {"name": "居民身份证", "license_id": "L-370102-1", "review": "accepted"}])
        db.session.commit()
        return {"id": package.id, "hash": package.package_hash, "manifest": package.manifest,
                "retention": package.retention, "retain_until": package.retain_until, "seq": package.audit_seq,
                "decision_sha256": decision.sha256}


def run_verify(app, *args):
    """`flask archive verify`; the result's output holds what it wrote to stdout and stderr."""
    return app.test_cli_runner().invoke(args=["archive", "verify", *args])


def test_a_package_holds_hashes_and_timeline_as_canonical_json_recorded_in_the_audit_chain(client, app, store_dirs):
    alice = register_person(client, app)
    material = uploaded(client, alice)
    package = archived(app, alice, material)

    manifest = json.loads(package["manifest"])
    assert package["manifest"] == json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert package["hash"] == hashlib.sha256(package["manifest"].encode("utf-8")).hexdigest()
    assert manifest["decision"]["sha256"] == package["decision_sha256"]
    by_name = {item["name"]: item for item in manifest["materials"]}
    assert by_name["居民户口簿"]["sha256"] == material["sha256"]
    assert by_name["居民身份证"] == {"name": "居民身份证", "license_id": "L-370102-1", "review": "accepted"}
    assert [step["status"] for step in manifest["timeline"]] == ["submitted", "approved"]
    assert manifest["timeline"][1]["at"] == "2026-03-02T03:30:00Z"
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.seq == package["seq"])).one()
        assert event.event == "archive.sealed" and event.details["package_hash"] == package["hash"]
        assert audit.verify().ok


@pytest.mark.parametrize("item_type, retention, years", [
    ("行政确认", "永久", None), ("行政许可", "30年", 30), ("公共服务", "10年", 10), ("未知类型", "10年", 10),
])
def test_the_retention_class_follows_the_kind_of_matter(client, app, store_dirs, item_type, retention, years):
    alice = register_person(client, app)
    package = archived(app, alice, uploaded(client, alice), item_type=item_type)
    assert package["retention"] == retention
    if years is None:
        assert package["retain_until"] is None
    else:
        assert package["retain_until"].year - datetime.now(timezone.utc).year in (years, years + 1)


def test_archiving_twice_keeps_the_first_package(client, app, store_dirs):
    alice = register_person(client, app)
    material = uploaded(client, alice)
    first = archived(app, alice, material)
    again = archived(app, alice, material)
    assert first["id"] == again["id"] and first["hash"] == again["hash"]
    with app.app_context():
        assert db.session.query(ArchivePackage).count() == 1


def test_a_material_that_is_not_the_applicants_cannot_be_archived(client, app, store_dirs):
    alice, bob = register_person(client, app, name="张三"), register_person(client, app, name="李四")
    bobs = uploaded(client, bob)
    with app.app_context():
        with pytest.raises(ValidationFailed):
            archive.archive_application(application_id="a_x", applicant_subject_id=alice["subject_id"],
                                        service_code="s", service_name="n", department=DEPARTMENT,
                                        final_status="rejected", timeline=[],
                                        materials=[{"name": "x", "file_id": bobs["file_id"]}])
        db.session.rollback()
        assert db.session.query(ArchivePackage).count() == 0


def test_archive_verify_passes_on_intact_packages(client, app, store_dirs):
    alice = register_person(client, app)
    archived(app, alice, uploaded(client, alice))
    result = run_verify(app)
    assert result.exit_code == 0, result.output
    assert "共 1 件" in result.output
    assert run_verify(app, "--files").exit_code == 0


def test_a_tampered_package_row_fails_archive_verify(client, app, store_dirs):
    alice = register_person(client, app)
    package = archived(app, alice, uploaded(client, alice))
    tampered = package["manifest"].replace('"review":"accepted"', '"review":"rejected"', 1)
    assert tampered != package["manifest"]
    with app.app_context():
        db.session.execute(db.update(ArchivePackage).where(ArchivePackage.id == package["id"])
                           .values(manifest=tampered))
        db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1
    assert package["id"] in result.output and "哈希不符" in result.output


def test_a_package_whose_row_hash_was_rewritten_too_is_caught_by_the_audit_chain(client, app, store_dirs):
    alice = register_person(client, app)
    package = archived(app, alice, uploaded(client, alice))
    tampered = package["manifest"].replace("居住证签发", "营业执照", 1)
    with app.app_context():
        db.session.execute(db.update(ArchivePackage).where(ArchivePackage.id == package["id"])
                           .values(manifest=tampered, package_hash=archive.package_hash(tampered)))
        db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1 and "审计链" in result.output


def test_a_forged_audit_record_is_caught_too(client, app, store_dirs):
    alice = register_person(client, app)
    package = archived(app, alice, uploaded(client, alice))
    tampered = package["manifest"].replace("居住证签发", "营业执照", 1)
    forged = archive.package_hash(tampered)
    with app.app_context():
        db.session.execute(db.update(ArchivePackage).where(ArchivePackage.id == package["id"])
                           .values(manifest=tampered, package_hash=forged))
        event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.seq == package["seq"])).one()
        db.session.execute(db.update(AuditEvent).where(AuditEvent.id == event.id)
                           .values(details={**event.details, "package_hash": forged}))
        db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1 and "审计链记录被修改" in result.output


def test_verify_with_files_notices_an_altered_stored_material(client, app, store_dirs):
    alice = register_person(client, app)
    material = uploaded(client, alice)
    archived(app, alice, material)
    with app.app_context():
        blob = db.session.get(FileBlob, material["sha256"])
        path = storage().root / blob.storage_key
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    path.write_bytes(bytes(data))
    intact = run_verify(app)
    assert intact.exit_code == 0, intact.output  # the package itself is intact
    result = run_verify(app, "--files")
    assert result.exit_code == 1 and material["file_id"] in result.output
