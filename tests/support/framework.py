"""Whether a request entered the framework, and the app with the page server taken out (what the view answers)."""
from __future__ import annotations

import pytest
from flask import request_started


@pytest.fixture
def entered(app):
    """Requests that entered the framework (Flask's request_started signal)."""
    calls = []
    with request_started.connected_to(lambda sender, **extra: calls.append(sender), app):
        yield calls


def without_page_server(app, monkeypatch) -> None:
    """The same app with the page server taken out of its WSGI stack (the request finisher calls Flask)."""
    finisher = app.wsgi_app
    monkeypatch.setattr(finisher, "wsgi_app", finisher.wsgi_app.wsgi_app)
