"""Catalogue test support: the catalogue tables are reference data kept for the whole session,
so tests that write to them restore them afterwards (`catalogue_guard`)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import pytest
from sqlalchemy import delete, select, update

from app.catalogue import seed_data
from app.catalogue.index import catalogue_index
from app.catalogue.models import CatalogueState, Service
from app.catalogue.seed import service_row
from app.catalogue.publishing import next_catalogue_version
from app.extensions import db
from app.security.tokens import issue_access_token

API = "/api/v1"


def catalogue_version(app) -> int:
    with app.app_context():
        return db.session.scalar(select(CatalogueState.version).where(CatalogueState.id == 1)) or 0


def restore_catalogue(app, mark: int) -> None:
    """Undo every service change made after catalogue version `mark`: seeded services get their
    seed values back, others are withdrawn (so every index drops them) and then deleted."""
    with app.app_context():
        rows = db.session.execute(select(Service.code, Service.hall_code).where(Service.change_seq > mark)).all()
        if not rows:
            return
        seeded = {item["code"]: item for item in seed_data.iter_hall_services({r.hall_code for r in rows})}
        seq = next_catalogue_version()
        created = []
        for row in rows:
            item = seeded.get(row.code)
            if item is None:
                created.append(row.code)
                db.session.execute(update(Service).where(Service.code == row.code)
                                   .values(status="withdrawn", change_seq=seq)
                                   .execution_options(synchronize_session=False))
            else:
                values = service_row(item, origin="seed", change_seq=seq, now=None)
                for key in ("code", "created_at", "updated_at"):
                    values.pop(key)
                db.session.execute(update(Service).where(Service.code == row.code).values(**values)
                                   .execution_options(synchronize_session=False))
        db.session.commit()
        catalogue_index(app).changed()
        if created:
            db.session.execute(delete(Service).where(Service.code.in_(created))
                               .execution_options(synchronize_session=False))
            db.session.commit()


@pytest.fixture
def catalogue_guard(app):
    """Restore the session catalogue after a test that writes to it."""
    mark = catalogue_version(app)
    yield
    restore_catalogue(app, mark)


def channel_headers(app, channel: str = "wechat", subject: str = "p_channeltest0000000001") -> dict:
    """Bearer headers of a mini-program citizen token for `channel`."""
    with app.app_context():
        token, _ = issue_access_token(subject, roles=["citizen"], extra={"channel": channel, "sub_type": "person"})
    return {"Authorization": f"Bearer {token}"}


def signed_headers(client_id: str, secret: str, target: str, method: str = "GET") -> dict:
    """Open-API signature headers (HMAC-SHA256 over METHOD, PATH?QUERY, timestamp, nonce, body hash)."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    canonical = "\n".join([method, target, timestamp, nonce, hashlib.sha256(b"").hexdigest()])
    signature = base64.b64encode(hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()).decode()
    return {"X-Client-Id": client_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature}
