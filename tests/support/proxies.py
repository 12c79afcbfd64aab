"""Family proxies in tests: grant one, act for the grantor."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.support.helpers import API

ALL = ["applications:submit", "applications:read", "licenses:read", "licenses:present"]


def _future(days=30) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()


def grant(client, grantor, grantee, *, scopes=ALL, expires_at=None, expect=201):
    response = client.post(f"{API}/me/proxies", headers=grantor["headers"], json={
        "id_number": grantee["id_number"], "name": grantee["name"], "scopes": scopes,
        "expires_at": expires_at or _future()})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def act_for(client, grantee, grantor, expect=200):
    response = client.post(f"{API}/auth/act-as", headers=grantee["headers"], json={"subject_id": grantor["subject_id"]})
    assert response.status_code == expect, response.get_json()
    return response.get_json()

