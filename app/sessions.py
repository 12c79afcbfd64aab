"""Cookie sessions opened only when the request carries a session cookie (API calls never do)."""
from flask.sessions import SecureCookieSessionInterface


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    """Skip building the signing serializer for requests without a session cookie."""

    def open_session(self, app, request):
        if "HTTP_COOKIE" not in request.environ or app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_sessions(app) -> None:
    """Cookie sessions (the hall dashboard's): opened lazily; HttpOnly, SameSite=Strict, Secure in production."""
    app.session_interface = LazyCookieSessionInterface()
    config = app.config
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Strict"
    if config.get("APP_ENV") == "production":
        config["SESSION_COOKIE_SECURE"] = True
