"""A newcomer's commands: `seed` on a database that was never migrated, `registry list` (masked),
the demo accounts, `--help` without warnings or test code, the `fakes` entry point driving real
mini-program logins, and the 503 that names what to configure."""
from __future__ import annotations

import re
import subprocess
import sys

import requests
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select

from app import create_app
from app.catalogue.models import Hall
from app.devtools import cli as devtools_cli
from app.devtools.accounts import DEMO_ACCOUNTS, create_demo_accounts, demo_password, seed_demo_accounts
from app.extensions import db
from app.schema_migrations import alembic_config
from app.identity import registries, sms
from tests.support.browser import login_form
from tests.conftest import make_test_config
from tests.support.helpers import API, auth_headers
from tests.support.newcomer import FLASK, ROOT, background, process_env, read_exports, wait_for_file_text

LI_SI, ZHAO_MIN = ("440524188001010014", "李四"), ("370202199007082343", "赵敏")


def dispose(application) -> None:
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


# ---- seed on a database that was never migrated


def test_seed_migrates_a_database_that_was_never_migrated(tmp_path):
    application = create_app(make_test_config(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}",
                                              CATALOGUE_SEED_HALLS=["370102"]))
    try:
        with application.app_context():  # `seed` is a plain click command
            result = application.test_cli_runner().invoke(args=["seed"])
        assert result.exit_code == 0, result.output
        assert "数据库尚未迁移到最新版本：先执行迁移" in result.output
        assert "demo accounts: skipped in test" in result.output and result.output.endswith("seed: done\n")
        with application.app_context():
            with db.engine.connect() as connection:
                current = set(MigrationContext.configure(connection).get_current_heads())
            config = alembic_config()
            assert current == set(ScriptDirectory.from_config(config).get_heads())
            assert db.session.scalar(select(func.count()).select_from(Hall)) > 100

        with application.app_context():
            again = application.test_cli_runner().invoke(args=["seed"])
        assert again.exit_code == 0, again.output
        assert "尚未迁移" not in again.output
    finally:
        dispose(application)


def test_seed_in_production_says_what_to_run_and_writes_nothing(tmp_path):
    application = create_app(make_test_config(APP_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}"))
    try:
        with application.app_context():
            result = application.test_cli_runner().invoke(args=["seed"])
        assert result.exit_code != 0
        assert "数据库尚未迁移到最新版本，请先运行：flask --app wsgi db upgrade" in result.output
        with application.app_context():
            assert inspect(db.engine).get_table_names() == []
    finally:
        dispose(application)


# ---- the development registries


def test_registry_list_masks_id_numbers_and_phones(app):
    with app.app_context():
        registries.seed_demo()
        create_demo_accounts("Passw0rd2025")
    result = app.test_cli_runner().invoke(args=["registry", "list"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "110105********002X 张三\t138****8000\t已注册" in out
    assert "440524********0014 李四\t（无手机号）\t未注册" in out
    assert "370102********123X 王芳 → 370102********1237 王小明" in out
    assert "91370102MA3C123456\t济南泉城商贸有限公司\t法定代表人 370102********123X 王芳" in out
    assert "92370202MA3D67890P 青岛市南区赵敏小吃店\t一般失信" in out
    assert "440524********0014 李四\t轻微失信" in out
    for full in ("11010519491231002X", "440524188001010014", "13800138000", "13905310001"):
        assert full not in out
    assert not re.search(r"\b\d{17}[\dX]\b", out) and not re.search(r"\b1\d{10}\b", out)


# ---- demo accounts


def test_demo_accounts_sign_in_and_the_hall_admin_reaches_the_dashboard(app_factory):
    dev = app_factory(APP_ENV="development", PASSWORD_HASH_PROFILE="fast")
    password = demo_password(dev.config["SECRET_KEY"])
    with dev.app_context():
        assert seed_demo_accounts() == (f"{len(DEMO_ACCOUNTS)} demo accounts, {len(DEMO_ACCOUNTS)} created, "
                                        f"password {password} (flask --app wsgi demo accounts lists them)")
        assert f"{len(DEMO_ACCOUNTS)} demo accounts, 0 created" in seed_demo_accounts()
    client = dev.test_client()
    for account in DEMO_ACCOUNTS:
        response = client.post(f"{API}/auth/token", json={"grant_type": "password", "username": account.id_number,
                                                          "password": password})
        assert response.status_code == 200, (account.name, response.get_json())
        me = client.get(f"{API}/me", headers=auth_headers(response.get_json()["access_token"])).get_json()
        assert me["name"] == account.name
    admin = next(a for a in DEMO_ACCOUNTS if a.role == "hall_admin" and a.hall_code == "370102")
    signed_in = login_form(client, "370102", admin.id_number, password)
    assert signed_in.status_code == 303 and signed_in.headers["Location"].endswith("/halls/370102/dashboard")
    assert client.get("/halls/370102/dashboard").status_code == 200
    city_admin = next(a for a in DEMO_ACCOUNTS if a.role == "hall_admin" and a.hall_code == "370100")
    other = dev.test_client()
    assert login_form(other, "370102", city_admin.id_number, password).status_code == 303  # a county of 济南
    staff = next(a for a in DEMO_ACCOUNTS if a.role == "hall_staff")
    assert login_form(dev.test_client(), "370102", staff.id_number, password).status_code == 403

    printed = dev.test_cli_runner().invoke(args=["demo", "password"])
    assert printed.exit_code == 0 and printed.output == password + "\n"
    listed = dev.test_cli_runner().invoke(args=["demo", "accounts"])
    assert password in listed.output and admin.id_number in listed.output


def test_demo_accounts_never_in_test_or_production(app, app_factory):
    with app.app_context():
        assert seed_demo_accounts() == "skipped in test"
    refused = app.test_cli_runner().invoke(args=["demo", "password"])
    assert refused.exit_code != 0 and "仅在开发环境" in refused.output
    production = app_factory(APP_ENV="production")
    with production.app_context():
        assert seed_demo_accounts() == "skipped in production"
    for args in (["demo", "password"], ["demo", "accounts"]):
        result = production.test_cli_runner().invoke(args=args)
        assert result.exit_code != 0
        assert demo_password(production.config["SECRET_KEY"]) not in result.output
    fakes = production.test_cli_runner().invoke(args=["fakes", "wechat", "--port", "0"])
    assert fakes.exit_code != 0 and "生产环境不能启动本地模拟服务" in fakes.output


def test_fakes_outside_a_source_checkout_say_where_they_live(app, monkeypatch, tmp_path):
    monkeypatch.setattr(devtools_cli, "FAKES_DIR", tmp_path / "tests" / "fakes")
    result = app.test_cli_runner().invoke(args=["fakes", "wechat", "--port", "0"])
    assert result.exit_code != 0 and "找不到 tests/fakes" in result.output


# ---- start-up of the command line


def test_help_prints_no_warning_and_imports_no_test_code(tmp_path):
    probe = ("import sys\nfrom flask.cli import main\nsys.argv = ['flask', '--app', 'wsgi', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "loaded = sorted(m for m in sys.modules if m == 'tests' or m.startswith('tests.'))\n"
             "print('LOADED', loaded, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=process_env(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert "LOADED []" in result.stderr, result.stderr
    assert "REDIS_URL" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    for command in ("config", "demo", "fakes", "registry", "seed"):
        assert re.search(rf"^  {command}\s", result.stdout, re.M), result.stdout


# ---- the fakes entry point, driving real logins through the app


def _bind(client, app, channel: str, login: dict, *, id_number: str, name: str, phone: str) -> str:
    started = client.post(f"{API}/miniprograms/{channel}/sessions", json=login)
    assert started.status_code == 200, started.get_json()
    ticket = started.get_json()["bind_ticket"]
    assert client.post(f"{API}/auth/sms-codes", json={"phone": phone, "purpose": "bind"}).status_code == 202
    with app.app_context():
        code = sms.last_outbox_code(phone)
    bound = client.post(f"{API}/miniprograms/{channel}/bindings", json={
        "bind_ticket": ticket, "id_number": id_number, "name": name, "phone": phone, "sms_code": code})
    assert bound.status_code == 200, bound.get_json()
    return bound.get_json()["access_token"]


def test_fakes_command_serves_what_the_app_logs_in_with(app, app_factory, tmp_path):
    env_file = tmp_path / "fakes.env"
    with background(FLASK + ["fakes", "all", "--port", "0", "--env-file", str(env_file)], process_env(tmp_path),
                    tmp_path / "fakes.log") as fakes:
        printed = wait_for_file_text(tmp_path / "fakes.log", r"Ctrl-C", fakes, 180)
        exported = read_exports(env_file)
        assert set(exported) == {"WECHAT_API_BASE", "WECHAT_APP_ID", "WECHAT_APP_SECRET", "ALIPAY_GATEWAY",
                                 "ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY", "ALIPAY_AES_KEY"}
        assert all(f"export {name}='{value}'" in printed for name, value in exported.items())
        assert (tmp_path / "fakes.json").stat().st_mode & 0o077 == 0
        with app.app_context():
            registries.seed_demo()
        mp_app = app_factory(**exported)
        client = mp_app.test_client()

        token = _bind(client, mp_app, "wechat", {"code": "lisi.1"}, id_number=LI_SI[0], name=LI_SI[1],
                      phone="13912345678")
        again = client.post(f"{API}/miniprograms/wechat/sessions", json={"code": "lisi.2"})
        assert again.status_code == 200 and "access_token" in again.get_json()
        used = client.post(f"{API}/miniprograms/wechat/sessions", json={"code": "lisi.2"})
        assert used.status_code >= 400  # a wx.login code works once
        phone = client.post(f"{API}/miniprograms/wechat/phone", json={"code": "13912345678"},
                            headers=auth_headers(token))
        assert phone.status_code == 200 and phone.get_json()["phone_masked"] == "139****5678"

        alipay_token = _bind(client, mp_app, "alipay", {"auth_code": "zm.1"}, id_number=ZHAO_MIN[0],
                             name=ZHAO_MIN[1], phone="13700001111")
        gateway = exported["ALIPAY_GATEWAY"].removesuffix("/gateway.do")
        payload = requests.get(f"{gateway}/dev/phone", params={"mobile": "13700001111"}, timeout=10).json()
        answered = client.post(f"{API}/miniprograms/alipay/phone", json=payload, headers=auth_headers(alipay_token))
        assert answered.status_code == 200 and answered.get_json()["phone_masked"] == "137****1111"
        tampered = dict(payload, response=payload["response"][:-4] + "AAA=")
        assert client.post(f"{API}/miniprograms/alipay/phone", json=tampered,
                           headers=auth_headers(alipay_token)).status_code >= 400


def test_unconfigured_mini_program_login_names_the_variables(client):
    wechat = client.post(f"{API}/miniprograms/wechat/sessions", json={"code": "x"})
    assert wechat.status_code == 503
    assert "WECHAT_APP_ID" in wechat.get_json()["detail"] and "WECHAT_APP_SECRET" in wechat.get_json()["detail"]
    alipay = client.post(f"{API}/miniprograms/alipay/sessions", json={"auth_code": "x"})
    assert alipay.status_code == 503 and "ALIPAY_APP_PRIVATE_KEY" in alipay.get_json()["detail"]
