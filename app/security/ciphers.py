"""The app's ciphers: one for PII columns, one for private keys at rest."""
from __future__ import annotations

from flask import Flask, current_app

from .pii import PiiCipher, load_key


def init_ciphers(app: Flask) -> None:
    """Build the ciphers from configured keys once per app."""
    algorithm = app.config.get("PII_ALGORITHM", "AES-256-GCM")
    index_key = load_key(app.config["PII_INDEX_KEY"])
    app.extensions["pii_cipher"] = PiiCipher(load_key(app.config["PII_ENCRYPTION_KEY"]),
                                             index_key, algorithm=algorithm)
    app.extensions["key_cipher"] = PiiCipher(load_key(app.config["KEY_ENCRYPTION_KEY"]),
                                             index_key, algorithm=algorithm)


def pii_cipher() -> PiiCipher:
    """Cipher for personal data columns and their blind indexes."""
    return current_app.extensions["pii_cipher"]
