"""Marshmallow schemas, one module per domain."""
