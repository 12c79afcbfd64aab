"""Inbox and channel notices: every change reaches the person; channel sends go through an outbox."""
