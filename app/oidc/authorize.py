"""Deciding an authorization request: validating it (Authlib), the real-name level a client
requires, issuing the code, and the app's one-call consent (`POST /api/v1/oauth/authorizations`)."""
from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, scope_to_list

from ..errors import Forbidden, ValidationFailed
from ..extensions import db
from ..identity.enterprises import agent_scopes, enterprise_for
from ..identity.models import Enterprise, Person
from ..identity.persons import acting_person, person_by_subject_id
from ..security.rbac import Principal
from .claims import Grantee, acr_for, level_of
from .clients import client_by_id
from .consents import remember
from .server import oidc_server

LEVEL_NAMES = {1: "L1（基础实名）", 2: "L2（户籍信息核验）", 3: "L3（人脸或证件核验）"}


def person_grantee(person: Person, *, auth_time: int, amr: list[str], sid: str | None,
                   enterprise: Enterprise | None = None) -> Grantee:
    """A person signing in for themselves, or for `enterprise` as its representative or agent."""
    subject, actor = (enterprise.subject_id, person.subject_id) if enterprise else (person.subject_id, None)
    return Grantee(subject_id=subject, actor_id=actor, auth_time=auth_time, acr=acr_for(person.real_name_level),
                   amr=list(amr), sid=sid)


def validated_grant(params: dict | None, user: Grantee | None = None):
    """Authlib's validation of an authorization request, `params` or the current request's
    (raises OAuth2Error)."""
    try:
        return oidc_server().get_consent_grant(request=params, end_user=user)
    except ValueError:  # Authlib refuses to echo a parameter that is not printable ASCII
        raise InvalidRequestError("Malformed request parameters.") from None


def required_level(grant) -> int:
    """The real-name level to reach: the client's minimum, raised by the lowest `acr_values` asked."""
    asked = [level_of(value) for value in scope_to_list(grant.request.payload.data.get("acr_values")) or []]
    asked = [level for level in asked if level]
    return max(grant.request.client.acr_minimum or 1, min(asked) if asked else 1)


def level_shortfall(grant, person: Person) -> str | None:
    """Why the person may not sign in to this client yet (their real-name level is too low), or None."""
    needed = required_level(grant)
    if (person.real_name_level or 0) >= needed:
        return None
    return (f"“{grant.request.client.name}”要求实名认证等级不低于{LEVEL_NAMES.get(needed, needed)}，"
            f"您当前为{LEVEL_NAMES.get(person.real_name_level, person.real_name_level)}。"
            "请先在爱山东 App 中完成更高等级的实名认证。")


def refusal_location(grant, error: OAuth2Error) -> str:
    """Where to send the browser with an error for the client (its validated redirect URI)."""
    error.redirect_uri, error.state = grant.redirect_uri, grant.request.payload.state
    return dict(error()[2])["Location"]


def denied_location(grant, description: str) -> str:
    return refusal_location(grant, AccessDeniedError(description=description))


def issue_code(grant, user: Grantee) -> str:
    """Issue the code; returns the redirect URI with `code` and `state` (or with an error)."""
    user.client = grant.request.client
    response = oidc_server().create_authorization_response(request=grant.request, grant_user=user, grant=grant)
    return response.headers["Location"]


# ---- the app's one-call consent


def _checked_params(data: dict) -> dict:
    client = client_by_id(data["client_id"])
    if client is None:
        raise ValidationFailed.field("client_id", "应用不存在或已停用")
    if not client.check_redirect_uri(data["redirect_uri"]):
        raise ValidationFailed.field("redirect_uri", "回调地址未在该应用登记")
    if client.get_allowed_scope(data["scope"]) is None:
        raise ValidationFailed.field("scope", "授权范围应包含 openid，且只能是该应用已登记的范围："
                                     + " ".join(client.scopes or []))
    return {"response_type": "code", **{key: value for key, value in data.items() if value is not None}}


def _app_grantee(principal: Principal) -> tuple[Grantee, Person]:
    auth_time = int(principal.claims.get("iat") or 0)
    if principal.subject_type == "legal":
        person = person_by_subject_id(principal.actor_id)
        enterprise = enterprise_for(principal.subject_id)
        if person is None or not person.active or enterprise is None or \
                agent_scopes(person, enterprise.credit_code) is None:
            raise Forbidden("您已不能代表该企业办理，请重新选择身份")
        return person_grantee(person, auth_time=auth_time, amr=["app"], sid=None, enterprise=enterprise), person
    person = acting_person(principal)
    return person_grantee(person, auth_time=auth_time, amr=["app"], sid=None), person


def authorize_in_app(*, principal: Principal, data: dict) -> str:
    """The person pressed the app's consent button: remember the consent, issue a code; returns the
    redirect URI (with `code` and `state`). A real-name level below the client's minimum is 403,
    with `redirect_to` carrying `error=access_denied` for the client."""
    params = _checked_params(data)
    user, person = _app_grantee(principal)
    try:
        grant = validated_grant(params, user)
    except OAuth2Error as error:
        raise ValidationFailed(f"授权请求无效：{error.description or error.error}",
                               errors={"body": [error.description or error.error]}) from None
    shortfall = level_shortfall(grant, person)
    if shortfall:
        raise Forbidden(shortfall, extra={"redirect_to": denied_location(grant, "Real-name level too low.")})
    remember(person.subject_id, grant.request.client, grant.request.scope, via="app")
    location = issue_code(grant, user)
    db.session.commit()
    return location
