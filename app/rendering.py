"""Bodies rendered once and kept (catalogue reads, a holder's first wallet page): compact JSON with
the app's JSON provider, as jsonify renders every other response in production."""
from __future__ import annotations

from flask import current_app


def compact_json(body) -> str:
    return current_app.json.dumps(body, separators=(",", ":"))
