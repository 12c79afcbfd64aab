"""The demo `flask seed` plays in development: the company and its agent, applications in every state
for the demo residents at the 历下区 hall (seen through the API as each resident and as the hall),
the sealed decision and the issued license, ratings, complaints, a booking; a second run adds no
row, a run that stopped half-way resumes, and nothing of it runs outside development."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.applications.models import Application
from app.devtools import demo_activity
from app.devtools.accounts import demo_password, seed_demo_accounts
from app.devtools.demo_cases import CASES, HALL, WANG_FANG, ZHANG_SAN, ZHAO_MIN
from app.devtools.demo_clients import demo_client_lines, seed_demo_clients
from app.devtools.tryit import try_it_text
from app.extensions import db
from app.identity import registries
from app.wallet.demo_licenses import seed_demo_licenses
from tests.support.helpers import API, auth_headers, client_token
from tests.support.seals import oracle, published_root

pytestmark = pytest.mark.timeout(600)

SUN_WEI, CHEN_JING = "370102199209203451", "370102198605122341"
SOCIAL_SECURITY_CARD, RESIDENCE_PERMIT = "111000000000131143001", "11100000000013100M004"
EVERYTHING = "2 enterprise, 8 applications, 10 steps, 3 ratings, 2 complaints, 1 appointments added"
NOTHING = "0 enterprise, 0 applications, 0 steps, 0 ratings, 0 complaints, 0 appointments added"


@pytest.fixture
def dev(app_factory, tmp_path):
    """A development app on the suite's database, its demo accounts and licenses seeded; jobs
    (sealing the decisions) run inline also when the suite runs with Redis."""
    application = app_factory(APP_ENV="development", PASSWORD_HASH_PROFILE="fast", JOBS_INLINE=True,
                              FILE_STORAGE="disk", FILE_STORAGE_DIR=str(tmp_path / "files"))
    with application.app_context():
        registries.seed_demo()
        seed_demo_accounts()
        seed_demo_licenses()
    return application


def sign_in(dev, id_number: str) -> dict:
    response = dev.test_client().post(f"{API}/auth/token", json={
        "grant_type": "password", "username": id_number, "password": demo_password(dev.config["SECRET_KEY"])})
    assert response.status_code == 200, response.get_json()
    return auth_headers(response.get_json()["access_token"])


def row_counts(dev) -> dict[str, int]:
    with dev.app_context():
        return {table.name: db.session.scalar(select(func.count()).select_from(table))
                for table in db.metadata.sorted_tables}


def listed(client, headers) -> dict[str, dict]:
    response = client.get(f"{API}/applications", query_string={"page_size": 50}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return {item["service_name"]: item for item in response.get_json()["items"]}


def test_the_demo_residents_find_every_state_and_a_second_seed_adds_nothing(dev):
    with dev.app_context():
        assert demo_activity.seed_demo_activity() == EVERYTHING
    client = dev.test_client()
    zhang, wang, zhao = (sign_in(dev, number) for number in (ZHANG_SAN, WANG_FANG, ZHAO_MIN))

    mine = {name: item["status"] for headers in (zhang, wang, zhao) for name, item in listed(client, headers).items()}
    assert mine == {"居住证签发": "approved", "出入境记录查询": "submitted", "户籍证明开具": "request_more",
                    "社会保障卡申领": "approved", "就业登记": "accepted", "往来港澳通行证及签注签发": "withdrawn",
                    "户口迁移": "accepted", "失业登记": "rejected"}
    assert set(listed(client, zhang)) == {"居住证签发", "出入境记录查询", "户籍证明开具"}  # each sees only their own

    instant = client.get(f"{API}/applications/{listed(client, zhang)['居住证签发']['application_id']}",
                         headers=zhang).get_json()
    assert instant["instant_approval"] is True and [e["action"] for e in instant["timeline"]] == ["submit", "instant_approve"]
    supplement = client.get(f"{API}/applications/{listed(client, zhang)['户籍证明开具']['application_id']}",
                            headers=zhang).get_json()
    assert [e["action"] for e in supplement["timeline"]] == ["submit", "review", "request_more"]
    in_review = client.get(f"{API}/applications/{listed(client, zhao)['户口迁移']['application_id']}",
                           headers=zhao).get_json()
    assert {m["name"]: m["review"] for m in in_review["materials"] if m["kind"] == "file"} == {
        "户口簿": "accepted", "合法稳定住所证明": "pending"}

    # the staff approval: a decision sealed by the department (pyHanko's validator is the oracle), the card in the wallet
    approved = client.get(f"{API}/applications/{listed(client, wang)['社会保障卡申领']['application_id']}",
                          headers=wang).get_json()
    assert [e["action"] for e in approved["timeline"]] == ["submit", "accept", "approve", "dispatch"]
    document = client.get(approved["result"]["document_url"], headers=wang)
    assert document.status_code == 200 and document.mimetype == "application/pdf"
    status = oracle(document.data, published_root(client))
    assert status.bottom_line and status.intact and status.trusted
    assert status.signing_cert.subject.native["common_name"] == approved["department"]
    cards = client.get(f"{API}/wallet/licenses", headers=wang).get_json()["items"]
    assert approved["result"]["license_id"] in {c["license_id"] for c in cards if c["license_type"] == SOCIAL_SECURITY_CARD}
    permits = client.get(f"{API}/wallet/licenses", headers=zhang).get_json()["items"]
    assert any(c["license_type"] == RESIDENCE_PERMIT for c in permits)
    rejected = client.get(f"{API}/applications/{listed(client, zhao)['失业登记']['application_id']}",
                          headers=zhao).get_json()
    assert rejected["result"]["decision"] == "rejected" and rejected["result"]["document_url"]

    # the company: 王芳 represents it, 张三 is its agent and may act for it
    companies = client.get(f"{API}/enterprises", headers=zhang).get_json()["items"]
    assert [(c["name"], c["role"]) for c in companies if c["credit_code"] == "91370102MA3C123456"] == [
        ("济南泉城商贸有限公司", "agent")]
    assert client.post(f"{API}/auth/act-as", json={"credit_code": "91370102MA3C123456"},
                       headers=zhang).status_code == 200

    # ratings, the rectification the bad one opened, complaints and the booking
    assert client.get(f"{API}/applications/{instant['application_id']}/evaluation", headers=zhang).get_json()["rating"] == 5
    assert client.get(f"{API}/applications/{rejected['application_id']}/evaluation", headers=zhao).get_json()["rating"] == 2
    tickets = client.get(f"{API}/halls/{HALL}/rectifications", headers=sign_in(dev, CHEN_JING)).get_json()["items"]
    assert [t["application_id"] for t in tickets] == [rejected["application_id"]]
    open_ones = client.get(f"{API}/complaints", headers=zhao).get_json()["items"]
    assert [(c["category"], c["status"], c["application_id"]) for c in open_ones] == [
        ("complaint", "open", rejected["application_id"])]
    answered = client.get(f"{API}/complaints", headers=zhang).get_json()["items"]
    assert [(c["status"], c["rating"], len(c["replies"])) for c in answered] == [("closed", 5, 1)]
    booked = client.get(f"{API}/appointments", headers=zhang).get_json()["items"]
    assert [(b["status"], b["hall_code"]) for b in booked] == [("booked", HALL)]

    # the hall's staff see the hall's work list
    work = client.get(f"{API}/halls/{HALL}/applications", query_string={"page_size": 50},
                      headers=sign_in(dev, SUN_WEI)).get_json()["items"]
    assert len(work) == len(CASES)

    before = row_counts(dev)
    with dev.app_context():
        assert demo_activity.seed_demo_activity() == NOTHING
        seed_demo_accounts()
        seed_demo_licenses()
    after = row_counts(dev)
    assert after == before, {name: (before[name], after[name]) for name in before if before[name] != after[name]}


def test_a_seed_that_stopped_half_way_resumes_where_it_stopped(dev):
    approved = next(case for case in CASES if case.key == "approved")
    with dev.app_context():
        demo_activity.submit(approved, demo_activity.principal_of(approved.id_number))
        assert demo_activity.seed_demo_activity() == EVERYTHING.replace("8 applications", "7 applications")
        rows = db.session.scalars(select(Application).where(Application.service_code == approved.service_code)).all()
        assert [(row.status, row.issued_license_id is not None) for row in rows] == [("approved", True)]
        assert [e.action for e in rows[0].events] == ["submit", "accept", "approve", "dispatch"]


def test_no_demo_activity_outside_development(app, app_factory):
    before = row_counts(app)
    with app.app_context():
        assert demo_activity.seed_demo_activity() == "skipped in test"
    production = app_factory(APP_ENV="production")
    with production.app_context():
        assert demo_activity.seed_demo_activity() == "skipped in production"
    assert row_counts(app) == before


def test_the_try_it_block_says_what_the_demo_residents_find():
    text = try_it_text("http://localhost", demo_password="sdexample12")
    assert "张三：居住证签发 秒批（已办结，已评价）；出入境记录查询（已提交）；户籍证明开具（待补正）" in text
    assert "济南泉城商贸有限公司（王芳为法定代表人），张三为其代办人" in text
    assert "demo activity" not in try_it_text("http://localhost", demo_password=None)


def test_the_printed_demo_clients_verify_a_demo_license_and_issue(dev):
    with dev.app_context():
        assert seed_demo_clients().startswith("2 demo clients, 2 created")
        assert seed_demo_clients().startswith("2 demo clients, 0 created")
    lines = demo_client_lines(dev.config["SECRET_KEY"])
    text = try_it_text("http://localhost", demo_password="sdexample12", demo_clients=lines)
    credentials = {}
    for line in lines:  # what the try-it block prints is what works
        assert line in text
        words = line.split()
        credentials[words[0]] = (words[words.index("client_id") + 1], words[words.index("client_secret") + 1])
    client = dev.test_client()
    hotel = auth_headers(client_token(client, *credentials["verifier"]))
    police = auth_headers(client_token(client, *credentials["issuer"]))

    zhang = sign_in(dev, ZHANG_SAN)
    card = next(item for item in client.get(f"{API}/wallet/licenses", headers=zhang).get_json()["items"]
                if item["license_type"] == "11100000000013100M001")
    code = client.post(f"{API}/wallet/licenses/{card['license_id']}/presentations", headers=zhang,
                       json={"purpose": "酒店入住登记", "disclose": ["name"]}).get_json()["code"]
    answer = client.post(f"{API}/verifications", headers=hotel, json={"code": code}).get_json()
    assert answer["valid"] is True and answer["disclosed"]["name"] == "张三"
    refused = client.post(f"{API}/licenses", headers=hotel, json={})  # a verifier issues nothing
    assert refused.status_code == 403
    checked = client.post(f"{API}/licenses", headers=police, json={})  # the issuer gets as far as the fields
    assert checked.status_code == 422 and "license_type" in checked.get_json()["errors"]
    assert "demo clients" not in try_it_text("http://localhost", demo_password=None, demo_clients=lines)
