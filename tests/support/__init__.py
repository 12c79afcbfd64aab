"""Shared test support: builders, fixtures (loaded by conftest through pytest_plugins), fake worlds."""
