"""Demo issuer and verifier clients for development: credentials derived from SECRET_KEY (like the
demo password), so `make run` can print them every time and nothing stores them."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .accounts import DEVELOPMENT

ID_CARD, RESIDENCE_PERMIT = "11100000000013100M001", "11100000000013100M004"


@dataclass(frozen=True)
class DemoClient:
    kind: str
    name: str
    license_types: tuple[str, ...]
    label: str


DEMO_CLIENTS: tuple[DemoClient, ...] = (
    DemoClient("issuer", "济南市公安局历下区分局（演示）", (ID_CARD, RESIDENCE_PERMIT), "issues 居民身份证, 居住证"),
    DemoClient("verifier", "泉城大酒店（演示）", (ID_CARD,), "checks 居民身份证 at check-in"),
)


def demo_client_credentials(secret_key: str, client: DemoClient) -> tuple[str, str]:
    """(client_id, client_secret) of a demo client for this checkout."""
    digest = hmac.new(secret_key.encode(), f"ishandong demo client {client.kind}".encode(), hashlib.sha256).hexdigest()
    return f"c_demo{client.kind[:3]}{digest[:11]}", f"demo-{digest[11:43]}"


def seed_demo_clients() -> str:
    """Create the demo clients that are missing (development only; idempotent)."""
    from flask import current_app

    from ..identity.clients import client_by_id, create_client
    env = current_app.config.get("APP_ENV")
    if env != DEVELOPMENT:
        return f"skipped in {env}"
    created = 0
    for client in DEMO_CLIENTS:
        client_id, secret = demo_client_credentials(current_app.config["SECRET_KEY"], client)
        if client_by_id(client_id) is None:
            create_client(kind=client.kind, name=client.name, license_types=client.license_types,
                          client_id=client_id, secret=secret)
            created += 1
    return f"{len(DEMO_CLIENTS)} demo clients, {created} created (flask --app wsgi demo accounts prints them)"


def demo_client_lines(secret_key: str) -> list[str]:
    """One line per demo client: its kind, name, credentials and what it may do."""
    lines = []
    for client in DEMO_CLIENTS:
        client_id, secret = demo_client_credentials(secret_key, client)
        lines.append(f"{client.kind:<8} {client.name}  client_id {client_id}  client_secret {secret}  ({client.label})")
    return lines
