"""OpenID Connect constants shared by the provider and the operator commands (no heavy imports)."""
from __future__ import annotations

OIDC_KEY_PURPOSE = "oidc"  # the signing-key purpose of ID tokens and logout tokens
ID_TOKEN_TTL = 600  # OIDC_ID_TOKEN_TTL overrides
