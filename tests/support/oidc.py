"""Support for the OpenID Connect tests (no tests here): the provider served on loopback with its
issuer equal to its own URL, a fake relying party (an http.server that records back-channel
logout POSTs and redirects), relying-party clients from pyoidc (`oic`), and PyJWT checks
against the published JWKS.

    with live_provider(app) as provider: provider.base, provider.app ...
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from tests.support.helpers import API, WORKER_CONFIG_KEYS, auth_headers, register_person

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Provider:
    app: object
    base: str

    def url(self, path: str) -> str:
        return self.base + path

    def reset(self) -> None:
        """What the suite's cleanup does for the session app, for this second app instance."""
        self.app.extensions["shared_store"].flush()
        self.app.extensions.pop("signing_key_cache", None)
        self.app.extensions.pop("verified_access_tokens", None)


@contextmanager
def live_provider(session_app, **config):
    """A second app on the session database whose PUBLIC_BASE_URL is the loopback URL it is served
    on (the port is known only once the server is bound, so the WSGI app is filled in after)."""
    holder = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    shared = {key: session_app.config[key] for key in WORKER_CONFIG_KEYS if key in session_app.config}
    holder["app"] = create_app({**shared, "AUTH_RATE_LIMIT": session_app.config["AUTH_RATE_LIMIT"],
                                "PUBLIC_BASE_URL": base, **config})
    thread = threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True)
    thread.start()
    try:
        yield Provider(holder["app"], base)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with holder["app"].app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def provider(app):
    """The provider on loopback for a test module (import this fixture into the module)."""
    with live_provider(app) as instance:
        yield instance


@pytest.fixture(autouse=False)
def reset_provider(provider):
    yield
    provider.reset()
    provider.app.config.pop("OIDC_CODE_TTL", None)


@pytest.fixture(scope="module")
def rp_server():
    """A fake relying party for a test module; its recordings are cleared for every test."""
    with fake_relying_party() as rp:
        yield rp


@pytest.fixture
def relying_party(provider, rp_server, reset_provider):
    """A registered client (secret, redirect URI on the fake RP, back-channel logout) and its pyoidc RP."""
    rp_server.logouts.clear()
    rp_server.callbacks.clear()
    client_id, secret = register_client(provider, redirect_uris=[rp_server.callback],
                                        post_logout_redirect_uris=[rp_server.after_logout],
                                        backchannel_logout_uri=rp_server.backchannel)
    return {"client_id": client_id, "secret": secret, "auth": (client_id, secret),
            "rp": oic_client(provider, client_id, secret, rp_server.callback)}


# ---- the fake relying party


@dataclass
class FakeRelyingParty:
    base: str
    logouts: list = field(default_factory=list)
    callbacks: list = field(default_factory=list)
    status: int = 200

    @property
    def callback(self) -> str:
        return self.base + "/callback"

    @property
    def backchannel(self) -> str:
        return self.base + "/backchannel-logout"

    @property
    def after_logout(self) -> str:
        return self.base + "/signed-out"

    def logout_tokens(self) -> list[str]:
        return [parse_qs(body)["logout_token"][0] for body in self.logouts]


@contextmanager
def fake_relying_party():
    """An http.server on 127.0.0.1 that records back-channel logout POSTs (answering 200) and the
    query of every GET (the browser landing on the callback or the post-logout page)."""
    rp = FakeRelyingParty(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if self.path == "/backchannel-logout" and \
                    self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                rp.logouts.append(body)
            self.send_response(rp.status)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            rp.callbacks.append(self.path)
            payload = "<!doctype html><title>RP</title><p id=rp>relying party</p>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rp.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="fake-rp", daemon=True)
    thread.start()
    try:
        yield rp
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def run_queued_jobs(provider: Provider) -> None:
    """With Redis, jobs (back-channel logout deliveries) wait for a worker: run a real RQ worker in
    burst mode. Without Redis they already ran in the request."""
    if not provider.app.config.get("REDIS_URL"):
        return
    from rq import Queue, SimpleWorker

    from app.jobs import QUEUE_NAME, use_app
    from app.redis_topology import queue_connection
    use_app(provider.app)
    with provider.app.app_context():
        connection = queue_connection()  # RQ_REDIS_URL when the store is a cluster
        SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(burst=True)


# ---- people and clients


def new_person(provider: Provider, **kwargs) -> dict:
    """A registered person with an app token (tests/helpers.register_person on the provider app)."""
    return register_person(provider.app.test_client(), provider.app, **kwargs)


def register_client(provider: Provider, **kwargs) -> tuple[str, str | None]:
    """An OIDC relying party registered as the operator command does; returns (client_id, secret)."""
    from app.oidc.clients import create_client
    kwargs.setdefault("name", "济南市公安局户政系统")
    with provider.app.app_context():
        client, secret = create_client(**kwargs)
        return client.client_id, secret


# ---- the relying-party library (pyoidc)


def oic_client(provider: Provider, client_id: str, secret: str | None, redirect_uri: str):
    """A pyoidc RP that read our discovery document and JWKS itself."""
    from oic.oic import Client
    from oic.oic.message import RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD
    rp = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(provider.base)
    info = {"client_id": client_id, "redirect_uris": [redirect_uri]}
    if secret:
        info["client_secret"] = secret
    rp.store_registration_info(RegistrationResponse(**info))
    rp.redirect_uris = [redirect_uri]
    return rp


def authorization_request(rp, *, scope=("openid", "profile"), **extra) -> tuple[dict, str]:
    """pyoidc's authorization request with PKCE S256; returns (its parameters, the code verifier)."""
    from oic import rndstr
    pkce, verifier = rp.add_code_challenge()
    args = {"client_id": rp.client_id, "response_type": "code", "scope": list(scope), "nonce": rndstr(24),
            "redirect_uri": rp.redirect_uris[0], "state": rndstr(24), **pkce, **extra}
    request = rp.construct_AuthorizationRequest(request_args=args)
    params = {key: (" ".join(value) if isinstance(value, list) else value) for key, value in request.items()}
    return params, verifier


def app_consent(provider: Provider, person: dict, params: dict) -> requests.Response:
    """The app's one-call consent with the person's bearer token."""
    body = {key: params[key] for key in ("client_id", "redirect_uri", "scope", "state", "nonce",
                                         "code_challenge", "code_challenge_method", "acr_values") if key in params}
    return requests.post(provider.url(f"{API}/oauth/authorizations"), json=body, headers=person["headers"],
                         timeout=10)


def code_from(redirect_to: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(redirect_to).query).items()}


def authorize(provider: Provider, rp, person: dict, **request_args) -> tuple[dict, str, str]:
    """pyoidc's authorization request, consented in the app; pyoidc parses the answer.
    Returns (the request parameters, the PKCE verifier, the code)."""
    from oic.oic.message import AuthorizationResponse
    params, verifier = authorization_request(rp, **request_args)
    answer = app_consent(provider, person, params)
    assert answer.status_code == 200, answer.text
    query = urlsplit(answer.json()["redirect_to"]).query
    response = rp.parse_response(AuthorizationResponse, info=query, sformat="urlencoded")
    assert response["state"] == params["state"]
    return params, verifier, response["code"]


def exchange(rp, params: dict, verifier: str, code: str):
    """pyoidc's token request (client_secret_basic); it verifies the ID token itself (signature
    against our JWKS, iss, aud, exp, nonce)."""
    return rp.do_access_token_request(state=params["state"], request_args={
        "code": code, "code_verifier": verifier, "redirect_uri": params["redirect_uri"]},
        authn_method="client_secret_basic")


def sign_in(provider: Provider, rp, person: dict, **request_args) -> tuple[dict, object]:
    """authorize + exchange: (the authorization parameters, pyoidc's AccessTokenResponse)."""
    params, verifier, code = authorize(provider, rp, person, **request_args)
    return params, exchange(rp, params, verifier, code)


def token_request(provider: Provider, data: dict, auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.post(provider.url("/oauth/token"), data=data, auth=auth, timeout=10)


# ---- PyJWT against the JWKS


def verify_with_jwks(provider: Provider, token: str, *, audience: str, typ: str = "JWT") -> dict:
    """Verify an ES256 JWT the provider signed with PyJWT and the published JWKS (found by kid)."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header.get("typ") == typ
    jwks = requests.get(provider.url("/.well-known/jwks.json"), timeout=10).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    return jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=audience, issuer=provider.base)


def userinfo(provider: Provider, access_token: str) -> requests.Response:
    return requests.get(provider.url("/oauth/userinfo"), headers=auth_headers(access_token), timeout=10)


def form_fields(html: str) -> dict:
    """The hidden inputs of a page's form (interaction and CSRF token)."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def page_sign_in(provider: Provider, person: dict, params: dict, *, session: requests.Session | None = None,
                 decision: str = "allow", identity: str | None = None) -> tuple[requests.Session, str]:
    """Our login and consent pages driven with requests (a browser without JavaScript): returns the
    session (it holds the provider's cookie) and where the provider finally sends the browser."""
    session = session or requests.Session()
    page = session.get(provider.url("/oauth/authorize?" + urlencode(params)), allow_redirects=False, timeout=10)
    if page.status_code == 200 and 'id="login-form"' in page.text:
        fields = form_fields(page.text)
        page = session.post(provider.url("/oauth/authorize/login"), allow_redirects=False, timeout=10, data={
            **fields, "username": person["id_number"], "password": person["password"]})
        assert page.status_code == 303, page.text
        page = session.get(urljoin(provider.base, page.headers["Location"]), allow_redirects=False, timeout=10)
    if page.status_code == 200 and 'id="consent-form"' in page.text:
        data = {**form_fields(page.text), "decision": decision}
        if identity:
            data["identity"] = identity
        page = session.post(provider.url("/oauth/authorize/consent"), data=data, allow_redirects=False,
                            timeout=10)
    assert page.status_code in (302, 303), page.text
    return session, page.headers["Location"]
