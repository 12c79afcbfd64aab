"""The hash-chained audit log: appends, verification, tampering, concurrency."""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.extensions import db
from app.security import audit
from app.security.models import AuditEvent
from app.timeutil import as_aware
from tests.support.helpers import register_person


def _append(app, count, prefix="test.event"):
    with app.app_context():
        for i in range(count):
            audit.record(prefix, subject_id=f"p_{i}", actor="tester", details={"n": i, "名称": "测试"},
                         ip="127.0.0.1")
        db.session.commit()


def _verify_cli(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_rows_chain_by_sha256_over_canonical_json(app):
    _append(app, 3)
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [row.seq for row in rows] == [1, 2, 3]
        assert rows[0].prev_hash == "0" * 64
        for previous, row in zip(rows, rows[1:]):
            assert row.prev_hash == previous.hash
        first = rows[0]
        canonical = json.dumps({
            "seq": 1, "at": as_aware(first.at).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": "test.event",
            "subject_id": "p_0", "actor": "tester", "ip": "127.0.0.1", "details": {"n": 0, "名称": "测试"},
            "prev_hash": "0" * 64}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()
        assert audit.verify().ok
    result = _verify_cli(app)
    assert result.exit_code == 0 and "共 3 条" in result.output


_CHARACTERS = st.characters(blacklist_categories=("Cs",))  # a lone surrogate cannot be UTF-8 (nor written)
_JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.text(alphabet=_CHARACTERS, max_size=12))
_DETAILS = st.dictionaries(st.text(alphabet=_CHARACTERS, max_size=6), st.recursive(
    _JSON_LEAVES | st.floats(allow_nan=False), lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet=_CHARACTERS, max_size=4), inner, max_size=3), max_leaves=8), max_size=4)


@settings(max_examples=300, deadline=None)
@given(details=_DETAILS, event=st.text(alphabet=_CHARACTERS, max_size=8), seq=st.integers(min_value=1, max_value=2**40))
def test_canonical_bytes_are_the_standard_librarys_sorted_compact_json(details, event, seq):
    """The chain's hashes cover `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of the
    details as `_clean` leaves them (floats, which orjson spells differently, become text): rows hashed before
    orjson wrote the canonical form verify unchanged."""
    at = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=timezone.utc)
    kept = audit._clean(details)
    body = {"seq": seq, "at": "2026-12-05T12:00:00.123456Z", "event": event, "subject_id": "p_1",
            "actor": None, "ip": "127.0.0.1", "details": kept or {}, "prev_hash": "0" * 64}
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert audit.canonical_bytes(seq=seq, at=at, event=event, subject_id="p_1", actor=None, ip="127.0.0.1",
                                 details=kept, prev_hash="0" * 64) == expected


def test_empty_log_verifies(app):
    assert _verify_cli(app).exit_code == 0


def test_changing_one_row_makes_verify_fail(app):
    _append(app, 4)
    with app.app_context():
        db.session.execute(text("UPDATE audit_events SET details = :d WHERE seq = 2"),
                           {"d": json.dumps({"n": 99})})
        db.session.commit()
        result = audit.verify()
        assert not result.ok and any("第 2 条" in p for p in result.problems)
    cli = _verify_cli(app)
    assert cli.exit_code == 1
    assert "第 2 条记录内容被修改" in cli.output


def test_changing_a_row_and_its_hash_breaks_the_next_link(app):
    _append(app, 3)
    with app.app_context():
        row = db.session.scalar(db.select(AuditEvent).where(AuditEvent.seq == 2))
        row.event = "forged"
        row.hash = audit.row_hash(row)
        db.session.commit()
        result = audit.verify()
        assert not result.ok and any("第 3 条记录的前序哈希" in p for p in result.problems)


@pytest.mark.parametrize("seq", [1, 3, 5])
def test_removing_a_row_anywhere_makes_verify_fail(app, seq):
    _append(app, 5)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
        db.session.commit()
    assert _verify_cli(app).exit_code == 1


def test_rolled_back_events_leave_the_chain_intact(app):
    _append(app, 2)
    with app.app_context():
        audit.record("test.rolled_back", details={})
        db.session.rollback()
    _append(app, 1, prefix="test.after")
    with app.app_context():
        assert audit.verify().ok and audit.verify().count == 3


def test_details_never_keep_plaintext_id_or_phone_numbers(app):
    with app.app_context():
        row = audit.record("test.pii", details={"note": "身份证 11010519491231002X 手机 13800138000",
                                                 "nested": ["13912345678"]})
        db.session.commit()
        assert row.details == {"note": "身份证 110105********002X 手机 138****8000", "nested": ["139****5678"]}
        assert audit.verify().ok


def test_digits_inside_a_digest_or_a_generated_id_are_no_phone_number(app):
    digest = "ab13812345678cd" + "e" * 49  # about one sha256 in 300 holds such a run
    package_id = "ar_ddf8f254f15791615065"  # new_id(): 20 hex digits, a run of eleven now and then
    with app.app_context():
        row = audit.record("test.digest", details={"package_hash": digest, "package_id": package_id,
                                                   "note": f"hash {digest} of {package_id}, 手机13800138000"})
        db.session.commit()
        assert row.details["package_hash"] == digest and row.details["package_id"] == package_id
        assert row.details["note"] == f"hash {digest} of {package_id}, 手机138****8000"
        assert audit.verify().ok


def test_concurrent_appends_never_fork_the_chain(app):
    errors = []

    def worker(n):
        try:
            for i in range(5):
                with app.app_context():
                    audit.record("test.concurrent", subject_id=f"p_{n}", details={"i": i})
                    db.session.commit()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with app.app_context():
        result = audit.verify()
        assert result.ok, result.problems
        assert result.count == 30


def test_security_flows_are_audited(client, app):
    person = register_person(client, app)
    client.post("/api/v1/auth/logout", json={"refresh_token": person["refresh_token"]}, headers=person["headers"])
    with app.app_context():
        events = db.session.execute(text("SELECT event FROM audit_events WHERE subject_id = :s ORDER BY seq"),
                                    {"s": person["subject_id"]}).scalars().all()
        assert events == ["person.registered", "auth.login_succeeded", "auth.logout"]
        assert audit.verify().ok
