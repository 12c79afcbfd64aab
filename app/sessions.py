"""Cookie sessions opened only when the request carries a session cookie (API calls never do)."""
from flask.sessions import SecureCookieSessionInterface


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    """Skip building the signing serializer for requests without a session cookie."""

    def open_session(self, app, request):
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
