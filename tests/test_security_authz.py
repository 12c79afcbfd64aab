"""OWASP API1 / API5 (GB/T 22239 access control): object-level authorisation on every endpoint that
takes an id (another subject's object is 404, never 403, so that its existence does not leak), and
function-level authorisation (staff, admin, issuer and verifier operations refuse other roles)."""
from __future__ import annotations

import pytest

from app.catalogue.models import Service
from app.extensions import db
from tests.support.helpers import API, auth_headers, client_token, create_client, create_staff, valid_id_number
from tests.support.applications import apply, hukou_body
from tests.support.world import HALL, build_world, is_problem, new_person
from tests.support.wallet import DRIVING, ID_CARD, id_card_fields, issue, present


VALID_ID = valid_id_number(7)


@pytest.fixture
def world(app, client):
    return build_world(app, client)


def _object_requests(ids: dict) -> list[tuple[str, str, dict | None]]:
    """Every request that names one of alice's objects (method, url, body)."""
    lic, pres, app_id = ids["license_id"], ids["presentation_id"], ids["application_id"]
    done, ticket, cc, agent = ids["approved_application_id"], ids["ticket_id"], ids["credit_code"], ids["agent_id"]
    return [
        ("GET", f"{API}/wallet/licenses/{lic}", None),
        ("GET", f"{API}/wallet/licenses/{lic}?reveal=true", None),
        ("POST", f"{API}/wallet/licenses/{lic}/presentations", {"purpose": "酒店入住登记", "mode": "online"}),
        ("POST", f"{API}/wallet/licenses/{lic}/presentations", {"purpose": "酒店入住登记", "mode": "offline"}),
        ("DELETE", f"{API}/wallet/licenses/{lic}/presentations/{pres}", None),
        ("GET", f"{API}/wallet/licenses/{lic}/access-log", None),
        ("GET", f"{API}/applications/{app_id}", None),
        ("GET", f"{API}/applications/{app_id}?reveal=true", None),
        ("POST", f"{API}/applications/{app_id}/withdraw", None),
        ("POST", f"{API}/applications/{app_id}/resubmissions", {"form": {}, "materials": []}),
        ("GET", f"{API}/applications/{done}/evaluation", None),
        ("POST", f"{API}/applications/{done}/evaluation", {"rating": 5}),
        ("GET", f"{API}/rectifications/{ticket}", None),
        ("POST", f"{API}/rectifications/{ticket}/follow-ups", {"note": "已处理"}),
        ("POST", f"{API}/rectifications/{ticket}/close", {"resolution": "已整改"}),
        ("GET", f"{API}/enterprises/{cc}", None),
        ("GET", f"{API}/enterprises/{cc}/agents", None),
        ("POST", f"{API}/enterprises/{cc}/agents", {"id_number": VALID_ID, "scopes": ["applications:submit"],
                                                    "expires_at": "2099-01-01T00:00:00+08:00"}),
        ("DELETE", f"{API}/enterprises/{cc}/agents/{agent}", None),
        ("POST", f"{API}/auth/act-as", {"credit_code": cc}),
    ]


def _answers(client, requests, headers):
    return [(method, url, client.open(url, method=method, json=body, headers=headers)) for method, url, body in requests]


def test_another_citizen_gets_404_for_every_object_of_alice(client, app, world):
    mallory = new_person(app, client, name="钱七")
    log_url = f"{API}/wallet/licenses/{world.ids['license_id']}/access-log"
    logged = client.get(log_url, headers=world.alice["headers"]).get_json()["total"]  # its use as a material
    wrong = [(method, url, response.status_code) for method, url, response
             in _answers(client, _object_requests(world.ids), mallory["headers"])
             if response.status_code != 404 or not is_problem(response, 404)]
    assert not wrong, wrong
    # nothing was changed by those attempts: alice still sees and uses everything
    ids, alice = world.ids, world.alice["headers"]
    assert client.get(f"{API}/wallet/licenses/{ids['license_id']}", headers=alice).status_code == 200
    assert client.get(f"{API}/applications/{ids['application_id']}", headers=alice).get_json()["status"] == "submitted"
    assert client.get(f"{API}/enterprises/{ids['credit_code']}/agents", headers=alice).get_json()
    assert client.get(log_url, headers=alice).get_json()["total"] == logged
    assert client.post(f"{API}/verifications", json={"code": ids["code"]}).get_json()["valid"] is True


def test_not_found_and_not_yours_look_the_same(client, app, world):
    """The answer for someone else's object equals the answer for an id that does not exist."""
    mallory = new_person(app, client, name="钱七")
    for method, url, body in _object_requests(world.ids):
        if "act-as" in url:
            continue
        theirs = client.open(url, method=method, json=body, headers=mallory["headers"])
        fake_url = url
        for value in world.ids.values():
            if isinstance(value, str) and value in url and value != HALL:
                fake_url = fake_url.replace(value, value[:-4] + "0000")
        nobody = client.open(fake_url, method=method, json=body, headers=mallory["headers"])
        assert (theirs.status_code, theirs.get_json()["title"]) == (nobody.status_code, nobody.get_json()["title"]), url


def test_the_agent_sees_the_company_but_not_the_representatives_own_objects(client, app, world):
    """bob is alice's company's agent: that gives him nothing of alice's personal wallet or applications."""
    bob = world.bob["headers"]
    personal = [r for r in _object_requests(world.ids) if "/enterprises/" not in r[1] and "act-as" not in r[1]]
    wrong = [(m, u, r.status_code) for m, u, r in _answers(client, personal, bob) if r.status_code != 404]
    assert not wrong, wrong


def test_hall_staff_of_another_hall_get_404_for_this_halls_work(client, app, world):
    other = world.other_admin
    ids = world.ids
    for method, url, body in [
        ("GET", f"{API}/applications/{ids['application_id']}", None),
        ("POST", f"{API}/applications/{ids['application_id']}/transitions", {"action": "accept"}),
        ("GET", f"{API}/rectifications/{ids['ticket_id']}", None),
        ("POST", f"{API}/rectifications/{ids['ticket_id']}/follow-ups", {"note": "x"}),
        ("POST", f"{API}/rectifications/{ids['ticket_id']}/close", {"resolution": "x"}),
    ]:
        response = client.open(url, method=method, json=body, headers=other)
        assert response.status_code == 404 and is_problem(response, 404), (url, response.status_code)
    for url in (f"{API}/halls/{HALL}/applications", f"{API}/halls/{HALL}/rectifications"):
        assert client.get(url, headers=other).status_code == 403, url
    # and this hall's admin may
    assert client.post(f"{API}/applications/{ids['application_id']}/transitions", json={"action": "accept"},
                       headers=world.hall_admin).status_code == 200


def test_an_issuer_cannot_change_another_issuers_license(client, app, world):
    other_issuer = auth_headers(client_token(client, *create_client(app, "issuer", license_types=(ID_CARD,),
                                                                     name="青岛市公安局")))
    driving_issuer = auth_headers(client_token(client, *create_client(app, "issuer", license_types=(DRIVING,),
                                                                       name="济南市交警支队")))
    url = f"{API}/licenses/{world.ids['license_id']}/status"
    for headers in (other_issuer, driving_issuer):
        response = client.post(url, json={"status": "revoked", "reason": "越权"}, headers=headers)
        assert response.status_code == 404 and is_problem(response, 404), response.get_json()
    assert client.post(url, json={"status": "suspended", "reason": "核查"}, headers=world.issuer).status_code == 200


def test_an_issuer_issues_only_its_license_types(client, app, world):
    response = issue(client, world.issuer, license_type=DRIVING, holder_id_number=world.alice["id_number"],
                     fields={"name": "张三"}, expect=403)
    assert response["status"] == 403


def test_a_presentation_id_of_another_license_is_404(client, app, world):
    mallory = new_person(app, client, name="钱七")
    own = issue(client, world.issuer, holder_id_number=mallory["id_number"], fields=id_card_fields(name="钱七"))
    url = f"{API}/wallet/licenses/{own['license_id']}/presentations/{world.ids['presentation_id']}"
    assert client.delete(url, headers=mallory["headers"]).status_code == 404
    assert client.post(f"{API}/verifications", json={"code": world.ids["code"]}).get_json()["valid"] is True


# --------------------------------------------------------------------- function level


def _function_level_requests(ids: dict, hall_service: str) -> list[tuple[str, str, dict | None, tuple[str, ...]]]:
    """(method, url, body, roles allowed) of operations reserved to staff, admins and issuers."""
    staff_roles = ("hall_admin", "hall_staff")
    return [
        ("POST", f"{API}/licenses", {"license_type": ID_CARD, "holder_id_number": VALID_ID,
                                     "fields": id_card_fields(), "valid_from": "2024-01-01",
                                     "valid_until": "2034-01-01"}, ("issuer",)),
        ("POST", f"{API}/licenses/{ids['license_id']}/status", {"status": "suspended", "reason": "核查"}, ("issuer",)),
        ("POST", f"{API}/halls/{HALL}/services", {"base_code": "000105001000"}, ("hall_admin",)),
        ("PATCH", f"{API}/halls/{HALL}/services/{hall_service}", {"promised_limit_days": 1}, ("hall_admin",)),
        ("DELETE", f"{API}/halls/{HALL}/services/{hall_service}", None, ("hall_admin",)),
        ("GET", f"{API}/halls/{HALL}/services/{hall_service}/revisions", None, staff_roles),  # read-only history
        ("GET", f"{API}/halls/{HALL}/applications", None, staff_roles),
        ("POST", f"{API}/applications/{ids['application_id']}/transitions", {"action": "accept"}, staff_roles),
        ("GET", f"{API}/halls/{HALL}/rectifications", None, ("hall_admin",)),
        ("POST", f"{API}/rectifications/{ids['ticket_id']}/follow-ups", {"note": "已约谈"}, ("hall_admin",)),
    ]


@pytest.mark.usefixtures("catalogue_guard")
def test_reserved_operations_refuse_every_other_role(client, app, world):
    """Citizens, company tokens, verifiers, issuers, staff: each reserved operation answers 401
    without a token and 403 (or 404 for an object they cannot see) to every other role."""
    with app.app_context():
        hall_service = db.session.scalars(db.select(Service.code).where(Service.hall_code == HALL)
                                          .order_by(Service.code).limit(1)).first()
    company = client.post(f"{API}/auth/act-as", json={"credit_code": world.ids["credit_code"]},
                          headers=world.alice["headers"]).get_json()
    roles = {"citizen": world.alice["headers"], "company": auth_headers(company["access_token"]),
             "verifier": world.verifier, "issuer": world.issuer, "hall_staff": world.hall_staff,
             "hall_admin": world.hall_admin}
    wrong = []
    for method, url, body, allowed in _function_level_requests(world.ids, hall_service):
        anonymous = client.open(url, method=method, json=body)
        if anonymous.status_code != 401 or not is_problem(anonymous, 401):
            wrong.append(("anonymous", method, url, anonymous.status_code))
        for role, headers in roles.items():
            if role in allowed:
                continue
            response = client.open(url, method=method, json=body, headers=headers)
            if response.status_code not in (403, 404) or not is_problem(response):
                wrong.append((role, method, url, response.status_code))
    assert not wrong, wrong


def test_the_applicant_cannot_process_their_own_application_even_as_staff(client, app):
    """Segregation of duties: staff of the hall who applied themselves cannot approve their own case."""
    id_number = valid_id_number(region=HALL)
    staff = create_staff(app, HALL, "hall_admin", id_number=id_number, name="孙八")
    person = {"id_number": id_number, "name": "孙八", "phone": "13905310000", "headers": staff}
    submitted = apply(client, staff, hukou_body(person, app))
    assert submitted.status_code == 201, submitted.get_json()
    response = client.post(f"{API}/applications/{submitted.get_json()['application_id']}/transitions",
                           json={"action": "accept"}, headers=staff)
    assert response.status_code in (403, 404) and is_problem(response)


def test_verification_discloses_fields_only_to_a_verifier_authorised_for_the_type(client, app, world):
    """Anyone may check validity; only a registered verifier for that license type gets the disclosed fields."""
    alice = world.alice
    lic = world.ids["license_id"]
    other_type_verifier = auth_headers(client_token(client, *create_client(app, "verifier", license_types=(DRIVING,),
                                                                           name="某租车公司")))
    full_name = alice["name"]
    for headers in ({}, alice["headers"], world.issuer, world.hall_admin, other_type_verifier):
        shown = present(client, alice["headers"], lic, mode="online", disclose=["name"])
        body = client.post(f"{API}/verifications", json={"code": shown["code"]}, headers=headers).get_json()
        assert body["valid"] is True
        assert full_name not in str(body.get("disclosed", {})), (headers, body)
    shown = present(client, alice["headers"], lic, mode="online", disclose=["name"])
    body = client.post(f"{API}/verifications", json={"code": shown["code"]}, headers=world.verifier).get_json()
    assert body["valid"] is True and body["disclosed"]["name"] == full_name


def test_tokens_of_clients_cannot_use_personal_endpoints(client, app, world):
    for headers in (world.issuer, world.verifier):
        for url in (f"{API}/wallet/licenses", f"{API}/applications", f"{API}/enterprises"):
            response = client.get(url, headers=headers)
            assert response.status_code in (403, 404) and is_problem(response), (url, response.status_code)
