"""Loopback fakes of third-party services, speaking their documented protocols."""
