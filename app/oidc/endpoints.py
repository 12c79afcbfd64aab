"""The provider's machine endpoints: discovery, token, userinfo, revocation and introspection.
Their answers are Authlib's RFC 6749 / 7009 / 7662 JSON (errors included), not problem+json."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from ..extensions import db
from ..security import keys
from ..security.tokens import issuer
from .claims import ACR_VALUES
from .settings import OIDC_KEY_PURPOSE
from .models import AUTH_METHODS, BASE_SCOPES, EXTRA_SCOPES
from .pages import login_pages
from .server import build_server, endpoint_url, oidc_server

protocol = Blueprint("oidc_protocol", __name__)

CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "act", "name",
          "real_name_level", "subject_type", "credit_code", "agent_scopes", "phone_masked", "id_number"]


def discovery_document() -> dict:
    """OpenID Connect Discovery 1.0 metadata (issuer = PUBLIC_BASE_URL)."""
    return {
        "issuer": issuer(),
        "authorization_endpoint": endpoint_url("authorization"),
        "token_endpoint": endpoint_url("token"),
        "userinfo_endpoint": endpoint_url("userinfo"),
        "jwks_uri": endpoint_url("jwks"),
        "revocation_endpoint": endpoint_url("revocation"),
        "introspection_endpoint": endpoint_url("introspection"),
        "end_session_endpoint": endpoint_url("end_session"),
        "scopes_supported": list(BASE_SCOPES + EXTRA_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": list(ACR_VALUES),
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "ui_locales_supported": ["zh-CN"],
    }


@protocol.get("/.well-known/openid-configuration")
def discovery():
    keys.active_key(OIDC_KEY_PURPOSE)  # the ID-token key is in the JWKS before the first login
    response = jsonify(discovery_document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@protocol.post("/oauth/token")
def token():
    """Authorization code (PKCE S256) and refresh token grants."""
    response = oidc_server().create_token_response()
    db.session.commit()  # a claimed code, rotated or revoked tokens and audit rows, whatever the answer
    return response


@protocol.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo():
    response = oidc_server().create_endpoint_response("userinfo")
    db.session.commit()  # the audit rows of released ID numbers
    return response


@protocol.post("/oauth/revoke")
def revoke():
    response = oidc_server().create_endpoint_response("revocation")
    db.session.commit()
    return response


@protocol.post("/oauth/introspect")
def introspect():
    return oidc_server().create_endpoint_response("introspection")


@protocol.after_request
def _no_store(response):
    if response.headers.get("Cache-Control") is None:
        response.headers["Cache-Control"] = "no-store"
    return response


def register_oidc(app: Flask) -> None:
    """Build the app's authorization server and register the provider's endpoints and pages."""
    build_server(app)
    app.register_blueprint(protocol)
    app.register_blueprint(login_pages)
