"""Bodies rendered once and kept (catalogue reads, a holder's first wallet page): compact JSON as the app's
JSON provider renders every other response (`json_output`)."""
from __future__ import annotations

from .json_output import json_bytes, json_text


def compact_json(body) -> str:
    return json_text(body)


def compact_json_bytes(body) -> bytes:
    return json_bytes(body)
