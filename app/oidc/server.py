"""The Authlib authorization server: the code grant with OpenID Connect and PKCE (S256 only),
refresh tokens with rotation, private_key_jwt client authentication, revocation (RFC 7009),
introspection (RFC 7662), userinfo and RP-initiated logout. Authlib does the protocol; this
module tells it where clients, codes and tokens live and how ID tokens are signed."""
from __future__ import annotations

import secrets
import time
from datetime import timedelta

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Request, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app, g
from flask import request as flask_request
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select, update

from ..extensions import db, store
from ..identity.common import sha256_hex
from ..security import audit, keys
from ..security.models import SigningKey
from ..security.tokens import issuer
from ..timeutil import as_aware, utcnow
from .claims import live_parties, pairwise_sub, released_claims
from .clients import client_by_id
from .logout import sign_out_browser
from .models import AUTH_METHODS, OidcAuthorizationCode, OidcToken
from .settings import ID_TOKEN_TTL, OIDC_KEY_PURPOSE
from .tokens import (access_ttl, find_token, grantee_of, new_access_token, new_refresh_token,
                     revoke_family, revoke_rows, save_token)

CODE_TTL = 120  # OIDC_CODE_TTL overrides
PATHS = {"authorization": "/oauth/authorize", "token": "/oauth/token", "userinfo": "/oauth/userinfo",
         "revocation": "/oauth/revoke", "introspection": "/oauth/introspect", "end_session": "/oauth/logout",
         "jwks": "/.well-known/jwks.json"}


def endpoint_url(name: str) -> str:
    """The absolute URL of an endpoint, under PUBLIC_BASE_URL (the issuer)."""
    return issuer() + PATHS[name]


class PublicRequest(FlaskOAuth2Request):
    """The Flask request as Authlib sees it, its URL taken from PUBLIC_BASE_URL: behind a TLS proxy
    the WSGI URL says http, and Authlib refuses OAuth over plain http (loopback aside)."""

    def __init__(self, request):
        OAuth2Request.__init__(self, method=request.method, uri=issuer() + request.full_path,
                               headers=request.headers)
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class ParamsRequest(OAuth2Request):
    """An authorization request kept as a dict: a pending browser interaction or the app's call."""

    def __init__(self, params: dict):
        super().__init__("GET", endpoint_url("authorization"), headers={})
        self._params = {key: str(value) for key, value in params.items() if value is not None}
        self.payload = BasicOAuth2Payload(self._params)

    @property
    def args(self):
        return self._params

    @property
    def form(self):
        return {}


class Server(AuthorizationServer):
    def create_oauth2_request(self, request):
        return ParamsRequest(request) if isinstance(request, dict) else PublicRequest(flask_request)


class S256Required(CodeChallenge):
    """PKCE for every client, S256 only (no plain, no request without a challenge)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def save_authorization_code(self, code, request):
        user, data = request.user, request.payload.data
        ttl = int(current_app.config.get("OIDC_CODE_TTL", CODE_TTL))
        db.session.add(OidcAuthorizationCode(
            code_hash=sha256_hex(code), client_id=request.client.client_id, subject_id=user.subject_id,
            actor_id=user.actor_id, family_id=secrets.token_hex(16), redirect_uri=request.payload.redirect_uri,
            scope=request.scope, nonce=data.get("nonce"), code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"], auth_time=user.auth_time, acr=user.acr,
            amr=list(user.amr), sid=user.sid, created_at=utcnow(), expires_at=utcnow() + timedelta(seconds=ttl)))
        db.session.flush()

    def query_authorization_code(self, code, client):
        """Claim the code (one use, atomically); a code presented again revokes what it gave."""
        digest, now = sha256_hex(code or ""), utcnow()
        claimed = db.session.execute(
            update(OidcAuthorizationCode).where(
                OidcAuthorizationCode.code_hash == digest, OidcAuthorizationCode.client_id == client.client_id,
                OidcAuthorizationCode.used_at.is_(None), OidcAuthorizationCode.expires_at > now)
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
        row = db.session.scalar(select(OidcAuthorizationCode).where(
            OidcAuthorizationCode.code_hash == digest, OidcAuthorizationCode.client_id == client.client_id)
            .execution_options(populate_existing=True))
        if claimed == 1:
            return row
        if row is not None and row.used_at is not None:
            revoked = revoke_family(row.family_id)
            audit.record("oidc.code_reused", subject_id=row.subject_id, actor=client.client_id,
                         details={"client_id": client.client_id, "tokens_revoked": len(revoked)})
        return None

    def delete_authorization_code(self, authorization_code):
        """Nothing to delete: the code was claimed when it was presented."""

    def authenticate_user(self, authorization_code):
        grantee = grantee_of(authorization_code, client=self.request.client)
        if live_parties(grantee) is None:
            raise InvalidGrantError("The account can no longer sign in to this client.")
        return grantee


class IdToken(OpenIDCode):
    """ID tokens: ES256 with the provider's key from the key store, pairwise `sub`, `acr`, `sid`."""

    def exists_nonce(self, nonce, request):
        return db.session.scalar(select(OidcAuthorizationCode.id).where(
            OidcAuthorizationCode.client_id == request.payload.client_id,
            OidcAuthorizationCode.nonce == nonce).limit(1)) is not None

    def _signing_key(self):
        if "oidc_signing_key" not in g:
            g.oidc_signing_key = keys.active_key(OIDC_KEY_PURPOSE)
        return g.oidc_signing_key

    def get_client_algorithm(self, client):
        return "ES256"

    def get_encode_header(self, client):
        return {"alg": "ES256", "typ": "JWT", "kid": self._signing_key()[0]}

    def resolve_client_private_key(self, client):
        kid, private = self._signing_key()
        return ECKey.import_key(private, parameters={"kid": kid})

    def get_client_claims(self, client):
        ttl = int(current_app.config.get("OIDC_ID_TOKEN_TTL", ID_TOKEN_TTL))
        return {"iss": issuer(), "aud": client.client_id, "exp": int(time.time()) + ttl}

    def get_authorization_code_claims(self, authorization_code):
        claims = super().get_authorization_code_claims(authorization_code)
        if authorization_code.sid:
            claims["sid"] = authorization_code.sid
        return claims

    def generate_user_info(self, user, scope):
        return UserInfo(released_claims(user, scope, via="id_token"))


class RefreshGrant(grants.RefreshTokenGrant):
    """Rotation: every refresh gives a new refresh token; one presented twice revokes its family."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        found = find_token(refresh_token, "refresh_token")
        client = self.request.client
        if found is None or found.kind != "refresh_token" or not found.check_client(client) or found.is_expired():
            return None
        row = found.row
        claimed = db.session.execute(
            update(OidcToken).where(OidcToken.id == row.id, OidcToken.refresh_used_at.is_(None),
                                    OidcToken.revoked_at.is_(None))
            .values(refresh_used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
        db.session.refresh(row)
        if claimed == 1:
            return found
        if row.refresh_used_at is not None:
            revoked = revoke_family(row.family_id)
            audit.record("oidc.refresh_reused", subject_id=row.subject_id, actor=client.client_id,
                         details={"client_id": client.client_id, "tokens_revoked": len(revoked)})
        return None

    def authenticate_user(self, refresh_token):
        grantee = grantee_of(refresh_token.row, client=self.request.client)
        if live_parties(grantee) is None:
            raise InvalidGrantError("The account can no longer sign in to this client.")
        return grantee

    def revoke_old_credential(self, refresh_token):
        refresh_token.row.revoked_at = utcnow()


class PrivateKeyJwt(JWTBearerClientAssertion):
    """private_key_jwt (RFC 7523 client assertions) against the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self):
        return [issuer()] + [endpoint_url(name) for name in ("token", "revocation", "introspection")]

    def validate_jti(self, claims, jti):
        ttl = max(60, int(claims.get("exp", 0)) - int(time.time()) + self.leeway)
        return store.set_if_absent(f"oidc:assertion:{sha256_hex(str(claims['sub']) + ':' + str(jti))}", "1", ttl)

    def resolve_client_public_key(self, client):
        return KeySet.import_key_set(client.jwks or {"keys": []})

    def authenticate_client(self, client):
        if client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):
            return client
        return None


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        if token.kind == "refresh_token":
            revoked = revoke_family(token.row.family_id)
        else:
            revoked = revoke_rows(select(OidcToken).where(OidcToken.id == token.row.id))
        audit.record("oidc.token_revoked", subject_id=token.row.subject_id, actor=token.row.client_id,
                     details={"kind": token.kind, "tokens_revoked": len(revoked)})


class Introspection(IntrospectionEndpoint):
    """For registered resource servers (and a client asking about its own tokens)."""

    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return bool(client.resource_server) or token.check_client(client)

    def introspect_token(self, token):
        row, client = token.row, token.get_client()
        body = {"active": True, "client_id": row.client_id, "scope": row.scope, "aud": row.client_id,
                "iss": issuer(), "sub": pairwise_sub(row.subject_id, client), "acr": row.acr,
                "auth_time": row.auth_time, "iat": int(as_aware(row.issued_at).timestamp()),
                "exp": int(token.expires_at().timestamp())}
        if token.kind == "access_token":
            body["token_type"] = "Bearer"
        if row.actor_id:
            body["act"] = {"sub": pairwise_sub(row.actor_id, client)}
        return body


class AccessTokens(BearerTokenValidator):
    def authenticate_token(self, token_string):
        found = find_token(token_string, "access_token")
        return found if found is not None and found.kind == "access_token" else None


class UserInfoClaims(UserInfoEndpoint):
    def get_issuer(self):
        return issuer()

    def generate_user_info(self, user, scope):
        return UserInfo(released_claims(user, scope, via="userinfo"))


def provider_jwks() -> dict:
    """The provider's published ID-token keys (what an id_token_hint may be signed with)."""
    rows = db.session.scalars(select(SigningKey).where(SigningKey.purpose == OIDC_KEY_PURPOSE)).all()
    now = utcnow()
    return {"keys": [dict(row.public_jwk) for row in rows
                     if row.publish_until is None or as_aware(row.publish_until) > now]}


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return provider_jwks()

    def end_session(self, end_session_request):
        sign_out_browser(reason="rp_initiated")


def build_server(app) -> Server:
    """One authorization server per app, kept in app.extensions["oidc_server"]."""
    server = Server(query_client=client_by_id, save_token=save_token)
    server.init_app(app)
    server.register_token_generator("default", BearerTokenGenerator(new_access_token, new_refresh_token, access_ttl))
    server.register_client_auth_method("private_key_jwt", PrivateKeyJwt(leeway=30))
    server.register_grant(CodeGrant, [S256Required(required=True), IdToken(require_nonce=False)])
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    protector = ResourceProtector()
    protector.register_token_validator(AccessTokens())
    server.register_endpoint(UserInfoClaims(resource_protector=protector))
    server.register_endpoint(EndSession)
    app.extensions["oidc_server"] = server
    return server


def oidc_server() -> Server:
    app = current_app._get_current_object()
    if "oidc_server" not in app.extensions:
        app.finish_setup()  # a command or job before any request: the provider is registered with the views
    return app.extensions["oidc_server"]
