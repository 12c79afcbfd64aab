"""Configuration a newcomer can trust: every environment variable the code reads is in the README's
table (and nothing else is), PUBLIC_BASE_URL follows PORT, the environment overrides the settings
whose defaults live in code, and `flask config check` names what production still needs without
printing a secret."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from flask import Flask

from app.config import CODE_ONLY_SETTINGS, OPTIONAL_SETTINGS, SECRET_NAMES, Config, check_for_production
from tests.support.procs import random_secrets

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(ROOT / "app").rglob("*.py"), *(ROOT / "miniprograms").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
           ROOT / "gunicorn.conf.py", ROOT / "wsgi.py"]
ENV_READ = re.compile(r"""(?:os\.environ\.get\(|os\.environ\[|os\.getenv\(|\b_env\()\s*["']([A-Z][A-Z0-9_]+)["']""")
CONFIG_READ = re.compile(r"""config(?:\.get\(|\[|\.setdefault\()\s*["']([A-Z][A-Z0-9_]+)["']""")
FRAMEWORK_KEYS = set(Flask.default_config) | {"SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_ENGINE_OPTIONS"}


def _read(pattern: re.Pattern) -> dict[str, str]:
    """Name -> the first file that reads it."""
    found: dict[str, str] = {}
    for path in SOURCES:
        for name in pattern.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def environment_variables() -> dict[str, str]:
    return {**_read(ENV_READ), **{name: "app/config.py" for name in OPTIONAL_SETTINGS}}


def configuration_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Configuration")
    return text[start:text.index("\n## ", start + 1)]


def readme_table_names() -> set[str]:
    names = set()
    for line in configuration_section().splitlines():
        if line.startswith("| `"):
            first_cell = re.sub(r"\[[^\]]*\]", "", line.split("|")[1])  # not the [defaults]
            names.update(n for n in re.findall(r"`([^`]+)`", first_cell) if re.fullmatch(r"[A-Z][A-Z0-9_]+", n))
    return names


def test_every_environment_variable_the_code_reads_is_in_the_readme_table():
    documented = readme_table_names()
    missing = {name: where for name, where in environment_variables().items() if name not in documented}
    assert not missing, f"add these to README.md's configuration table: {missing}"
    for name in ("WECHAT_NOTICE_TEMPLATES", "WECHAT_MSG_SEC_CHECK", "WECHAT_SESSION_KEY_TTL",
                 "WECHAT_OPEN_DATA_MAX_AGE", "ALIPAY_NOTICE_TEMPLATES", "PORT", "PUBLIC_BASE_URL"):
        assert name in documented


def test_the_readme_table_names_only_variables_the_code_reads():
    stale = readme_table_names() - set(environment_variables())
    assert not stale, f"README.md documents variables nothing reads: {stale}"


def test_every_setting_the_code_reads_comes_from_the_environment_or_is_declared_code_only():
    allowed = set(environment_variables()) | set(CODE_ONLY_SETTINGS) | FRAMEWORK_KEYS | {
        name for name in dir(Config) if name.isupper()}
    undeclared = {name: where for name, where in _read(CONFIG_READ).items() if name not in allowed}
    assert not undeclared, f"read from the config but neither an environment variable nor code-only: {undeclared}"
    section = configuration_section()
    for name in CODE_ONLY_SETTINGS:
        assert f"`{name}`" in section, name


def _config_in_a_fresh_process(env: dict) -> dict:
    probe = ("import json\nfrom app.config import Config\n"
             "print(json.dumps({n: getattr(Config, n, None) for n in ('PUBLIC_BASE_URL', 'LOGIN_LOCK_SECONDS', "
             "'BUNDLE_DEFAULT_COUNTIES', 'CATALOGUE_SYNC_INTERVAL', 'SMS_SENDER')}))")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**base, **env}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_public_base_url_follows_port_unless_set_and_the_environment_overrides_code_defaults():
    assert _config_in_a_fresh_process({})["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"
    derived = _config_in_a_fresh_process({"PORT": "5077", "LOGIN_LOCK_SECONDS": "60",
                                          "BUNDLE_DEFAULT_COUNTIES": '{"370100": "370102"}',
                                          "CATALOGUE_SYNC_INTERVAL": "2.5", "SMS_SENDER": "my.gateway:Sender"})
    assert derived == {"PUBLIC_BASE_URL": "http://127.0.0.1:5077", "LOGIN_LOCK_SECONDS": 60,
                       "BUNDLE_DEFAULT_COUNTIES": {"370100": "370102"}, "CATALOGUE_SYNC_INTERVAL": 2.5,
                       "SMS_SENDER": "my.gateway:Sender"}
    explicit = _config_in_a_fresh_process({"PORT": "5077", "PUBLIC_BASE_URL": "https://api.example.gov.cn"})
    assert explicit["PUBLIC_BASE_URL"] == "https://api.example.gov.cn"
    assert explicit["LOGIN_LOCK_SECONDS"] is None  # unset: the code's own default applies


# ---- flask config check


def _states(findings) -> dict[str, str]:
    return {name: state for name, state, _ in findings}


def test_config_check_finds_generated_short_and_missing_secrets(tmp_path):
    generated = random_secrets()
    (tmp_path / "dev-secrets.json").write_text(json.dumps(generated))
    config = {"APP_ENV": "production", **random_secrets(), "SECRET_KEY": generated["SECRET_KEY"],
              "PII_INDEX_KEY": base64.b64encode(b"too short").decode(), "KEY_ENCRYPTION_KEY": None,
              "PUBLIC_BASE_URL": "https://api.example.gov.cn"}
    findings = check_for_production(config, str(tmp_path), environ={})
    states = _states(findings)
    assert states["SECRET_KEY"] == "weak" and states["PII_INDEX_KEY"] == "weak"
    assert states["KEY_ENCRYPTION_KEY"] == "missing" and states["PII_ENCRYPTION_KEY"] == "ok"
    assert states["DATABASE_URL"] == "weak" and states["REDIS_URL"] == "weak"
    assert states["WECHAT_APP_ID"] == "off" and states["ALIPAY_APP_ID"] == "off"


def test_config_check_passes_a_production_configuration_and_never_shows_secrets(tmp_path):
    secrets = random_secrets()
    config = {"APP_ENV": "production", **secrets, "DATABASE_URL": "postgresql+psycopg://ias:pg-pass-93@db/ias",
              "REDIS_URL": "redis://:redis-pass-71@cache:6379/0", "PUBLIC_BASE_URL": "https://api.example.gov.cn",
              "WECHAT_APP_ID": "wx0123456789abcdef", "WECHAT_APP_SECRET": "wechat-secret-55",
              "WECHAT_API_BASE": "https://api.weixin.qq.com"}
    findings = check_for_production(config, str(tmp_path), environ={"PROMETHEUS_MULTIPROC_DIR": "/run/metrics"})
    assert [f for f in findings if f[1] in ("weak", "missing")] == []
    assert _states(findings)["WECHAT_APP_SECRET"] == "ok"
    text = json.dumps(findings, ensure_ascii=False)
    for secret in [*secrets.values(), "pg-pass-93", "redis-pass-71", "wechat-secret-55"]:
        assert secret not in text
    pointed_at_a_fake = check_for_production({**config, "WECHAT_API_BASE": "http://127.0.0.1:5181"}, str(tmp_path),
                                             environ={})
    assert _states(pointed_at_a_fake)["WECHAT_API_BASE"] == "weak"
    half = check_for_production({**config, "WECHAT_APP_SECRET": None}, str(tmp_path), environ={})
    assert _states(half)["WECHAT_APP_SECRET"] == "missing"


def test_config_check_command(app, app_factory):
    result = app.test_cli_runner().invoke(args=["config", "check"])
    assert result.exit_code == 0, result.output  # outside production it only informs
    assert "[需改进] PUBLIC_BASE_URL: http://localhost：生产环境应为 https 地址" in result.output
    assert ("[已设置] REDIS_URL" if app.config.get("REDIS_URL") else "[需改进] REDIS_URL") in result.output
    assert "按生产环境要求还需处理" in result.output
    for name in SECRET_NAMES:
        assert app.config[name] not in result.output
    assert app.config["SQLALCHEMY_DATABASE_URI"] not in result.output

    production = app_factory(APP_ENV="production")
    refused = production.test_cli_runner().invoke(args=["config", "check"])
    assert refused.exit_code == 1 and "[需改进] APP_ENV" not in refused.output
    assert "[已设置] SECRET_KEY: 32字节密钥" in refused.output
