"""Security: tokens, keys, passwords, PII crypto, RBAC and audit."""
