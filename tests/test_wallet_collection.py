"""归集: licenses a holder already has in a license library are pulled into the wallet when they
open it (at most hourly) and by `flask wallet collect`, idempotently; the library is a local fake
server speaking the documented, signed JSON shape. The development library feeds `flask seed`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.identity import registries
from app.timeutil import beijing_today
from app.wallet.demo_licenses import seed_demo_licenses
from app.wallet.identifier import build_identifier
from app.wallet.models import License
from tests.fakes.license_library_server import FakeLicenseLibraryServer
from tests.support.helpers import API, register_person
from tests.support.wallet import ID_CARD, person_id_number

SOCIAL_SECURITY = "111000000000131143001"
ISSUER_CODE = "11370100MB0002345A"


@pytest.fixture
def library(app, monkeypatch):
    """The fake library, configured as the app's license library for the test."""
    with FakeLicenseLibraryServer() as server:
        monkeypatch.setitem(app.config, "LICENSE_LIBRARY", "app.wallet.collection:HttpLicenseLibrary")
        monkeypatch.setitem(app.config, "LICENSE_LIBRARY_URL", server.base_url)
        monkeypatch.setitem(app.config, "LICENSE_LIBRARY_APP_ID", server.app_id)
        monkeypatch.setitem(app.config, "LICENSE_LIBRARY_SECRET", server.secret)
        app.extensions.pop("wallet_library", None)
        yield server
        app.extensions.pop("wallet_library", None)


def item(id_number: str, name: str, *, type_code=SOCIAL_SECURITY, serial="2024000000001", **data) -> dict:
    start, end = beijing_today() - timedelta(days=100), beijing_today() + timedelta(days=3000)
    fields = {"name": name, "id_number": id_number, "card_number": "A37010012345", "bank": "齐鲁银行",
              "issuing_authority": "济南市人力资源和社会保障局", "issue_date": start.isoformat(),
              "valid_until": end.isoformat()} if type_code == SOCIAL_SECURITY else {
              "name": name, "ethnicity": "汉", "address": "山东省济南市历下区泉城路1号",
              "issuing_authority": "济南市公安局历下区分局"}
    return {"license_identifier": build_identifier(type_code=type_code, issuer_credit_code=ISSUER_CODE, serial=serial),
            "license_type_code": type_code, "license_name": "社会保障卡", "holder_name": name,
            "holder_identity_type": "111", "holder_identity_number": id_number,
            "issuer_name": "济南市人力资源和社会保障局", "issuer_code": ISSUER_CODE,
            "valid_from": start.isoformat(), "valid_until": end.isoformat(), "status": "valid",
            "data": {**fields, **data}}


def wallet(client, person) -> list[dict]:
    response = client.get(f"{API}/wallet/licenses", headers=person["headers"])
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def count_licenses(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(License))


def test_opening_the_wallet_pulls_the_librarys_licenses_once_an_hour(app, client, library):
    alice = register_person(client, app, name="张三", id_number=person_id_number())
    library.add(item(alice["id_number"], "张三"))
    items = wallet(client, alice)
    assert [(i["license_type"], i["issuer"], i["status"]) for i in items] == [
        (SOCIAL_SECURITY, "济南市人力资源和社会保障局", "valid")]
    assert items[0]["identifier"] == library.items[alice["id_number"]][0]["license_identifier"]
    assert library.queries == [alice["id_number"]] and library.rejected == []
    library.add(item(alice["id_number"], "张三", type_code=ID_CARD, serial="2024000000002"))
    assert len(wallet(client, alice)) == 1 and len(library.queries) == 1  # within the hour: no second pull
    # the job pulls for everyone; what is already there stays one license
    result = app.test_cli_runner().invoke(args=["wallet", "collect"])
    assert result.exit_code == 0, result.output
    assert '"added": 1' in result.output and '"known": 1' in result.output
    again = app.test_cli_runner().invoke(args=["wallet", "collect", "--id-number", alice["id_number"]])
    assert '"added": 0' in again.output and '"known": 2' in again.output
    assert sorted(i["license_type"] for i in wallet(client, alice)) == sorted([SOCIAL_SECURITY, ID_CARD])
    assert count_licenses(app) == 2
    # a collected license verifies like any other: shown by its holder, checked anonymously
    shown = client.post(f"{API}/wallet/licenses/{items[0]['license_id']}/presentations", headers=alice["headers"],
                        json={"purpose": "就医登记", "mode": "online"}).get_json()
    assert client.post(f"{API}/verifications", json={"code": shown["code"]}).get_json()["valid"] is True


def test_library_items_that_contradict_the_registries_are_not_collected(app, client, library):
    alice = register_person(client, app, name="张三", id_number=person_id_number())
    library.add(item(alice["id_number"], "张叁", serial="2024000000011"))  # not the registered name
    library.add(item(alice["id_number"], "张三", type_code=ID_CARD, serial="2024000000012", gender="女"))
    library.add({**item(alice["id_number"], "张三", serial="2024000000013"), "status": "revoked"})
    result = app.test_cli_runner().invoke(args=["wallet", "collect", "--id-number", alice["id_number"]])
    assert '"added": 0' in result.output and '"skipped": 3' in result.output, result.output
    assert wallet(client, alice) == []


def test_an_unreachable_library_leaves_the_wallet_as_it_is(app, client, library):
    alice = register_person(client, app, name="张三", id_number=person_id_number())
    library.unavailable = True
    assert wallet(client, alice) == []
    failed = app.test_cli_runner().invoke(args=["wallet", "collect", "--id-number", alice["id_number"]])
    assert failed.exit_code != 0 and "证照库" in failed.output


def test_flask_seed_gives_the_demo_residents_licenses_to_try(app, client, monkeypatch):
    with app.app_context():
        registries.seed_demo()
    zhang = register_person(client, app, name="张三", id_number="11010519491231002X", phone="13800138000")
    with app.app_context():
        assert seed_demo_licenses() == "skipped in test"
    monkeypatch.setitem(app.config, "APP_ENV", "development")
    with app.app_context():
        first = seed_demo_licenses()
        second = seed_demo_licenses()
    assert first.startswith("6 library licenses added, 6 collected"), first
    assert second.startswith("0 library licenses added, 0 collected"), second
    names = sorted(i["name"] for i in wallet(client, zhang))
    assert names == ["居民身份证", "社会保障卡"]
    # 王芳 registers later and finds hers, and as guardian her son's 户口簿
    wang = register_person(client, app, name="王芳", id_number="37010219850315123X", phone="13905310001")
    assert sorted(i["name"] for i in wallet(client, wang)) == ["居民身份证", "机动车驾驶证"]
    son = client.get(f"{API}/wallet/licenses", headers=wang["headers"],
                     query_string={"holder_id_number": "370102201506011237"}).get_json()["items"]
    assert [i["name"] for i in son] == ["户口簿"]
