"""Unified identity (一号通行): persons, companies, clients, tokens."""
